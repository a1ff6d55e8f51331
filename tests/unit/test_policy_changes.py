"""Policy changes through the services (controller/policy_changes.py): a reason is required, a
stale editor gets a conflict instead of overwriting, and a policy that asks for a second
approval makes each change a proposal until another person approves or declines it. Run on
the in-memory repository and on SQLite, since both must keep proposals out of force."""
from __future__ import annotations

import pytest

from sandbox import datagen
from sandbox.adapters.memory import MemoryRepository
from sandbox.bootstrap import bootstrap
from sandbox.config import REPO_ROOT, load
from sandbox.controller.policy_changes import PolicyChanges, PolicyConflict
from sandbox.core import lookups
from sandbox.core import states as st
from sandbox.core.errors import Conflict, Forbidden, InvalidInput
from sandbox.core.policy.file import parse_policy
from sandbox.core.records import utcnow

FILE = "policies/health_visits.yaml"
TEXT = (REPO_ROOT / FILE).read_text(encoding="utf-8")
GUARDED = TEXT + "\npolicy_changes: second_approval\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    datagen.generate(datagen.load_manifest(REPO_ROOT / "datasets" / "health_visits.yaml"), 50,
                     out / "health_visits", seed=1)
    return out / "health_visits"


@pytest.fixture(params=["memory", "sql"])
def svc(request, tmp_path, data):
    settings = load({"SANDBOX_HOME": str(tmp_path / "home"),
                     "SANDBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"})
    repo = MemoryRepository(utcnow) if request.param == "memory" else None
    services = bootstrap(settings, repo=repo, enqueue=lambda _job_id: None)
    for name, role in (("owner", st.OWNER), ("rev", st.COMPLIANCE), ("rev2", st.COMPLIANCE)):
        services.accounts.create_user(name, role, f"tok-{name}")
    services.owner.register_dataset(user(services, "owner"), REPO_ROOT / "datasets" / "health_visits.yaml", data)
    return services


def user(svc, name):
    return svc.accounts.user(name)


def changes(svc) -> PolicyChanges:
    return PolicyChanges(svc.parts)


def in_force(svc) -> int:
    with svc.parts.repo.transaction() as tx:
        return lookups.current_policy(tx, "health_visits")[0].version


@pytest.mark.parametrize("reason", ["", "   ", 7])
def test_a_change_without_a_reason_is_refused_and_says_what_to_fix(svc, reason):
    with pytest.raises(InvalidInput, match="reason") as e:
        changes(svc).apply(user(svc, "owner"), TEXT, FILE, reason)
    assert e.value.field == "reason"


def test_the_reason_is_kept_with_the_version_and_in_the_audit_log(svc):
    out = changes(svc).apply(user(svc, "owner"), TEXT, FILE, "first licences for the health pilot", 0)
    assert out == {"dataset": "health_visits", "version": 1, "hash": out["hash"], "changed": True, "state": "applied"}
    [v] = changes(svc).versions(user(svc, "rev"), "health_visits")
    assert (v["reason"], v["state"], v["applied_by"]) == ("first licences for the health pilot", "current", "owner")
    with svc.parts.repo.transaction() as tx:
        event = [a for a in tx.audit_records() if a.action == "policy.applied"][-1]
    assert event.payload["reason"] == "first licences for the health pilot"


def test_a_stale_editor_gets_a_conflict_naming_who_applied_what(svc):
    owner = user(svc, "owner")
    changes(svc).apply(owner, TEXT, FILE, "v1", 0)
    changes(svc).apply(owner, TEXT.replace("min_group_size: 10", "min_group_size: 11"), FILE, "bigger cells", 1)
    stale = TEXT.replace("min_group_size: 10", "min_group_size: 12")
    with pytest.raises(PolicyConflict, match="version 2 was applied by owner") as e:
        changes(svc).apply(owner, stale, FILE, "from an old tab", 1)
    assert (e.value.current.version, e.value.base) == (2, 1)
    assert in_force(svc) == 2
    # Starting again from the version in force works.
    assert changes(svc).apply(owner, stale, FILE, "on top of v2", 2)["version"] == 3


def test_without_a_base_version_the_change_applies_on_top_of_the_current_one(svc):
    owner = user(svc, "owner")
    changes(svc).apply(owner, TEXT, FILE, "v1")
    assert changes(svc).apply(owner, TEXT.replace("cpus: 2", "cpus: 1"), FILE, "fewer cpus")["version"] == 2
    assert changes(svc).versions(owner, "health_visits")[0]["base_version"] == 1


def test_in_process_setup_without_a_reason_still_applies(svc):
    # The admin bootstrap and test fixtures call the service directly with no reason.
    assert svc.owner.apply_policy(user(svc, "owner"), TEXT, FILE)["version"] == 1


def guarded(svc):
    changes(svc).apply(user(svc, "owner"), GUARDED, FILE, "ask for a second person from now on")
    return GUARDED.replace("min_group_size: 10", "min_group_size: 20")


def test_under_second_approval_a_change_is_only_proposed_until_approved(svc):
    owner, rev = user(svc, "owner"), user(svc, "rev")
    out = changes(svc).apply(owner, guarded(svc), FILE, "bigger cells")
    assert (out["version"], out["state"]) == (2, "proposed")
    assert in_force(svc) == 1       # admission, the API and pages still read version 1
    with svc.parts.repo.transaction() as tx:
        assert parse_policy(tx.latest_policy("health_visits").content, FILE).min_group_size == 10
    assert changes(svc).decide(rev, "health_visits", 2, True, "checked with the bureau")["state"] == "applied"
    assert in_force(svc) == 2
    [v2, _] = changes(svc).versions(owner, "health_visits")
    assert (v2["state"], v2["decided_by"], v2["decision_reason"]) == ("current", "rev", "checked with the bureau")
    assert any("min_group_size: 10 -> 20" in line for line in v2["summary"])
    assert "+min_group_size: 20" in v2["diff"]


def test_a_proposal_tells_each_compliance_user_once_and_leads_to_the_history(svc):
    owner = user(svc, "owner")
    changes(svc).apply(owner, guarded(svc), FILE, "bigger cells")
    for name in ("rev", "rev2"):
        [n] = svc.notices.inbox(user(svc, name))["notices"]
        assert (n["kind"], n["subject"], n["params"]["version"]) == ("policy-proposed", "health_visits", "2")
        assert "owner proposed version 2" in str(n["message"])
    assert svc.notices.inbox(owner)["notices"] == []   # applied changes and the proposer's own: no notice


def test_a_declined_proposal_never_comes_into_force_and_cannot_be_decided_again(svc):
    owner, rev = user(svc, "owner"), user(svc, "rev")
    changes(svc).apply(owner, guarded(svc), FILE, "bigger cells")
    changes(svc).decide(rev, "health_visits", 2, False, "not agreed with the bureau")
    assert in_force(svc) == 1
    with pytest.raises(Conflict, match="declined"):
        changes(svc).decide(user(svc, "rev2"), "health_visits", 2, True, "changed my mind")
    assert [v["state"] for v in changes(svc).versions(owner, "health_visits")] == ["declined", "current"]
    # The next change gets the next number; the declined one stays in the history.
    assert changes(svc).apply(owner, GUARDED.replace("cpus: 2", "cpus: 1"), FILE, "fewer cpus")["version"] == 3


def test_the_proposer_and_the_owner_cannot_approve_and_a_decision_needs_a_reason(svc):
    owner = user(svc, "owner")
    changes(svc).apply(owner, guarded(svc), FILE, "bigger cells")
    with pytest.raises(Forbidden):
        changes(svc).decide(owner, "health_visits", 2, True, "approving my own change")
    svc.accounts.create_user("rev3", st.COMPLIANCE, "tok-rev3")
    with pytest.raises(InvalidInput, match="reason"):
        changes(svc).decide(user(svc, "rev3"), "health_visits", 2, True, " ")
    assert in_force(svc) == 1


def test_approving_a_proposal_overtaken_by_another_is_a_conflict(svc):
    owner, rev = user(svc, "owner"), user(svc, "rev")
    first = guarded(svc)
    changes(svc).apply(owner, first, FILE, "bigger cells")                                   # v2, base 1
    changes(svc).apply(owner, GUARDED.replace("cpus: 2", "cpus: 1"), FILE, "fewer cpus")     # v3, base 1
    changes(svc).decide(rev, "health_visits", 3, True, "ok")
    with pytest.raises(PolicyConflict, match="decline it and propose"):
        changes(svc).decide(rev, "health_visits", 2, True, "ok too")
    assert in_force(svc) == 3


def test_removing_the_second_approval_rule_itself_needs_the_second_approval(svc):
    owner = user(svc, "owner")
    guarded(svc)
    assert changes(svc).apply(owner, TEXT, FILE, "drop the rule")["state"] == "proposed"


def test_policy_changes_takes_only_known_values():
    with pytest.raises(InvalidInput, match="policy_changes"):
        parse_policy(TEXT + "\npolicy_changes: three_approvals\n", FILE)
    assert parse_policy(GUARDED, FILE).needs_second_approval
    assert not parse_policy(TEXT, FILE).needs_second_approval


# ---- the HTTP API and the CLI say what to fix

def api(svc):
    from sandbox.controller.web import create_app
    client = create_app(svc.settings, services=svc).test_client()
    return lambda method, path, token, **kw: client.open(f"/api/v1{path}", method=method,
                                                         headers={"Authorization": f"Bearer tok-{token}"}, **kw)


def test_the_api_wants_a_reason_and_refuses_a_stale_base_with_409(svc):
    call = api(svc)
    resp = call("POST", "/policies", "owner", json={"content": TEXT, "filename": FILE})
    assert resp.status_code == 400 and resp.get_json()["field"] == "reason"
    assert call("POST", "/policies", "owner", json={"content": TEXT, "filename": FILE, "reason": "v1",
                                                    "base_version": 0}).get_json()["version"] == 1
    resp = call("POST", "/policies", "owner", json={"content": TEXT.replace("cpus: 2", "cpus: 1"), "filename": FILE,
                                                    "reason": "stale", "base_version": 0})
    assert resp.status_code == 409 and "version 1 was applied by owner" in resp.get_json()["message"]
    versions = call("GET", "/datasets/health_visits/policy/versions", "rev").get_json()["versions"]
    assert [(v["version"], v["state"], v["reason"]) for v in versions] == [(1, "current", "v1")]


def test_compliance_decides_a_proposal_through_the_api(svc):
    call = api(svc)
    guarded(svc)
    call("POST", "/policies", "owner", json={"content": GUARDED.replace("cpus: 2", "cpus: 1"), "filename": FILE,
                                             "reason": "fewer cpus"})
    path = "/datasets/health_visits/policy/versions/2/decision"
    assert call("POST", path, "owner", json={"decision": "approve", "reason": "x"}).status_code == 403
    assert call("POST", path, "rev", json={"decision": "approve"}).status_code == 400
    assert call("POST", path, "rev", json={"decision": "approve", "reason": "fine"}).get_json()["state"] == "applied"
    assert in_force(svc) == 2


def test_the_cli_apply_without_a_reason_exits_2_with_a_message(tmp_path, capsys):
    from sandbox.controller.cli import main
    policy = tmp_path / "health_visits.yaml"
    policy.write_text(TEXT, encoding="utf-8")
    code = main(["--url", "http://127.0.0.1:9", "--token", "t", "policy", "apply", str(policy)])
    assert code == 2 and "--reason" in capsys.readouterr().err

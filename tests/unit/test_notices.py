"""Notices (站内信): who is told what and when, on the fakes of test_lifecycle_fakes. Above all,
an operator's inbox (list, unread count, mail) says nothing about a job's outcome or its
timing before the job's fixed visible_after."""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone

import pytest

from sandbox.adapters.memory import MemoryRepository
from sandbox.config import REPO_ROOT
from sandbox.core import notices as nt
from sandbox.core import states as st
from sandbox.core.errors import NotFound
from sandbox.core.policy.model import Licence
from sandbox.core.records import Event, Job, Notice, User
from tests.unit import test_lifecycle_fakes as fakes
from tests.unit.test_failures_and_rejections import crash_on_real_data
from tests.unit.test_lifecycle_fakes import make, user

tiny_datasets = fakes.tiny_datasets   # the same module-scoped fixture: tiny demo datasets
START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


class Sink:
    """A mailer that keeps what it would send (the SMTP path: tests/integration/test_notices_mail.py)."""

    def __init__(self):
        self.sent = []

    def open(self):
        return self

    def message(self, to, subject, body):
        return (to, subject, body)

    def send_message(self, msg):
        self.sent.append(msg)

    def quit(self):
        pass


def query(name):
    return json.loads((REPO_ROOT / "jobs" / f"{name}.json").read_text())


def world(tmp_path, tiny_datasets, name, script=None, **policy_changes):
    svc, queue, clock, _ = make(tmp_path / name, tiny_datasets, script=script)
    # Decisions land at once, long before visible_after: the case a timing leak would show.
    svc.parts.settings = svc.parts.settings.with_(hold_slots=False)
    clock.now = START
    for key, value in policy_changes.items():
        owner = user(svc, "owner")
        text = svc.views.current_policy_text("health_visits")["content"]
        svc.owner.apply_policy(owner, re.sub(rf"(?m)^{key}: .*$", f"{key}: {value}", text),
                               "policies/health_visits.yaml")
    svc.notices.set_email("operator", "operator@example.org")
    return svc, queue, clock


def operator_inbox(svc, clock, sink, at):
    """Everything the operator can observe of their inbox at `at` (ids are random: left out)."""
    clock.now = at
    op = user(svc, "operator")
    inbox = svc.notices.inbox(op)
    svc.notices.send_mail(sink)
    mails = [m for m in sink.sent if m[0] == "operator@example.org"]
    return ([{k: v for k, v in n.items() if k != "id"} for n in inbox["notices"]], inbox["unread"],
            svc.notices.unread_count(op), len(mails))


def run(tmp_path, tiny_datasets, name, spec, script=None, decide=None):
    """Submit, run at once, let compliance decide at once; the operator's inbox before
    visible_after (two moments) and at it."""
    svc, queue, clock = world(tmp_path, tiny_datasets, name, script)
    job_id = svc.operator.submit(user(svc, "operator"), spec)["job"]["id"]
    queue.drain()
    if decide:
        svc.compliance.review(user(svc, "reviewer"), job_id, *decide)
    visible_after = datetime.fromisoformat(svc.views.get_job(user(svc, "operator"), job_id)["outcome_visible_after"])
    assert clock.now < visible_after - timedelta(seconds=1)   # really decided early
    sink = Sink()
    before = [operator_inbox(svc, clock, sink, t) for t in (START + timedelta(seconds=1),
                                                            visible_after - timedelta(microseconds=1))]
    return before, operator_inbox(svc, clock, sink, visible_after), sink


NEIGHBOURS = [
    # An automatic DP query that is released vs one whose run fails at once.
    (("enterprise_query", None, None), ("enterprise_query", crash_on_real_data, None)),
    # A query under review approved vs rejected by compliance at once.
    (("health_query", None, ("approve",)), ("health_query", None, ("reject", "disclosure_risk"))),
]


@pytest.mark.parametrize("a,b", NEIGHBOURS, ids=["released-vs-failed", "released-vs-rejected"])
def test_the_operators_inbox_is_identical_before_visible_after_whatever_the_outcome(tmp_path, tiny_datasets, a, b):
    before_a, at_a, _ = run(tmp_path, tiny_datasets, "a", query(a[0]), a[1], a[2])
    before_b, at_b, sink = run(tmp_path, tiny_datasets, "b", query(b[0]), b[1], b[2])
    assert before_a == before_b
    # From visible_after on, each says what the job view says then, and its mail goes out.
    assert [n["kind"] for n in at_a[0]] == ["released"] and at_a[1:] == (1, 1, 1)
    assert [n["kind"] for n in at_b[0]] == [b[2][0] + "ed" if b[2] else "failed"] and at_b[1:] == (1, 1, 1)
    assert "job" in sink.sent[0][2].lower() and "作业" in sink.sent[0][2]


def test_the_privacy_test_fails_if_visible_at_were_ignored(tmp_path, tiny_datasets, monkeypatch):
    real = nt.notices_for

    def ignoring_visible_after(job, to_state, now, **kw):
        found = real(job, to_state, now, **kw)
        for n in found:
            n.visible_at = now
        return found

    monkeypatch.setattr(nt, "notices_for", ignoring_visible_after)
    (a, b), = NEIGHBOURS[:1]
    before_a, _, _ = run(tmp_path, tiny_datasets, "a", query(a[0]), a[1], a[2])
    before_b, _, _ = run(tmp_path, tiny_datasets, "b", query(b[0]), b[1], b[2])
    assert before_a != before_b


def test_a_notice_not_yet_visible_cannot_be_marked_read_and_others_notices_are_unknown(tmp_path, tiny_datasets):
    svc, queue, clock = world(tmp_path, tiny_datasets, "w")
    job_id = svc.operator.submit(user(svc, "operator"), query("enterprise_query"))["job"]["id"]
    queue.drain()
    with svc.repo.transaction() as tx:
        hidden = tx.notices("operator")[0]
    assert hidden.subject == job_id and hidden.visible_at > clock.now
    with pytest.raises(NotFound):
        svc.notices.mark_read(user(svc, "operator"), hidden.id)
    clock.now = hidden.visible_at
    with pytest.raises(NotFound):
        svc.notices.mark_read(user(svc, "operator2"), hidden.id)
    assert svc.notices.mark_read(user(svc, "operator"), hidden.id)["read"] is True
    assert svc.notices.unread_count(user(svc, "operator")) == 0


def test_compliance_and_the_owner_are_told_at_once(tmp_path, tiny_datasets):
    svc, queue, clock = world(tmp_path, tiny_datasets, "w", run_approval="owner")
    job_id = svc.operator.submit(user(svc, "operator"), query("health_query"))["job"]["id"]
    owner_inbox = svc.notices.inbox(user(svc, "owner"))
    assert [(n["kind"], n["subject"]) for n in owner_inbox["notices"]] == [("run-approval-needed", job_id)]
    assert "operator" in owner_inbox["notices"][0]["message"]
    svc.owner.approve_run(user(svc, "owner"), job_id, True)
    queue.drain()
    review = svc.notices.inbox(user(svc, "reviewer"))
    assert [(n["kind"], n["subject"]) for n in review["notices"]] == [("needs-review", job_id)]
    assert svc.notices.mark_all_read(user(svc, "reviewer")) == 1
    assert svc.notices.unread_count(user(svc, "reviewer")) == 0


def test_budget_low_is_told_once_when_an_admission_crosses_a_fifth_of_the_allowance(tmp_path, tiny_datasets):
    svc, queue, clock = world(tmp_path, tiny_datasets, "w")   # health_visits: 5 per period, 1.0 per job
    op = user(svc, "operator")
    kinds = []
    for _ in range(5):
        svc.operator.submit(op, query("health_query"))
        kinds.append([n["kind"] for n in svc.notices.inbox(op)["notices"]])
    assert kinds == [[], [], [], [], ["budget-low"]]   # 1.0 left is not below 1.0; 0.0 is
    notice = svc.notices.inbox(op)["notices"][0]
    assert notice["params"] == {"dataset": "health_visits", "available": "0", "allowance": "5"}
    # A cancellation refunds the reservation: never an operator notice.
    job_id = svc.views.list_jobs(op)[0]["id"]
    svc.operator.cancel(op, job_id)
    assert len(svc.notices.inbox(op)["notices"]) == 1


def test_licence_notices_go_to_the_operator_and_the_owner_once_per_expiry_date(tmp_path, tiny_datasets):
    svc, queue, clock = world(tmp_path, tiny_datasets, "w")
    clock.now = datetime(2027, 12, 5, tzinfo=timezone.utc)   # both policies' licences of operator end 2027-12-31
    assert svc.notices.scan_licences() == 4
    assert svc.notices.scan_licences() == 0
    kinds = [(n["kind"], n["subject"]) for n in svc.notices.inbox(user(svc, "operator"))["notices"]]
    assert sorted(kinds) == [("licence-expiring", "enterprise_registry"), ("licence-expiring", "health_visits")]
    assert len(svc.notices.inbox(user(svc, "owner"))["notices"]) == 2


def test_licence_rule_skips_revoked_expired_and_distant_licences():
    today, now = date(2026, 6, 1), datetime(2026, 6, 1, tzinfo=timezone.utc)
    lic = [Licence("a", date(2026, 6, 30), frozenset()), Licence("b", date(2026, 6, 30), frozenset(), revoked=True),
           Licence("c", date(2026, 5, 31), frozenset()), Licence("d", date(2026, 7, 2), frozenset())]
    found = nt.licence_notices("ds", "own", lic, today, now)
    assert sorted(n.recipient for n in found) == ["a", "own"]


def test_outcome_notices_become_visible_at_visible_after_or_when_decided_later():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    job = Job(id="j", operator="op", dataset="d", mode="query", purpose="p", spec={}, spec_hash="", epsilon=1,
              state=st.CHECKING, visible_after=now + timedelta(hours=1))
    assert nt.notices_for(job, st.RELEASED, now)[0].visible_at == now + timedelta(hours=1)
    assert nt.notices_for(job, st.REJECTED, now + timedelta(hours=2))[0].visible_at == now + timedelta(hours=2)
    assert nt.notices_for(job, st.CANCELLED, now) == [] and nt.notices_for(job, st.QUEUED, now) == []


def test_the_memory_repository_deduplicates_and_lists_by_visible_at():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    repo = MemoryRepository(lambda: now)
    with repo.transaction() as tx:
        tx.save_user(User("u", st.OPERATOR, "h"), Event("t", "x", "u"))
        for i, (key, hours) in enumerate((("k1", 2), ("k2", 1), ("k1", 0))):
            tx.add_notice(Notice(f"n{i}", "u", nt.RELEASED, "j", {"job": "j", "dataset": "d"},
                                 now + timedelta(hours=hours), key), Event("t", "x", "j"))
    with repo.transaction() as tx:
        assert [n.id for n in tx.notices("u")] == ["n0", "n1"]
        assert [n.id for n in tx.notices("u", visible_by=now + timedelta(hours=1))] == ["n1"]
        assert [u.name for u in tx.users(st.OPERATOR)] == ["u"] and tx.users(st.OWNER) == []


def _sign_in(client, svc, name):
    from sandbox.controller.web import auth
    auth.set_password(svc, name, "correct horse battery")
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ui/login").get_data(as_text=True)).group(1)
    assert client.post("/ui/login", data={"name": name, "password": "correct horse battery",
                                          "csrf_token": token}).status_code == 302


def test_the_owners_and_reviewers_inbox_pages_link_to_where_they_act(tmp_path, tiny_datasets):
    from sandbox.controller.web import create_app
    svc, queue, clock = world(tmp_path, tiny_datasets, "w", run_approval="owner")
    job_id = svc.operator.submit(user(svc, "operator"), query("health_query"))["job"]["id"]
    svc.owner.approve_run(user(svc, "owner"), job_id, True)
    queue.drain()
    app = create_app(svc.settings, services=svc)
    for name, link in (("owner", "/ui/approvals"), ("reviewer", f"/ui/reviews/{job_id}")):
        client = app.test_client()
        _sign_in(client, svc, name)
        html = client.get("/ui/inbox").get_data(as_text=True)
        assert f'href="{link}"' in html and 'id="nav-inbox"' in html and "站内信 (1)" in html
        assert client.post("/ui/inbox/read-all").status_code == 400          # no CSRF token
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        assert client.post("/ui/inbox/read-all", data={"csrf_token": token}).status_code == 302
        assert "站内信 (1)" not in client.get("/ui/inbox").get_data(as_text=True)

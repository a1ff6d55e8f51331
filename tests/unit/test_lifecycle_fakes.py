"""Every mode's whole lifecycle on the fakes passed to bootstrap(): an in-memory
repository, an in-process queue and a backend that runs the trusted runner in this
process. No Docker, no database: the use cases and the one finish() path, fast."""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from sandbox import datagen
from sandbox.adapters.memory import MemoryRepository
from sandbox.adapters.queue import InProcessQueue
from sandbox.agent.backends import RunResult
from sandbox.agent.backends.fake import FakeBackend
from sandbox.bootstrap import bootstrap
from sandbox.config import REPO_ROOT, load
from sandbox.core import schedule
from sandbox.core import states as st
from sandbox.core.errors import Forbidden, NotFound
from sandbox.core.records import utcnow

ROWS = {"health_visits": 600, "enterprise_registry": 400}


class Clock:
    """A clock that moves only when the sandbox waits (holding a slot) or a test moves it."""

    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def tiny_datasets(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    for name, rows in ROWS.items():
        datagen.generate(datagen.load_manifest(REPO_ROOT / "datasets" / f"{name}.yaml"), rows, out / name, seed=3)
    return out


def make(tmp_path, tiny_datasets, script=None, wall_seconds=60):
    clock = Clock()
    settings = load({"SANDBOX_HOME": str(tmp_path / "home")})
    backend = FakeBackend(script)
    queue = InProcessQueue()
    svc = bootstrap(settings, repo=MemoryRepository(clock), queue=queue, clock=clock, sleep=clock.advance,
                    backend_factory=lambda _classification=None: backend)
    for name, role in (("operator", st.OPERATOR), ("operator2", st.OPERATOR), ("owner", st.OWNER),
                       ("owner2", st.OWNER), ("reviewer", st.COMPLIANCE)):
        svc.accounts.create_user(name, role, f"tok-{name}")
    owner = svc.accounts.user("owner")
    for name in ROWS:
        svc.owner.register_dataset(owner, REPO_ROOT / "datasets" / f"{name}.yaml", tiny_datasets / name)
        text = (REPO_ROOT / "policies" / f"{name}.yaml").read_text(encoding="utf-8")
        svc.owner.apply_policy(owner, re.sub(r"wall_seconds: \d+", f"wall_seconds: {wall_seconds}", text),
                               f"policies/{name}.yaml")
    return svc, queue, clock, backend


def user(svc, name):
    return svc.accounts.user(name)


def program_job():
    spec = json.loads((REPO_ROOT / "jobs" / "program_mean_cost.json").read_text())
    code = (REPO_ROOT / "jobs" / spec.pop("program")).read_text()
    return {"spec": dict(spec, blocks=2), "code": code}


def reviewed_job():
    spec = json.loads((REPO_ROOT / "jobs" / "reviewed_enterprise.json").read_text())
    code = (REPO_ROOT / "jobs" / spec.pop("program")).read_text()
    return {"spec": spec, "code": code}


def test_a_query_job_runs_through_the_fakes_and_shows_only_after_its_fixed_time(tmp_path, tiny_datasets):
    svc, queue, clock, _ = make(tmp_path, tiny_datasets)
    op = user(svc, "operator")
    spec = json.loads((REPO_ROOT / "jobs" / "enterprise_query.json").read_text())
    job = svc.operator.submit(op, spec)["job"]
    assert job["state"] == "queued"
    submitted_at = clock.now
    assert queue.drain() == 1
    assert svc.views.get_job(user(svc, "reviewer"), job["id"])["state"] == st.RELEASED
    # The worker held its slot until the calibrated bound (the snapshot check, start-up and a
    # scan per query of the size class, far below the policy's 60 s wall time), and the outcome
    # is hidden from the operator until then.
    t = svc.parts.settings.timing_for("L2")
    bound = schedule.task_slot_seconds("query", spec, 60, schedule.MIN_SIZE_CLASS, t)
    assert bound == pytest.approx(t.box_start_seconds + schedule.query_run_seconds(spec, schedule.MIN_SIZE_CLASS, t)
                                  + t.margin_seconds, abs=0.01)
    assert 0 < bound < 5
    assert clock.now == submitted_at + timedelta(seconds=bound)
    clock.now -= timedelta(microseconds=1)
    assert svc.views.get_job(op, job["id"])["state"] == "in_progress"
    clock.now += timedelta(microseconds=1)
    assert svc.views.get_job(op, job["id"])["state"] == st.RELEASED
    release = svc.views.release(op, job["id"])
    assert "result.json" in release["files"] and release["certificate"]["signature"]
    actions = [r.action for r in svc.views.audit_records()]
    assert "release.downloaded" in actions and svc.views.audit_verify()["ok"]


def test_a_program_job_fans_out_blocks_and_reaches_review(tmp_path, tiny_datasets):
    svc, queue, clock, backend = make(tmp_path, tiny_datasets)
    submitted = svc.operator.submit(user(svc, "operator"), dict(program_job(), spec=dict(
        program_job()["spec"], dataset="health_visits")))
    job_id = submitted["job"]["id"]
    queue.drain()  # the job, then its two blocks
    detail = svc.compliance.review_detail(user(svc, "reviewer"), job_id)
    assert detail["state"] == st.AWAITING_REVIEW
    assert "blocks" not in detail and "run_logs" not in detail  # DP mode: decided on code, spec, DP output
    svc.compliance.review(user(svc, "reviewer"), job_id, "approve")
    assert svc.views.get_job(user(svc, "owner"), job_id)["state"] == st.RELEASED
    assert [b["reason"] for b in svc.compliance.diagnostics(user(svc, "reviewer"), job_id)["blocks"]] == ["ok", "ok"]


def test_a_reviewed_job_is_checked_and_goes_to_a_person(tmp_path, tiny_datasets):
    svc, queue, _, _ = make(tmp_path, tiny_datasets)
    job_id = svc.operator.submit(user(svc, "operator"), reviewed_job())["job"]["id"]
    queue.drain()
    detail = svc.compliance.review_detail(user(svc, "reviewer"), job_id)
    assert detail["state"] == st.AWAITING_REVIEW
    assert {o["name"] for o in detail["outputs"]} >= {"active_by_district.csv", "notes.txt"}


def test_a_crashed_run_fails_and_the_operator_reads_no_detail(tmp_path, tiny_datasets):
    crash = RunResult(exit_code=1, timed_out=False, oom_killed=False, stdout=b"", stderr=b"secret row 42",
                      wall_seconds=0.1)
    svc, queue, clock, _ = make(tmp_path, tiny_datasets, script=lambda _req: crash)
    op = user(svc, "operator")
    job_id = svc.operator.submit(op, json.loads((REPO_ROOT / "jobs" / "enterprise_query.json").read_text()))["job"]["id"]
    queue.drain()
    clock.now += timedelta(seconds=6)
    seen = svc.views.get_job(op, job_id)
    assert seen["state"] == st.FAILED and "secret" not in json.dumps(seen)
    assert "secret row 42" in svc.compliance.diagnostics(user(svc, "reviewer"), job_id)["run_logs"][0]["stderr"]


def test_owners_act_only_on_datasets_their_account_owns(tmp_path, tiny_datasets):
    svc, _, _, _ = make(tmp_path, tiny_datasets)
    text = (REPO_ROOT / "policies" / "health_visits.yaml").read_text(encoding="utf-8")
    with pytest.raises(Forbidden):
        svc.owner.apply_policy(user(svc, "owner2"), text.replace("run_approval: auto", "run_approval: owner"),
                               "policies/health_visits.yaml")
    svc.owner.apply_policy(user(svc, "owner"), text.replace("run_approval: auto", "run_approval: owner"),
                           "policies/health_visits.yaml")
    job_id = svc.operator.submit(user(svc, "operator"),
                                 json.loads((REPO_ROOT / "jobs" / "health_query.json").read_text()))["job"]["id"]
    with pytest.raises(Forbidden):
        svc.owner.approve_run(user(svc, "owner2"), job_id)
    assert svc.owner.approve_run(user(svc, "owner"), job_id)["state"] == st.QUEUED
    with pytest.raises(Forbidden):
        svc.owner.register_dataset(user(svc, "owner2"), REPO_ROOT / "datasets" / "health_visits.yaml",
                                   tiny_datasets / "health_visits")


def test_another_operators_job_answers_exactly_like_an_unknown_one(tmp_path, tiny_datasets):
    svc, _, _, _ = make(tmp_path, tiny_datasets)
    job_id = svc.operator.submit(user(svc, "operator"),
                                 json.loads((REPO_ROOT / "jobs" / "enterprise_query.json").read_text()))["job"]["id"]
    other = user(svc, "operator2")
    for action in (svc.operator.cancel, svc.views.get_job, svc.views.release):
        with pytest.raises(NotFound) as theirs:
            action(other, job_id)
        with pytest.raises(NotFound) as unknown:
            action(other, "0123456789abcdef")
        assert str(theirs.value) == str(unknown.value)


def test_a_job_never_reads_data_replaced_after_registration(tmp_path, tiny_datasets):
    import shutil
    data = tmp_path / "enterprise_registry"
    shutil.copytree(tiny_datasets / "enterprise_registry", data)
    svc, queue, clock, backend = make(tmp_path, tiny_datasets)
    owner = user(svc, "owner")
    svc.owner.register_dataset(owner, REPO_ROOT / "datasets" / "enterprise_registry.yaml", data)
    op, rev = user(svc, "operator"), user(svc, "reviewer")
    job_id = svc.operator.submit(op, json.loads((REPO_ROOT / "jobs" / "enterprise_query.json").read_text()))["job"]["id"]
    # The files change behind the catalog's back (root ignores the read-only modes).
    victim = sorted(data.rglob("*.parquet"))[0]
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes() + b"\0")
    queue.drain()
    assert backend.requests == []  # no box ever ran on the replaced files
    assert svc.views.get_job(rev, job_id)["state"] == st.FAILED  # an auto-released query: no person decides
    with svc.repo.transaction() as tx:
        assert "content hash" in tx.run_logs(job_id)[0].stderr

"""Failures look like every other outcome, rejections carry only a fixed text, and DP-mode
reviewers decide without what the operator's code made of the real data. On the fakes of
test_lifecycle_fakes (in-memory repository, in-process queue, a backend that can crash)."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from sandbox.agent.backends import RunResult
from sandbox.config import REPO_ROOT
from sandbox.controller.web import create_app
from sandbox.core import states as st
from sandbox.core.errors import Conflict, InvalidInput
from sandbox.core.lookups import OPERATOR_FAILURE_MESSAGE
from sandbox.core.release.reasons import REASONS
from tests.unit import test_lifecycle_fakes as fakes
from tests.unit.test_lifecycle_fakes import make, program_job, reviewed_job, user

tiny_datasets = fakes.tiny_datasets   # the same module-scoped fixture: tiny demo datasets

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
SECRET = "secret row 42: person 1001, 83 visits"


def crash_on_real_data(request):
    """A run that fails on the real data only (the submission's mock check passes)."""
    if request.label.startswith("mock"):
        return None
    return RunResult(exit_code=1, timed_out=False, oom_killed=False, stdout=SECRET.encode(),
                     stderr=SECRET.encode(), wall_seconds=0.3)


def health_query():
    return json.loads((REPO_ROOT / "jobs" / "health_query.json").read_text())


def world(tmp_path, tiny_datasets, name, script=None):
    svc, queue, clock, _ = make(tmp_path / name, tiny_datasets, script=script)
    clock.now = START
    return svc, queue, clock


def operator_trace(svc, clock, job_id, moments) -> list:
    """Everything the operator can read about the job (and their budget) at each moment."""
    op = user(svc, "operator")
    trace = []
    for at in moments:
        clock.now = at
        seen = svc.views.get_job(op, job_id)
        listed = [v for v in svc.views.list_jobs(op) if v["id"] == job_id]
        in_progress = [v["id"] for v in svc.views.list_jobs(op, "in_progress")]
        balance = svc.views.balance(op, seen["dataset"])
        trace.append(({k: v for k, v in seen.items() if k != "id"},
                      [{k: v for k, v in x.items() if k != "id"} for x in listed],
                      in_progress == [job_id], balance))
    return trace


def run_to_decision(svc, queue, clock, submission, note):
    job_id = svc.operator.submit(user(svc, "operator"), submission)["job"]["id"]
    clock.now = START + timedelta(seconds=1)
    queue.drain()
    reviewer = user(svc, "reviewer")
    visible_after = datetime.fromisoformat(svc.views.get_job(user(svc, "operator"), job_id)["outcome_visible_after"])
    before = operator_trace(svc, clock, job_id, [START + timedelta(seconds=2), visible_after - timedelta(microseconds=1),
                                                 visible_after, visible_after + timedelta(hours=1)])
    assert svc.compliance.review_detail(reviewer, job_id)["state"] == st.AWAITING_REVIEW
    clock.now = visible_after + timedelta(hours=2)
    svc.compliance.review(reviewer, job_id, "reject", "disclosure_risk", note)
    after = operator_trace(svc, clock, job_id, [visible_after + timedelta(hours=3)])
    return job_id, before, after


@pytest.mark.parametrize("kind", ["reviewed", "query under review"])
def test_a_run_that_fails_on_real_data_looks_to_its_operator_like_one_that_succeeds(tmp_path, tiny_datasets, kind):
    submission = reviewed_job() if kind == "reviewed" else health_query()
    ok = world(tmp_path, tiny_datasets, "ok")
    failing = world(tmp_path, tiny_datasets, "failing", script=crash_on_real_data)
    ok_id, ok_before, ok_after = run_to_decision(*ok, submission, note="")
    bad_id, bad_before, bad_after = run_to_decision(*failing, submission, note="it crashed: " + SECRET)
    # Same states and times until the decision (in_progress throughout), the same rejection after.
    assert bad_before == ok_before
    assert {t[0]["state"] for t in bad_before} == {"in_progress"}
    assert bad_after == ok_after and bad_after[0][0]["state"] == st.REJECTED
    assert SECRET not in json.dumps(bad_before + bad_after, default=str)
    # Compliance, and only compliance, knows the run failed and why.
    failed = failing[0].compliance.review_detail(user(failing[0], "reviewer"), bad_id)["compliance"]["failed"]
    assert failed["stage"] == "run"
    assert "failed" not in ok[0].compliance.review_detail(user(ok[0], "reviewer"), ok_id)["compliance"]


def test_a_failed_run_cannot_be_approved_only_rejected(tmp_path, tiny_datasets):
    svc, queue, clock = world(tmp_path, tiny_datasets, "w", script=crash_on_real_data)
    job_id = svc.operator.submit(user(svc, "operator"), reviewed_job())["job"]["id"]
    queue.drain()
    reviewer = user(svc, "reviewer")
    detail = svc.compliance.review_detail(reviewer, job_id)
    assert detail["state"] == st.AWAITING_REVIEW and detail["outputs"] == []
    # Reviewed mode is not DP: the reviewer sees what the run wrote, failure included.
    assert SECRET in detail["run_logs"][0]["stderr"]
    with pytest.raises(Conflict, match="run failed"):
        svc.compliance.review(reviewer, job_id, "approve")
    assert svc.compliance.review(reviewer, job_id, "reject", "run_failed")["state"] == st.REJECTED


def test_the_operator_reads_only_the_fixed_text_of_a_rejection_never_the_note(tmp_path, tiny_datasets):
    svc, queue, clock = world(tmp_path, tiny_datasets, "w")
    job_id = svc.operator.submit(user(svc, "operator"), reviewed_job())["job"]["id"]
    queue.drain()
    note = "district 7 has two firms, one is ACME Ltd with 93% of the total"
    svc.compliance.review(user(svc, "reviewer"), job_id, "reject", "disclosure_risk", note)
    clock.now += timedelta(days=1)
    op = user(svc, "operator")
    seen = svc.views.get_job(op, job_id)
    assert seen["state"] == st.REJECTED
    assert seen["message"] in {f"Rejected by compliance: {text}" for text in REASONS.values()}
    assert seen["message"] == "Rejected by compliance: " + REASONS["disclosure_risk"]
    assert "ACME" not in json.dumps([seen, svc.views.list_jobs(op)])
    # Compliance keeps the note: on the vote and in the audit log.
    votes = svc.compliance.review_detail(user(svc, "reviewer"), job_id)["reviews"]
    keys = ("reviewer", "decision", "reason", "note")
    assert [{k: v[k] for k in keys} for v in votes] == [
        {"reviewer": "reviewer", "decision": "reject", "reason": "disclosure_risk", "note": note}]
    vote = next(r for r in svc.views.audit_records() if r.action == "review.vote")
    assert {k: vote.payload[k] for k in keys[1:]} == {"decision": "reject", "reason": "disclosure_risk", "note": note}
    # A job-wide rejection is every file's (core.release.decision).
    assert {f["decision"] for f in vote.payload["files"].values()} == {"reject"}


def test_a_rejection_takes_a_reason_code_from_the_fixed_list(tmp_path, tiny_datasets):
    svc, queue, _ = world(tmp_path, tiny_datasets, "w")
    job_id = svc.operator.submit(user(svc, "operator"), reviewed_job())["job"]["id"]
    queue.drain()
    reviewer = user(svc, "reviewer")
    for reason in ("", "  ", "grouping too fine for this purpose", None):
        with pytest.raises(InvalidInput) as e:
            svc.compliance.review(reviewer, job_id, "reject", reason)
        assert e.value.field == "reason"
    # Over HTTP: a clear 400 naming the valid codes.
    app = create_app(svc.settings, services=svc)
    client = app.test_client()
    headers = {"Authorization": "Bearer tok-reviewer"}
    resp = client.post(f"/api/v1/reviews/{job_id}", headers=headers,
                       json={"decision": "reject", "reason": "cells too small", "note": "n"})
    assert resp.status_code == 400 and resp.get_json()["field"] == "reason"
    assert "disclosure_risk" in resp.get_json()["message"] and "cells too small" in resp.get_json()["message"]
    codes = [r["code"] for r in client.get("/api/v1/review-reasons", headers=headers).get_json()["reasons"]]
    assert codes == list(REASONS) and "run_failed" in codes
    resp = client.post(f"/api/v1/reviews/{job_id}", headers=headers,
                       json={"decision": "reject", "reason": "outside_purpose", "note": "n"})
    assert resp.status_code == 200 and resp.get_json()["state"] == st.REJECTED


def test_program_review_holds_nothing_the_operators_code_made_of_the_real_data(tmp_path, tiny_datasets):
    def blocks_fail_loudly(request):
        if request.label.startswith("mock"):
            return None
        return RunResult(exit_code=1, timed_out=False, oom_killed=False, stdout=SECRET.encode(),
                         stderr=SECRET.encode(), wall_seconds=4.2)

    svc, queue, clock = world(tmp_path, tiny_datasets, "w", script=blocks_fail_loudly)
    job = program_job()
    job_id = svc.operator.submit(user(svc, "operator"), dict(job, spec=dict(job["spec"], dataset="health_visits")))[
        "job"]["id"]
    queue.drain()
    reviewer = user(svc, "reviewer")
    detail = svc.compliance.review_detail(reviewer, job_id)
    assert detail["state"] == st.AWAITING_REVIEW
    text = json.dumps(detail)
    assert SECRET not in text and "4.2" not in text, re.findall(r".{0,80}(?:4\.2|%s).{0,40}" % SECRET, text)
    assert not {"blocks", "run_logs", "updated_at"} & set(detail)
    assert set(detail["compliance"]) <= {"runner_image", "failed"}   # no block outcome counts
    assert {o["name"] for o in detail["outputs"]} == {"result.json", "program_output.csv"}
    assert "def " in detail["code"] and detail["diagnostics_open"] is False
    assert all("updated_at" not in j for j in svc.compliance.review_queue(reviewer))
    # The raw diagnostics open once the job is decided, and reading them is audited.
    with pytest.raises(Conflict):
        svc.compliance.diagnostics(reviewer, job_id)
    svc.compliance.review(reviewer, job_id, "approve")
    diagnostics = svc.compliance.diagnostics(reviewer, job_id)
    assert {b["reason"] for b in diagnostics["blocks"]} == {"error"}
    assert SECRET in diagnostics["blocks"][0]["stderr"]
    assert diagnostics["compliance"]["blocks"]["defaults_used"] == 2
    assert "job.diagnostics_read" in [r.action for r in svc.views.audit_records()]


def test_an_auto_released_query_whose_runner_fails_shows_a_fixed_text_at_its_fixed_time(tmp_path, tiny_datasets):
    svc, queue, clock = world(tmp_path, tiny_datasets, "w", script=crash_on_real_data)
    op = user(svc, "operator")
    spec = json.loads((REPO_ROOT / "jobs" / "enterprise_query.json").read_text())   # release: auto
    job_id = svc.operator.submit(op, spec)["job"]["id"]
    queue.drain()
    assert svc.views.get_job(user(svc, "reviewer"), job_id)["state"] == st.FAILED
    visible_after = datetime.fromisoformat(svc.views.get_job(op, job_id)["outcome_visible_after"])
    clock.now = visible_after - timedelta(microseconds=1)
    assert svc.views.get_job(op, job_id)["state"] == "in_progress"
    clock.now = visible_after
    seen = svc.views.get_job(op, job_id)
    assert seen["state"] == st.FAILED and seen["message"] == OPERATOR_FAILURE_MESSAGE

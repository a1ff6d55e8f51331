"""Reviewing a reviewed-mode job through the use cases (fakes, in-memory repository): every
needs_review finding is signed off before approval, per-file decisions make the job decision,
two reviewers vote blind; the sign-offs reach the audit log and the signed certificate, the
notes never reach the operator."""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from sandbox.config import REPO_ROOT
from sandbox.core import states as st
from sandbox.core.errors import Conflict
from sandbox.core.release.reasons import REASONS
from tests.unit import test_lifecycle_fakes as fakes
from tests.unit.test_lifecycle_fakes import make, reviewed_job, user

tiny_datasets = fakes.tiny_datasets
NOTE = "SECRET-NOTE firm 4711 dominates the services cell"


def job_without_the_failing_table():
    # On the tiny data the frequency table fails its threshold and the model its regressor
    # levels; what is left passes or needs review (a suppressed table, a free-form text).
    job = reviewed_job()
    spec = job["spec"]
    spec["tables"] = [t for t in spec.get("tables", []) if t["name"] != "active_by_district"]
    for m in spec.get("models", []):
        m["regressors"] = [r for r in m["regressors"] if r != "entity_type"]   # numeric regressors only
    spec["outputs"] = [o for o in spec.get("outputs", []) if o["name"] != "active_by_district.csv"]
    return job


def submitted(tmp_path, tiny_datasets, reviewers=1):
    svc, queue, clock, _ = make(tmp_path, tiny_datasets)
    if reviewers == 2:
        svc.accounts.create_user("reviewer2", st.COMPLIANCE, "tok-reviewer2")
        text = (REPO_ROOT / "policies" / "enterprise_registry.yaml").read_text(encoding="utf-8")
        text = re.sub(r"wall_seconds: \d+", "wall_seconds: 60", text.replace("release: auto", "release: two_reviewers"))
        svc.owner.apply_policy(user(svc, "owner"), text, "policies/enterprise_registry.yaml")
    job_id = svc.operator.submit(user(svc, "operator"), job_without_the_failing_table())["job"]["id"]
    queue.drain()
    svc.run_queued = queue.drain   # the next submissions of a test run with it
    return svc, clock, job_id


def all_signoffs(detail, note=""):
    return [{"output": f["output"], "check": f["check"], "note": note} for f in detail["findings"]]


def test_approval_needs_a_sign_off_on_every_finding_which_reaches_audit_and_certificate(tmp_path, tiny_datasets):
    svc, clock, job_id = submitted(tmp_path, tiny_datasets)
    rev = user(svc, "reviewer")
    detail = svc.compliance.review_detail(rev, job_id)
    assert detail["state"] == st.AWAITING_REVIEW
    assert {f["output"] for f in detail["findings"]} == {"employees_by_type.csv", "notes.txt"}   # both need review
    assert all(o["content"] for o in detail["outputs"])           # every output in full
    with pytest.raises(Conflict, match="sign off"):
        svc.compliance.review(rev, job_id, "approve")
    with pytest.raises(Conflict, match="content:notes.txt"):
        svc.compliance.review(rev, job_id, "approve", signoffs=all_signoffs(detail)[:-1])
    assert svc.views.get_job(rev, job_id)["state"] == st.AWAITING_REVIEW   # nothing recorded
    view = svc.compliance.review(rev, job_id, "approve", signoffs=all_signoffs(detail, NOTE))
    assert view["state"] == st.RELEASED

    vote = next(r for r in svc.views.audit_records() if r.action == "review.vote")
    assert {(s["output"], s["check"]) for s in vote.payload["signoffs"]} == \
        {(f["output"], f["check"]) for f in detail["findings"]}
    assert vote.payload["signoffs"][0]["note"] == NOTE                   # compliance keeps the notes
    clock.now += timedelta(days=1)
    release = svc.views.release(user(svc, "operator"), job_id)
    cert = release["certificate"]["certificate"]
    assert {(s["output"], s["check"]) for s in cert["reviews"][0]["signoffs"]} == \
        {(f["output"], f["check"]) for f in detail["findings"]}
    assert cert["reviews"][0]["files"] == {o["name"]: "approve" for o in detail["outputs"]}
    assert "SECRET-NOTE" not in json.dumps(release, ensure_ascii=False)


def test_requested_changes_reject_the_job_and_the_operator_reads_only_the_fixed_text(tmp_path, tiny_datasets):
    svc, clock, job_id = submitted(tmp_path, tiny_datasets)
    rev = user(svc, "reviewer")
    detail = svc.compliance.review_detail(rev, job_id)
    files = {o["name"]: {"decision": "approve"} for o in detail["outputs"]}
    files["employees_by_type.csv"] = {"decision": "request_changes", "note": NOTE}
    others_signed = [s for s in all_signoffs(detail) if s["output"] != "employees_by_type.csv"]
    view = svc.compliance.review(rev, job_id, None, files=files, signoffs=others_signed)
    assert view["state"] == st.REJECTED
    clock.now += timedelta(days=1)
    op = user(svc, "operator")
    seen = svc.views.get_job(op, job_id)
    assert seen["message"] == "Rejected by compliance: " + REASONS["changes_requested"]
    assert "SECRET-NOTE" not in json.dumps([seen, svc.views.list_jobs(op)], ensure_ascii=False)
    votes = svc.compliance.review_detail(rev, job_id)["reviews"]
    assert votes[0]["files"]["employees_by_type.csv"] == {"decision": "request_changes", "reason": "", "note": NOTE}


def test_two_reviewers_each_sign_off_and_vote_blind(tmp_path, tiny_datasets):
    svc, _, job_id = submitted(tmp_path, tiny_datasets, reviewers=2)
    rev1, rev2 = user(svc, "reviewer"), user(svc, "reviewer2")
    detail = svc.compliance.review_detail(rev1, job_id)
    assert detail["reviewers_required"] == 2
    svc.compliance.review(rev1, job_id, "approve", signoffs=all_signoffs(detail))
    assert svc.views.get_job(rev1, job_id)["state"] == st.AWAITING_REVIEW
    assert svc.compliance.review_detail(rev2, job_id)["reviews"] == [{"count": 1}]   # hidden until rev2 votes
    with pytest.raises(Conflict, match="sign off"):   # rev1's sign-offs do not stand for rev2's
        svc.compliance.review(rev2, job_id, "approve")
    with pytest.raises(Conflict, match="already reviewed"):
        svc.compliance.review(rev1, job_id, "approve", signoffs=all_signoffs(detail))
    assert svc.compliance.review(rev2, job_id, "approve", signoffs=all_signoffs(detail))["state"] == st.RELEASED


def test_a_released_trusted_table_is_kept_and_later_reviews_see_it_overlap(tmp_path, tiny_datasets):
    svc, clock, job_id = submitted(tmp_path, tiny_datasets)
    rev = user(svc, "reviewer")
    detail = svc.compliance.review_detail(rev, job_id)
    assert detail["differencing"]["earlier_releases"] == []
    assert detail["differencing"]["tables"] == {"employees_by_type.csv": ["entity_type"]}
    svc.compliance.review(rev, job_id, "approve", signoffs=all_signoffs(detail))
    # The next job of the same dataset version: the earlier table is named with how it overlaps,
    # by its grouping and size only.
    second = svc.operator.submit(user(svc, "operator"), job_without_the_failing_table())["job"]["id"]
    svc.run_queued()
    context = svc.compliance.review_detail(rev, second)["differencing"]
    (earlier,) = context["earlier_releases"]
    assert (earlier["job"], earlier["name"], earlier["grouping"]) == (job_id, "employees_by_type.csv", ["entity_type"])
    assert earlier["cells"] > 0 and "cells" not in json.dumps(earlier["overlaps"])
    assert earlier["overlaps"] == [{"output": "employees_by_type.csv", "relation": "same grouping"}]

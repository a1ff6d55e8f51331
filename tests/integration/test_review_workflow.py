"""Review workflow on real runs (bubblewrap): two independent reviewers, reasons from a fixed list, roles."""
from __future__ import annotations

import pytest

from sandbox.core.errors import Conflict, Forbidden
from sandbox.core.errors import InvalidInput
from sandbox.core.release.reasons import REASONS
from tests.conftest import make_services, need_backend
from tests.integration.test_ledger_store import TIGHT_POLICY, spec

TWO_REVIEWERS = TIGHT_POLICY.replace("release: one_reviewer", "release: two_reviewers")


@pytest.fixture
def services(demo_datasets_dir, tmp_path):
    need_backend("bwrap")
    users = [(name, role, f"{name}-token") for name, role in
             (("operator", "operator"), ("owner", "owner"), ("rev1", "compliance"), ("rev2", "compliance"))]
    svc = make_services(tmp_path, demo_datasets_dir, users=users, policy=TWO_REVIEWERS)
    yield svc
    svc.dispose()


def user(svc, name):
    return svc.accounts.authenticate(f"{name}-token")


@pytest.mark.bwrap
def test_two_independent_reviewers_are_needed_and_cannot_see_each_others_vote(services):
    op, rev1, rev2 = user(services, "operator"), user(services, "rev1"), user(services, "rev2")
    job_id = services.operator.submit(op, spec(0.1))["job"]["id"]
    assert services.agent.execute(job_id) == "awaiting_review"
    services.compliance.review(rev1, job_id, "approve")
    assert services.views.get_job(rev1, job_id)["state"] == "awaiting_review"
    # rev2 has not voted: sees only how many votes exist, not who voted what.
    assert services.compliance.review_detail(rev2, job_id)["reviews"] == [{"count": 1}]
    with pytest.raises(Conflict):
        services.compliance.review(rev1, job_id, "approve")                  # one vote per reviewer
    services.compliance.review(rev2, job_id, "approve")
    assert services.views.get_job(rev2, job_id)["state"] == "released"
    assert {r["reviewer"] for r in services.compliance.review_detail(rev2, job_id)["reviews"]} == {"rev1", "rev2"}


@pytest.mark.bwrap
def test_a_rejection_needs_a_reason_code_and_the_operator_reads_only_its_fixed_text(services):
    op, rev1 = user(services, "operator"), user(services, "rev1")
    job_id = services.operator.submit(op, spec(0.1))["job"]["id"]
    services.agent.execute(job_id)
    for reason in ("  ", "grouping too fine for this purpose"):   # none, or free text
        with pytest.raises(InvalidInput):
            services.compliance.review(rev1, job_id, "reject", reason)
    services.compliance.review(rev1, job_id, "reject", "too_detailed", "grouping too fine for this purpose")
    with services.store.transaction() as s:  # the outcome becomes visible after start + wall limit
        from sandbox.adapters.store.models import Job
        s.get(Job, job_id).visible_after = None
    view = services.views.get_job(op, job_id)
    assert view["state"] == "rejected" and view["message"] == "Rejected by compliance: " + REASONS["too_detailed"]
    assert "grouping too fine" not in view["message"]   # the note stays with compliance
    assert services.compliance.review_detail(rev1, job_id)["reviews"][0]["note"] == "grouping too fine for this purpose"


@pytest.mark.bwrap
def test_only_compliance_reviews_and_never_outside_awaiting_review(services):
    op, owner, rev1 = user(services, "operator"), user(services, "owner"), user(services, "rev1")
    job_id = services.operator.submit(op, spec(0.1))["job"]["id"]
    with pytest.raises(Conflict):
        services.compliance.review(rev1, job_id, "approve")                  # still queued
    services.agent.execute(job_id)
    for who in (op, owner):
        with pytest.raises(Forbidden):
            services.compliance.review(who, job_id, "approve")
        with pytest.raises(Forbidden):
            services.compliance.review_queue(who)
    with pytest.raises(Conflict):
        services.views.release(op, job_id)                               # nothing released yet

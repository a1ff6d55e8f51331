"""The release gate on real runs (bubblewrap): disclosure checks decide what can go on."""
from __future__ import annotations

import pytest

from tests.conftest import OWNER
from sqlalchemy import select

from sandbox.adapters.store.models import AuditEvent
from tests.conftest import make_services, need_backend
from tests.integration.test_ledger_store import TIGHT_POLICY


@pytest.fixture
def services(demo_datasets_dir, tmp_path):
    need_backend("bwrap")
    svc = make_services(tmp_path, demo_datasets_dir, users=[("operator", "operator", "op-token")])
    yield svc
    svc.dispose()


def grouped(column: str) -> dict:
    return {"mode": "query", "dataset": "health_visits", "purpose": "public_health_planning",
            "queries": [{"name": "by", "statistic": "count", "group_by": [column], "epsilon": 0.1}]}


@pytest.mark.bwrap
def test_output_with_a_forbidden_column_is_never_stored_and_goes_to_compliance_as_failed(services):
    services.owner.apply_policy(OWNER, TIGHT_POLICY + "forbidden_columns: [person_id, sex]\n",
                          "policies/health_visits.yaml")
    user = services.accounts.authenticate("op-token")
    job_id = services.operator.submit(user, grouped("sex"))["job"]["id"]
    # A reviewer releases this job (one_reviewer), so its failure looks like any other outcome.
    assert services.agent.execute(job_id) == "awaiting_review"
    with services.store.transaction() as s:
        from sandbox.adapters.store.models import Job, Output
        assert s.get(Job, job_id).compliance["failed"]["stage"] == "gate"
        assert s.execute(select(Output).where(Output.job_id == job_id)).first() is None
    with services.store.transaction() as s:
        events = s.execute(select(AuditEvent).where(AuditEvent.action == "gate.checks",
                                                    AuditEvent.subject == job_id)).scalars().all()
    failed = [c["name"] for c in events[-1].payload["checks"] if c["status"] == "fail"]
    assert failed == ["forbidden_columns:by"]
    view = services.views.get_job(user, job_id)
    assert "sex" not in view["message"] and view["state"] == "in_progress"


@pytest.mark.bwrap
def test_clean_dp_table_passes_every_check(services):
    services.owner.apply_policy(OWNER, TIGHT_POLICY, "policies/health_visits.yaml")
    user = services.accounts.authenticate("op-token")
    job_id = services.operator.submit(user, grouped("district"))["job"]["id"]
    assert services.agent.execute(job_id) == "awaiting_review"
    reviewer = services.accounts.authenticate(services.accounts.create_user("rev", "compliance", "rev-token") and "rev-token")
    detail = services.compliance.review_detail(reviewer, job_id)
    checks = next(o for o in detail["outputs"] if o["name"] == "result.json")["checks"]
    assert {c["name"] for c in checks} >= {"shape:by", "forbidden_columns:by", "direct_identifiers:by",
                                           "row_level:by", "table_size:by"}
    assert all(c["status"] == "pass" for c in checks)
    summary = next(o for o in detail["outputs"] if o["name"] == "by.csv")["summary"]
    assert summary["rows"] == 14 and summary["columns"]["count"]["kind"] == "numeric"

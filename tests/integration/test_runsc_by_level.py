"""Higher classification levels run only under gVisor, never on a weaker box."""
from __future__ import annotations

import pytest

from tests.conftest import make_services, need_backend
from tests.integration.test_ledger_store import TIGHT_POLICY, spec


def services_for(tmp_path, datasets_dir, **env_extra):
    return make_services(tmp_path, datasets_dir, policy=TIGHT_POLICY, **env_extra,
                         users=[("operator", "operator", "op-token"), ("rev", "compliance", "rev-token")])


@pytest.mark.docker
def test_a_level_listed_for_runsc_runs_under_gvisor(demo_datasets_dir, tmp_path):
    need_backend("docker-runsc")
    svc = services_for(tmp_path, demo_datasets_dir, SANDBOX_RUNSC_LEVELS="L3")
    job_id = svc.operator.submit(svc.accounts.authenticate("op-token"), spec(0.1))["job"]["id"]
    assert svc.agent.execute(job_id) == "awaiting_review"
    assert svc.views.get_job(svc.accounts.authenticate("rev-token"), job_id)["backend"] == "docker-runsc"
    svc.dispose()


@pytest.mark.bwrap
def test_without_the_required_runtime_the_job_fails_instead_of_running_weaker(demo_datasets_dir, tmp_path):
    need_backend("bwrap")
    svc = services_for(tmp_path, demo_datasets_dir, SANDBOX_RUNSC_LEVELS="L3", SANDBOX_IMAGE="no-such-image:none")
    op, rev = svc.accounts.authenticate("op-token"), svc.accounts.authenticate("rev-token")
    job_id = svc.operator.submit(op, spec(0.1))["job"]["id"]
    # The policy has a reviewer release it: the failure goes to compliance like a success.
    svc.agent.execute(job_id)
    detail = svc.compliance.review_detail(rev, job_id)
    assert detail["state"] == "awaiting_review" and detail["compliance"]["failed"]["stage"] == "run"
    svc.compliance.review(rev, job_id, "reject", "run_failed")
    assert "isolation backend unavailable" in svc.compliance.diagnostics(rev, job_id)["run_logs"][0]["stderr"]
    svc.dispose()

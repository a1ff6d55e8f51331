"""A worker killed with SIGKILL mid-job: after restart the job ends in a definite
state, charged exactly once, with nothing of the lost run left behind."""
from __future__ import annotations

import subprocess
import time

import pytest

from tests.conftest import OWNER
from sqlalchemy import select

from sandbox.adapters.store.models import Job, LedgerEntry
from tests.conftest import DEMO_ROWS, flush_redis, make_env, need_backend
from tests.integration.harness import running
from tests.integration.test_ledger_store import TIGHT_POLICY, spec

BACKENDS = [pytest.param("docker", marks=pytest.mark.docker), pytest.param("bwrap", marks=pytest.mark.bwrap)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkilled_worker_job_recovers_and_is_charged_once(backend, database_url, demo_datasets_dir, tmp_path):
    need_backend(backend)
    env = make_env(tmp_path, database_url, demo_datasets_dir, backend)
    env.update({"SANDBOX_LEASE_MARGIN_SECONDS": "2", "SANDBOX_SWEEP_SECONDS": "1"})
    if not database_url.startswith("sqlite"):
        flush_redis()
    with running(env, DEMO_ROWS) as h:
        h.services.owner.apply_policy(OWNER, TIGHT_POLICY.replace("wall_seconds: 60", "wall_seconds: 8"),
                                "policies/health_visits.yaml")
        job_id = h.client("operator").submit(spec(0.1))["job"]["id"]
        deadline = time.monotonic() + 60
        while True:
            with h.services.store.transaction() as s:
                state = s.get(Job, job_id).state
            if state == "running":
                break
            assert state == "queued" and time.monotonic() < deadline, state
            time.sleep(0.02)
        h.sigkill_worker_process()
        with h.services.store.transaction() as s:
            assert s.get(Job, job_id).state == "running"
        h.start_worker()
        job = h.wait_state(job_id, {"awaiting_review", "failed", "released"}, timeout=90)
        assert job["state"] == "awaiting_review"
        assert job["attempts"] == 2
        with h.services.store.transaction() as s:
            kinds = sorted(e.kind for e in s.execute(select(LedgerEntry).where(LedgerEntry.job_id == job_id)).scalars())
        assert kinds == ["charge", "reserve"]
        assert h.client("reviewer").audit_verify()["ok"]
        if backend == "docker":
            left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=sandbox.label={job_id}"],
                                  capture_output=True, text=True).stdout.split()
            assert left == []

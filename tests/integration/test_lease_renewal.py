"""A live worker process renews the lease of the job it holds on the real store, so the
sweeper leaves the job alone past its original lease; once that process is SIGKILLed
the lease runs out and the sweeper requeues the job (issue 16)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta, timezone

from sandbox.adapters.store.models import Job
from sandbox.config import REPO_ROOT
from sandbox.core.records import utcnow
from tests.conftest import make_env, make_services
from tests.integration.test_ledger_store import TIGHT_POLICY, spec

HOLDER = """
import sys, time
from sandbox.agent.leases import LeaseKeeper
from sandbox.bootstrap import bootstrap
from sandbox.config import load
services = bootstrap(load(), enqueue=lambda _job_id: None)
keeper = LeaseKeeper(services.repo, services.clock, margin_seconds=2, interval_seconds=0.3)
keeper.keep(sys.argv[1])
print("holding", flush=True)
time.sleep(3600)
"""


def _lease(svc, job_id):
    with svc.store.transaction() as s:
        row = s.get(Job, job_id)
        expires = row.lease_expires
        return row.state, expires and (expires if expires.tzinfo else expires.replace(tzinfo=timezone.utc))


def test_a_live_worker_process_keeps_its_lease_and_a_killed_one_loses_it(database_url, demo_datasets_dir, tmp_path):
    svc = make_services(tmp_path, demo_datasets_dir, users=[("operator", "operator", "tok-op")],
                        database_url=database_url, policy=TIGHT_POLICY)
    job_id = svc.operator.submit(svc.accounts.user("operator"), spec(0.1))["job"]["id"]
    assert svc.agent.claim(job_id) is not None
    env = dict(os.environ, **make_env(tmp_path, database_url, demo_datasets_dir))
    worker = subprocess.Popen([sys.executable, "-c", HOLDER, job_id], env=env, cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "holding", worker.stderr.read()
        # The run outlasts its lease: two seconds left, as for blocks waiting behind others.
        with svc.store.transaction() as s:
            s.get(Job, job_id).lease_expires = utcnow() + timedelta(seconds=2)
        _state, first_lease = _lease(svc, job_id)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # well past the first lease
            assert svc.agent.sweep()["requeued"] == []
            time.sleep(0.5)
        state, renewed = _lease(svc, job_id)
        assert state == "running" and renewed > first_lease + timedelta(seconds=2)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        worker.stdout.close()
        worker.stderr.close()
    deadline = time.monotonic() + 10
    while not svc.agent.sweep()["requeued"]:
        assert time.monotonic() < deadline, "the killed worker's lease never ran out"
        time.sleep(0.5)
    assert _lease(svc, job_id)[0] == "queued"
    svc.dispose()

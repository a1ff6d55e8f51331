"""Workers on two hosts (issue 16): two Celery worker processes, each with its own
SANDBOX_HOME (work area and dataset cache), a real Redis broker, a fresh PostgreSQL
database, a real S3-compatible server (moto's server mode) holding the registered
version, and Docker boxes (bubblewrap when Docker is down).

Jobs and program blocks spread over both hosts; one host SIGKILLed mid-job loses
nothing: the job finishes on the other, charged once and released once; restarted,
the killed host removes the box, mount and raw-data copies its dead worker left.

Both "hosts" share this machine's network and Docker engine: their services listen on
127.0.0.1, which a separate network namespace would not reach without a bridge and
addresses for each (a deployment's concern, deploy/); what a host owns is its home,
and each host sweeps only boxes whose work area lies in its own home.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from sqlalchemy import select

from sandbox.adapters.store.models import AuditEvent, Job, LedgerEntry
from sandbox.agent.leftovers import output_mounts
from sandbox.config import REPO_ROOT, load
from sandbox.core import states as st
from tests.conftest import OWNER, fresh_postgres, need_backend
from tests.integration.harness import load_job
from tests.integration.test_shared_data_store import CREDENTIALS, moto_s3

pytestmark = pytest.mark.docker   # Docker here; bubblewrap where Docker is down

BUCKET = "bureau-data"
REDIS = "redis://127.0.0.1:6379/11"      # a database of its own: other tests flush 15
ROWS = 4_000


def _backend() -> str:
    from sandbox.agent.backends import BackendUnavailable
    from sandbox.agent.backends.select import get_backend
    try:
        get_backend(load({"SANDBOX_BACKEND": "docker"}))
        return "docker"
    except BackendUnavailable:
        need_backend("bwrap")
        return "bwrap"


@pytest.fixture
def fresh_pg():
    with fresh_postgres("sandbox_two_hosts") as url:
        yield url


@pytest.fixture
def s3(monkeypatch):
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    with moto_s3(BUCKET) as (endpoint, fs):
        yield endpoint, fs, CREDENTIALS


class Host:
    """One worker host: its own home, its own worker process."""

    def __init__(self, name: str, env: dict):
        self.name, self.env = name, env
        self.home = Path(env["SANDBOX_HOME"])
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.home / f"worker-{time.monotonic_ns()}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "sandbox.controller.cli", "worker", "--concurrency", "1"],
                                     env={**os.environ, **self.env}, cwd=REPO_ROOT, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.home.glob("worker-*.log")))

    def ran(self) -> set[str]:
        """Task names this host completed."""
        return set(re.findall(r"Task (sandbox\.run_\w+)\[[^\]]+\] succeeded", self.log()))

    def sigkill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)   # the worker alone, as a crash: its boxes live on
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def boxes(self) -> list[str]:
        out = subprocess.run(["docker", "ps", "-a", "--filter", "label=sandbox.box", "--format",
                              '{{.ID}} {{.Label "sandbox.work"}}'], capture_output=True, text=True).stdout
        jobs = str((self.home / "jobs").resolve())
        return [line.split()[0] for line in out.splitlines()
                if len(line.split()) == 2 and line.split()[1].startswith(jobs + "/")]


def _wait(predicate, timeout: float, what: str, hosts=()):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {h.name}\n{h.log()[-3000:]}" for h in hosts)
            raise AssertionError(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.2)
    return value


def test_two_worker_hosts_share_the_work_and_survive_one_killed(fresh_pg, s3, tmp_path):
    import logging

    from sandbox import datagen
    from sandbox.bootstrap import bootstrap
    logging.getLogger("werkzeug").setLevel(logging.WARNING)   # moto's request log
    endpoint, fs, creds = s3
    backend = _backend()
    import redis
    redis.Redis.from_url(REDIS).flushdb()
    incoming = tmp_path / "incoming"
    manifest_path = REPO_ROOT / "datasets" / "health_visits.yaml"
    datagen.generate(datagen.load_manifest(manifest_path), ROWS, incoming / "health_visits", seed=7)
    common = {
        "SANDBOX_DATABASE_URL": fresh_pg, "SANDBOX_BROKER_URL": REDIS, "SANDBOX_BACKEND": backend,
        "SANDBOX_S3_ENDPOINT": endpoint, "SANDBOX_DATA_STORE": f"s3://{BUCKET}/store",
        "SANDBOX_INGEST_ROOTS": str(incoming), "SANDBOX_HOLD_SLOTS": "0",
        "SANDBOX_LEASE_MARGIN_SECONDS": "4", "SANDBOX_SWEEP_SECONDS": "1",
        "SANDBOX_TIMING": "box_start_seconds=1.5,runner_start_seconds=8,child_start_cpu_seconds=12,"
                          "margin_seconds=1.5,block_wall_factor=2",
        **creds,
    }
    api = bootstrap(load({**common, "SANDBOX_HOME": str(tmp_path / "api")}))
    hosts = [Host(n, {**common, "SANDBOX_HOME": str(tmp_path / n)}) for n in ("host-a", "host-b")]
    try:
        reg = api.owner.register_version(OWNER, manifest_path.read_text(encoding="utf-8"),
                                         str(incoming / "health_visits"))
        digest = reg["content_hash"]
        # The version is in the shared store, complete; no worker host has a copy yet.
        assert fs.get_file_info(f"{BUCKET}/store/versions/{digest}/.complete").type == pafs.FileType.File
        policy = (REPO_ROOT / "policies" / "health_visits.yaml").read_text(encoding="utf-8")
        api.owner.apply_policy(OWNER, re.sub(r"wall_seconds: \d+", "wall_seconds: 20", policy),
                               "policies/health_visits.yaml")
        api.accounts.create_user("operator", st.OPERATOR, "tok-op")
        api.accounts.create_user("reviewer", st.COMPLIANCE, "tok-rev")
        operator, reviewer = api.accounts.user("operator"), api.accounts.user("reviewer")
        for h in hosts:
            h.start()

        def submit(raw) -> str:
            return api.operator.submit(operator, raw)["job"]["id"]

        def state(job_id) -> str:
            with api.store.transaction() as s:
                return s.get(Job, job_id).state

        query = {"mode": "query", "dataset": "health_visits", "purpose": "public_health_planning",
                 "queries": [{"name": "n", "statistic": "count", "epsilon": 0.1}]}
        spec = load_job("program_mean_cost.json")
        spec["blocks"], spec["epsilon"] = 6, 0.5
        program = {"spec": spec, "code": (REPO_ROOT / "jobs" / "program_mean_cost.py").read_text()}

        # 1. Spread: a program job's blocks and a few queries go to whichever host is free.
        spread = [submit(program)] + [submit(query) for _ in range(3)]
        done = {st.AWAITING_REVIEW, st.FAILED, st.RELEASED}
        _wait(lambda: all(state(j) in done for j in spread), 150, "the first jobs", hosts)
        assert [state(j) for j in spread] == [st.AWAITING_REVIEW] * 4, [h.log()[-2000:] for h in hosts]
        ran = [h.ran() for h in hosts]
        assert all(ran), f"a host ran nothing: {ran}"
        assert any("sandbox.run_block" in r for r in ran)
        # Each host read the version through its own verified cache, by content address.
        for h in hosts:
            if h.ran() & {"sandbox.run_job"}:
                assert (h.home / "store" / digest).is_dir()

        # 2. A host dies mid-job, its box still running. A query: its lease (run bound plus
        # margin, renewed while a worker lives) runs out in seconds, a program's only after
        # all its blocks could have run one after another.
        victim_job = submit(query)
        victim = _wait(lambda: next((h for h in hosts if any(h.boxes())
                                     and (h.home / "jobs" / victim_job).exists()), None), 60,
                       "a box of the job", hosts)
        survivor = next(h for h in hosts if h is not victim)
        victim.sigkill()
        left_boxes = victim.boxes()
        _wait(lambda: state(victim_job) in done, 90, "the job to finish on the other host", [survivor])
        assert state(victim_job) == st.AWAITING_REVIEW
        api.compliance.review(reviewer, victim_job, "approve")
        assert state(victim_job) == st.RELEASED
        with api.store.transaction() as s:
            kinds = sorted(e.kind for e in s.execute(select(LedgerEntry).where(LedgerEntry.job_id == victim_job))
                           .scalars())
            released = [e for e in s.execute(select(AuditEvent).where(AuditEvent.subject == victim_job,
                                                                     AuditEvent.action == "job.transition"))
                        .scalars() if e.payload.get("to") == st.RELEASED]
            assert s.get(Job, victim_job).attempts == 2
        assert kinds == ["charge", "reserve"]
        assert len(released) == 1
        assert victim.proc.poll() is not None   # so attempt 2 ran on the survivor

        # 3. Restarted, the killed host removes what its dead worker left: box, mount, data.
        victim.start()
        jobs = victim.home / "jobs"
        _wait(lambda: not victim.boxes() and not output_mounts(jobs) and not list(jobs.glob("*/attempt-*")),
              60, "the dead worker's leftovers to go", [victim])
        if backend == "docker":
            assert left_boxes, "the killed worker left no box: the test did not kill it mid-run"
    finally:
        for h in hosts:
            h.stop()
            # Whatever a failed run left must not outlive the test (nor block tmp_path's removal).
            for box in h.boxes():
                subprocess.run(["docker", "rm", "-f", box], capture_output=True)
            for point in output_mounts(h.home / "jobs"):
                subprocess.run(["umount", "-l", point], capture_output=True)
        api.dispose()

"""A worker killed mid-block leaves its box (a Docker container outlives its client) and
the tmpfs mounted on the box's /out. The sweeper removes both once the job's attempt is
no longer running, and leaves a live attempt's box alone (issue 16: it used to look for
the job's own label, which a program block's box does not carry, and never unmounted)."""
from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta

import pytest

from sandbox.adapters.store.models import Job
from sandbox.agent.leftovers import output_mounts
from sandbox.config import REPO_ROOT
from sandbox.core.records import utcnow
from tests.conftest import make_services, need_backend
from tests.integration.test_ledger_store import TIGHT_POLICY, spec

DYING_WORKER = """
import sys
from pathlib import Path
from sandbox.agent.backends import Limits, RunRequest
from sandbox.agent.backends.docker import DockerBackend
from sandbox.agent.outputs import bounded_output_area
work, label, data, image = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
(work / "job").mkdir(parents=True)
(work / "out").mkdir()
with bounded_output_area(work / "out", 1 << 20, 4):
    DockerBackend(image).run(RunRequest(job_dir=work / "job", data_dir=data, out_dir=work / "out",
                                        python_args=("-c", "import time; time.sleep(120)"),
                                        limits=Limits(wall_seconds=120), label=label))
"""


def _boxes(label: str) -> list[str]:
    return subprocess.run(["docker", "ps", "-aq", "--filter", f"label=sandbox.label={label}"],
                          capture_output=True, text=True).stdout.split()


@pytest.mark.docker
def test_the_sweeper_removes_a_dead_workers_block_box_and_mount(demo_datasets_dir, tmp_path):
    need_backend("docker")
    svc = make_services(tmp_path, demo_datasets_dir, users=[("operator", "operator", "tok-op")],
                        backend="docker", policy=TIGHT_POLICY)
    job_id = svc.operator.submit(svc.accounts.user("operator"), spec(0.1))["job"]["id"]
    assert svc.agent.claim(job_id)["attempt"] == 1
    work = svc.settings.jobs_dir / job_id / "attempt-1" / "run-0000"
    label = f"{job_id}-b0"
    worker = subprocess.Popen([sys.executable, "-c", DYING_WORKER, str(work), label,
                               str(demo_datasets_dir / "health_visits"), svc.settings.docker_image],
                              cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _boxes(label):
            assert worker.poll() is None, worker.stdout.read().decode()
            assert time.monotonic() < deadline, "the block's box never started"
            time.sleep(0.2)
        worker.kill()                     # SIGKILL: the worker's finally blocks never run
        worker.wait(10)
        assert _boxes(label) and output_mounts(svc.settings.jobs_dir)
        # The attempt is still running (its lease has not run out): its box is left alone.
        assert svc.agent.sweep()["requeued"] == []
        assert _boxes(label) and output_mounts(svc.settings.jobs_dir)
        with svc.store.transaction() as s:
            s.get(Job, job_id).lease_expires = utcnow() - timedelta(seconds=1)
        assert svc.agent.sweep()["requeued"] == [job_id]
        assert _boxes(label) == []
        assert output_mounts(svc.settings.jobs_dir) == []
        assert not (svc.settings.jobs_dir / job_id).exists()   # nor the raw-data work area
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        worker.stdout.close()
        for box in _boxes(label):
            subprocess.run(["docker", "rm", "-f", box], capture_output=True)
        for point in output_mounts(svc.settings.jobs_dir):
            subprocess.run(["umount", "-l", point], capture_output=True)
        svc.dispose()

"""A worker that is not root (issue 16): a dedicated uid in the Docker socket's group with
CAP_CHOWN and CAP_DAC_OVERRIDE runs a box, collects what it wrote (even from a folder the
box made private) and removes it; without them the Docker backend says what it needs when
checked, instead of a job failing mid-run with "Operation not permitted"."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sandbox.config import REPO_ROOT, load
from tests.conftest import need_backend

WORKER_UID = 10002      # the `sandbox` user of deploy/; owns nothing the box can see

RUN_ONE_BOX = """
import sys
from pathlib import Path
from sandbox.agent.backends import Limits, RunRequest
from sandbox.agent.backends.docker import DockerBackend
from sandbox.agent.boxes import write_job_dir
from sandbox.agent.outputs import collect_outputs
work, image = Path(sys.argv[1]), sys.argv[2]
backend = DockerBackend(image)
backend.check()
(work / "data").mkdir(parents=True)
write_job_dir(work / "job", {})
code = ("import os; os.makedirs('/out/d'); open('/out/d/y', 'w').write('y'); os.chmod('/out/d', 0o700); "
        "open('/out/x.txt', 'w').write('hi')")
result = backend.run(RunRequest(job_dir=work / "job", data_dir=work / "data", out_dir=work / "out",
                                python_args=("-c", code), limits=Limits(wall_seconds=60)))
print(result.exit_code, sorted(collect_outputs(work / "out", None, 4, 1000).accepted.items()))
import shutil
shutil.rmtree(work / "out")
print("removed", not (work / "out").exists())
"""


def _as_worker(caps: str, *args: str) -> subprocess.CompletedProcess:
    docker_gid = os.stat("/var/run/docker.sock").st_gid
    prefix = ["setpriv", "--reuid", str(WORKER_UID), "--regid", str(WORKER_UID), "--groups", str(docker_gid)]
    if caps:
        prefix += ["--inh-caps", caps, "--ambient-caps", caps]
    else:
        prefix += ["--inh-caps", "-all", "--bounding-set", "-chown,-dac_override"]
    return subprocess.run([*prefix, sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HOME": "/tmp"})


@pytest.mark.docker
def test_a_dedicated_user_with_two_capabilities_runs_collects_and_removes_a_box():
    need_backend("docker")
    work = Path(tempfile.mkdtemp(prefix="sandbox-worker-user-"))
    os.chown(work, WORKER_UID, WORKER_UID)
    try:
        done = _as_worker("+chown,+dac_override", "-c", RUN_ONE_BOX, str(work / "w"), load().docker_image)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.splitlines() == ["0 [('d/y', b'y'), ('x.txt', b'hi')]", "removed True"]
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.docker
def test_without_them_the_backend_says_what_it_needs():
    need_backend("docker")
    probe = ("from sandbox.agent.backends.docker import DockerBackend\n"
             "from sandbox.agent.backends import BackendUnavailable\n"
             "try:\n    DockerBackend('" + load().docker_image + "').check()\n"
             "except BackendUnavailable as e:\n    print(e)\nelse:\n    print('available')\n")
    done = _as_worker("", "-c", probe)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CAP_CHOWN and CAP_DAC_OVERRIDE" in done.stdout

"""A backend with no isolation at all, for fast lifecycle tests passed to bootstrap():
it runs the trusted runner in this process, with the box paths (/job, /data, /out)
mapped to the host folders. Never selectable by configuration (select.py knows only
docker and bwrap). `script(request)` may return a RunResult to stand in for the run
(a crash, a timeout), or None to run the runner."""
from __future__ import annotations

import io
import json
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout

from sandbox.agent.backends import LOG_CAP_BYTES, RunRequest, RunResult


class FakeBackend:
    name = "fake"

    def __init__(self, script=None):
        self.script = script
        self.requests: list[RunRequest] = []

    def run(self, request: RunRequest) -> RunResult:
        self.requests.append(request)
        if self.script is not None:
            scripted = self.script(request)
            if scripted is not None:
                return scripted
        from sandbox.runner import run_job
        boxes = {"/job": str(request.job_dir), "/data": str(request.data_dir), "/out": str(request.out_dir)}

        def host(value):
            if isinstance(value, str):
                for box, path in boxes.items():
                    if value == box or value.startswith(box + "/"):
                        return path + value[len(box):]
            return value

        job = {k: host(v) for k, v in json.loads((request.job_dir / "job.json").read_text()).items()}
        out, err = io.StringIO(), io.StringIO()
        start, code = time.monotonic(), 0
        with redirect_stdout(out), redirect_stderr(err):
            try:
                run_job(job)
            except Exception:  # noqa: BLE001 - a failing job is an outcome, as in a real box
                traceback.print_exc()
                code = 1
        return RunResult(exit_code=code, timed_out=False, oom_killed=False,
                         stdout=out.getvalue().encode()[:LOG_CAP_BYTES], stderr=err.getvalue().encode()[:LOG_CAP_BYTES],
                         wall_seconds=time.monotonic() - start)

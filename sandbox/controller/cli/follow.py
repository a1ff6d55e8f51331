"""`--wait`: follow a job to its outcome with one status line on stderr (state, time until
the outcome may be visible, "waiting for review"), built only from the caller's own view of
the job (render.status_line), so it shows an operator nothing the API does not."""
from __future__ import annotations

import sys
import time

from sandbox.controller.cli import render
from sandbox.controller.cli.common import console

POLL_SECONDS = 0.5
EXIT_FOR_STATE = {"released": 0, "rejected": 1, "failed": 1, "cancelled": 1}
TIMED_OUT = 3


def follow(c, job_id: str, timeout: float = 900.0) -> tuple[dict, int]:
    """Poll until the job is final or `timeout` seconds pass; returns (job, exit code):
    0 released, 1 rejected/failed/cancelled, 3 still going (common.EXIT_CODES)."""
    err = console(stderr=True)
    deadline = time.monotonic() + timeout
    if err.is_terminal:
        # A terminal gets one line kept up to date (spinner and countdown) ...
        with err.status(f"job {job_id}") as status:
            job, code = _poll(c, job_id, deadline, lambda job: status.update(_line(job_id, job)))
        if code != TIMED_OUT:
            print(_line(job_id, job), file=sys.stderr)   # the spinner's line is gone: say how it ended
    else:
        # ... a log or pipe gets a line per change, without the countdown ticking.
        last = [None]

        def log(job):
            line = render.status_line(job)
            key = "in progress" if line.startswith("in progress") else line
            if key != last[0]:
                last[0] = key
                print(_line(job_id, job), file=sys.stderr, flush=True)
        job, code = _poll(c, job_id, deadline, log)
    if code == TIMED_OUT:
        print(f"still {render.status_line(job)} after {render.duration(timeout)}; the job goes on: "
              f"`sandbox status {job_id} --wait` follows it again", file=sys.stderr)
    return job, code


def _line(job_id: str, job: dict) -> str:
    return f"job {job_id}: {render.status_line(job)}"


def _poll(c, job_id, deadline, report) -> tuple[dict, int]:
    while True:
        job = c.job(job_id)
        report(job)
        if job["state"] in EXIT_FOR_STATE:
            return job, EXIT_FOR_STATE[job["state"]]
        if time.monotonic() >= deadline:
            return job, TIMED_OUT
        time.sleep(POLL_SECONDS)

"""The trusted runner: executes inside the isolated container, next to raw data.

Invoked as `python -m sandbox.runner /job/job.json`. It writes only DP releases
to the job's out_dir, and on any error writes nothing and exits nonzero (the
traceback on stderr goes to compliance only).
"""
from __future__ import annotations


def run_job(job: dict, *, seed_for_tests=None) -> dict:
    """Run one job dict in-process; writes out_dir/result.json and returns the result."""
    kind = job.get("kind") if isinstance(job, dict) else None
    if kind == "query":
        from .query import run_query_job

        return run_query_job(job, seed_for_tests=seed_for_tests)
    if kind == "program_block":
        from .program import run_program_block

        return run_program_block(job)
    raise ValueError(f"unsupported job kind: {kind!r}")

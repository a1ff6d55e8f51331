"""The trusted runner: executes inside the isolated container, next to raw data.

Invoked as `python -m sandbox.runner /job/job.json`. Query jobs write DP releases;
program blocks write an untrusted vector and reviewed jobs untrusted files, both
checked by trusted host code; a reviewed job's declared tables and models are computed
here, in a box of their own without operator code. On error the traceback on stderr goes to
compliance only.
"""
from __future__ import annotations


def run_job(job: dict, *, seed_for_tests=None) -> dict:
    """Run one job dict in-process; writes out_dir/result.json and returns the result."""
    kind = job.get("kind") if isinstance(job, dict) else None
    if kind == "query":
        from sandbox.runner.query import run_query_job

        return run_query_job(job, seed_for_tests=seed_for_tests)
    if kind == "program_block":
        from sandbox.runner.program import run_program_block

        return run_program_block(job)
    if kind == "reviewed":
        from sandbox.runner.reviewed import run_reviewed_job

        return run_reviewed_job(job)
    if kind == "reviewed_tables":
        from sandbox.runner.tables import run_trusted_tables

        return run_trusted_tables(job)
    raise ValueError(f"unsupported job kind: {kind!r}")

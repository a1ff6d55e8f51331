"""`python -m sandbox.runner /job/job.json`: run one job inside the box.

Exceptions are left to propagate: Python prints the traceback to stderr (seen by
compliance only) and exits 1, and result.json is written only on success.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

MAX_JOB_BYTES = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sandbox.runner /job/job.json", file=sys.stderr)
        return 2
    path = Path(args[0])
    if path.stat().st_size > MAX_JOB_BYTES:
        raise ValueError(f"job file larger than {MAX_JOB_BYTES} bytes")
    job = json.loads(path.read_text(encoding="utf-8"))

    from sandbox.runner import run_job

    run_job(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())

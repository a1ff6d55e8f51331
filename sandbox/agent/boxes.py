"""One way to lay out and run a box: /job (read-only: job.json, the program), /out (a
bounded writable area), /data (the dataset or a block of it, read-only)."""
from __future__ import annotations

import json
from pathlib import Path

from sandbox.agent.backends import RunRequest
from sandbox.agent.outputs import bounded_output_area, collect_outputs

RUNNER_ARGS = ("-m", "sandbox.runner", "/job/job.json")


def write_job_dir(job_dir: Path, job: dict, program: str | None = None) -> Path:
    """job.json (+ program.py) readable by the box's unprivileged user."""
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    job_dir.chmod(0o755)
    files = {"job.json": json.dumps(job)}
    if program is not None:
        files["program.py"] = program
    for name, text in files.items():
        (job_dir / name).write_text(text, encoding="utf-8")
        (job_dir / name).chmod(0o644)
    return job_dir


def run_box(backend, work_dir: Path, data_dir: Path, job: dict, limits, label: str, *, program: str | None = None,
            expected: set[str] | None = None, max_files: int = 4):
    """Run the in-box runner once; returns (RunResult, CollectedOutputs). `expected`
    None collects every file (declared or not) so compliance sees what was dropped."""
    work_dir = Path(work_dir)
    job_dir = write_job_dir(work_dir / "job", job, program)
    out_dir = work_dir / "out"
    out_dir.mkdir(parents=True)
    out_dir.chmod(0o755)
    with bounded_output_area(out_dir, limits.output_bytes, max_files):
        result = backend.run(RunRequest(job_dir=job_dir, data_dir=Path(data_dir), out_dir=out_dir,
                                        python_args=RUNNER_ARGS, limits=limits, label=label))
        collected = collect_outputs(out_dir, expected, max_files=max_files, max_total_bytes=limits.output_bytes)
    return result, collected

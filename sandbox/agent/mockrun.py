"""`sandbox run --mock`: the real-data pipeline, run on mock data, showing everything.

Same spec validation, same runner, same isolation backend and same release-gate checks
as a real run; only the data differ (generated from the public manifest alone), so an
analyst can see stdout, errors and outputs and fix a job before spending budget.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from sandbox.core.release import gate
from sandbox.core.manifest import Manifest
from sandbox.core.specs.query import parse_query_spec
from sandbox.agent.backends import Limits, RunRequest


def mock_data_dir(manifest: Manifest, folder: Path, rows: int, seed: int = 0) -> Path:
    """A dataset folder of mock data (from the public manifest alone), readable by the
    unprivileged user of the box."""
    from sandbox import datagen
    folder.mkdir(parents=True)
    folder.chmod(0o755)
    datagen.write_mock_parquet(manifest, folder / "mock.parquet", rows=rows, seed=seed)
    (folder / "mock.parquet").chmod(0o644)
    return folder


def run_on_mock(raw_spec: dict, manifest: Manifest, backend, rows: int = 2000, seed: int = 0,
                code: str | None = None) -> dict:
    if code is not None and raw_spec.get("mode") == "reviewed":
        return _reviewed_on_mock(raw_spec, manifest, backend, rows, seed, code)
    if code is not None:
        return _program_on_mock(raw_spec, manifest, backend, rows, seed, code)
    spec = parse_query_spec(raw_spec, manifest)
    with tempfile.TemporaryDirectory(prefix="sandbox-mock-") as tmp:
        root = Path(tmp)
        for d in ("job", "out"):
            (root / d).mkdir()
            (root / d).chmod(0o755)
        mock_data_dir(manifest, root / "data", rows, seed)
        job = {"kind": "query", "spec": spec.to_dict(), "manifest": manifest.to_dict(), "data_dir": "/data",
               "bound_verified": False, "out_dir": "/out"}
        (root / "job" / "job.json").write_text(json.dumps(job))
        (root / "job" / "job.json").chmod(0o644)
        result = backend.run(RunRequest(job_dir=root / "job", data_dir=root / "data", out_dir=root / "out",
                                        python_args=("-m", "sandbox.runner", "/job/job.json"),
                                        limits=Limits(wall_seconds=120), label="mock"))
        raw = (root / "out" / "result.json").read_bytes() if (root / "out" / "result.json").exists() else None
    checks, parsed = gate.check_query_result(raw, spec.to_dict(), manifest) if raw else ([], None)
    return {"mock": True, "backend": getattr(backend, "name", ""), "exit_code": result.exit_code,
            "timed_out": result.timed_out, "stdout": result.stdout.decode("utf-8", "replace"),
            "stderr": result.stderr.decode("utf-8", "replace"), "checks": [c.to_dict() for c in checks],
            "result": parsed}


def _program_on_mock(raw_spec: dict, manifest: Manifest, backend, rows: int, seed: int, code: str) -> dict:
    """Run the program on the whole mock dataset as one block, in the real block box,
    and show its vector, the contract check and everything it printed."""
    from sandbox.agent import aggregation as saa
    from sandbox.core.specs.program import expected_error, parse_program_spec
    spec = parse_program_spec(raw_spec, manifest, code=code)
    with tempfile.TemporaryDirectory(prefix="sandbox-mock-") as tmp:
        block = mock_data_dir(manifest, Path(tmp) / "block", rows, seed)
        outcome = saa.run_block(backend, spec, block, Path(tmp) / "run",
                                saa.block_limits(spec, Limits(memory_mb=2048)), label="mock")
    return {"mock": True, "backend": getattr(backend, "name", ""), "exit_code": outcome.run.exit_code,
            "timed_out": outcome.run.timed_out, "stdout": outcome.run.stdout.decode("utf-8", "replace"),
            "stderr": outcome.run.stderr.decode("utf-8", "replace"),
            "contract": "ok" if outcome.reason is None else f"violated: {outcome.reason} (the default vector would be used)",
            "vector": outcome.vector, "expected_error": expected_error(spec),
            "checks": [{"name": "contract", "status": "pass" if outcome.reason is None else "fail",
                        "explanation": outcome.reason or "vector of the declared length, finite numbers"}]}


def _reviewed_on_mock(raw_spec: dict, manifest: Manifest, backend, rows: int, seed: int, code: str) -> dict:
    """Run a reviewed-mode program on mock data in the real box and show its files with
    the checks they would get (default thresholds: the dataset's policy may be stricter)."""
    from types import SimpleNamespace

    from sandbox.core.specs.reviewed import parse_reviewed_spec
    from sandbox.agent.outputs import collect_outputs
    spec = parse_reviewed_spec(raw_spec, manifest, code=code)
    with tempfile.TemporaryDirectory(prefix="sandbox-mock-") as tmp:
        root = Path(tmp)
        for d in ("job", "out"):
            (root / d).mkdir()
            (root / d).chmod(0o755)
        mock_data_dir(manifest, root / "data", rows, seed)
        (root / "job" / "program.py").write_text(code, encoding="utf-8")
        (root / "job" / "job.json").write_text(json.dumps({"kind": "reviewed", "entrypoint": spec.entrypoint,
                                                           "program": "/job/program.py", "data_dir": "/data",
                                                           "out_dir": "/out"}))
        for f in (root / "job" / "program.py", root / "job" / "job.json"):
            f.chmod(0o644)
        result = backend.run(RunRequest(job_dir=root / "job", data_dir=root / "data", out_dir=root / "out",
                                        python_args=("-m", "sandbox.runner", "/job/job.json"),
                                        limits=Limits(wall_seconds=min(spec.timeout_seconds, 300)), label="mock"))
        collected = collect_outputs(root / "out", None, max_files=32, max_total_bytes=10 << 20)
    policy = SimpleNamespace(forbidden_columns=frozenset(), min_group_size=10)
    checks = []
    for o in spec.outputs:
        checks += [c.to_dict() for c in gate.check_declared_file(o, collected.accepted.get(o.name), 10 << 20,
                                                                 policy, [], "mock")]
    return {"mock": True, "backend": getattr(backend, "name", ""), "exit_code": result.exit_code,
            "timed_out": result.timed_out, "stdout": result.stdout.decode("utf-8", "replace"),
            "stderr": result.stderr.decode("utf-8", "replace"),
            "files": {n: len(b) for n, b in collected.accepted.items()},
            "dropped": [n for n in collected.accepted if not spec.declared(n)] + [r[0] for r in collected.refused],
            "checks": checks}

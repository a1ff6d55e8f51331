"""`sandbox run --mock`: the real-data pipeline, run on mock data, showing everything.

Same spec validation, same runner, same isolation backend and same release-gate checks
as a real run; only the data differ (generated from the public manifest alone), so an
analyst can see stdout, errors and outputs and fix a job before spending budget.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from . import gate
from .domain.manifest import Manifest
from .domain.spec import parse_query_spec
from .isolation import Limits, RunRequest


def run_on_mock(raw_spec: dict, manifest: Manifest, backend, rows: int = 2000, seed: int = 0) -> dict:
    from . import datagen
    spec = parse_query_spec(raw_spec, manifest)
    with tempfile.TemporaryDirectory(prefix="sandbox-mock-") as tmp:
        root = Path(tmp)
        for d in ("job", "data", "out"):
            (root / d).mkdir()
            (root / d).chmod(0o755)
        datagen.write_mock_parquet(manifest, root / "data" / "mock.parquet", rows=rows, seed=seed)
        (root / "data" / "mock.parquet").chmod(0o644)
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

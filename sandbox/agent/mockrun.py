"""`sandbox run --mock`: the real-data pipeline, run on mock data, showing everything.

Same spec validation, same runner, same isolation backend and same release-gate checks
as a real run; only the data differ (generated from the public manifest alone), so an
analyst can see stdout, errors and outputs and fix a job before spending budget.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from sandbox.agent.backends import Limits
from sandbox.agent.boxes import run_box
from sandbox.core.errors import InvalidInput, Text
from sandbox.core.manifest import Manifest
from sandbox.core.release import gate
from sandbox.core.specs.query import parse_query_spec

# How much of a mock run's stderr a refusal quotes: the end of a traceback.
MOCK_STDERR_CHARS = 1500


def _timing(backend):
    """The start-up costs of the backend the mock run uses (gVisor's are larger), as for real data."""
    from sandbox.core.schedule import GVISOR, Timing
    return GVISOR if getattr(backend, "runtime", "") == "runsc" else Timing()


def mock_data_dir(manifest: Manifest, folder: Path, rows: int, seed: int = 0, mode: str | None = None) -> Path:
    """A dataset folder of mock data (from the public manifest alone), readable by the
    unprivileged user of the box; for a box of operator code (`mode`), without the columns
    the owner's classification keeps from that mode, as in the real run."""
    import pyarrow.parquet as pq

    from sandbox import datagen
    from sandbox.core import datafiles
    folder.mkdir(parents=True)
    folder.chmod(0o755)
    table = datagen.generate_mock(manifest, rows, seed=seed)
    if mode is not None:
        table = table.drop_columns([c.name for c in manifest.restricted(mode) if c.name in table.column_names])
    pq.write_table(table, folder / "mock.parquet", compression=datagen.mock.COMPRESSION)
    for path in datafiles.parquet_files(folder):  # what every job reads: the one discovery rule
        path.chmod(0o644)
    return folder


def run_on_mock(raw_spec: dict, manifest: Manifest, backend, rows: int = 2000, seed: int = 0,
                code: str | None = None) -> dict:
    if raw_spec.get("mode") == "reviewed":  # a job of trusted tables alone has no code
        return _reviewed_on_mock(raw_spec, manifest, backend, rows, seed, code)
    if code is not None:
        return _program_on_mock(raw_spec, manifest, backend, rows, seed, code)
    spec = parse_query_spec(raw_spec, manifest)
    with tempfile.TemporaryDirectory(prefix="sandbox-mock-") as tmp:
        root = Path(tmp)
        mock_data_dir(manifest, root / "data", rows, seed)
        job = {"kind": "query", "spec": spec.to_dict(), "manifest": manifest.to_dict(), "data_dir": "/data",
               "bound_verified": False, "out_dir": "/out"}
        result, collected = run_box(backend, root / "run", root / "data", job, Limits(wall_seconds=120), "mock",
                                    expected={"result.json"})
        raw = collected.accepted.get("result.json")
    checks, parsed = gate.check_query_result(raw, spec.to_dict(), manifest) if raw else ([], None)
    return {"mock": True, "backend": getattr(backend, "name", ""), "exit_code": result.exit_code,
            "timed_out": result.timed_out, "stdout": result.stdout.decode("utf-8", "replace"),
            "stderr": result.stderr.decode("utf-8", "replace"), "checks": [c.to_dict() for c in checks],
            "result": parsed}


def _program_on_mock(raw_spec: dict, manifest: Manifest, backend, rows: int, seed: int, code: str) -> dict:
    """Run the program on the whole mock dataset as one block, in the real block box,
    and show its vector, the contract check and everything it printed."""
    from sandbox.agent import aggregation as saa
    from sandbox.core.specs.program import parse_program_spec
    from sandbox.core.specs.program_accounting import expected_error
    spec = parse_program_spec(raw_spec, manifest, code=code)
    with tempfile.TemporaryDirectory(prefix="sandbox-mock-") as tmp:
        block = mock_data_dir(manifest, Path(tmp) / "block", rows, seed, mode="program")
        outcome = saa.run_block(backend, spec, block, Path(tmp) / "run",
                                saa.block_limits(spec, Limits(memory_mb=2048), timing=_timing(backend)), label="mock",
                                timing=_timing(backend))
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

    from sandbox.agent.backends import RunResult
    from sandbox.agent.modes.reviewed import TRUSTED_FILE, judge_free_form, judge_trusted, run_program, run_trusted
    from sandbox.agent.outputs import CollectedOutputs
    from sandbox.core.specs.reviewed import parse_reviewed_spec
    spec = parse_reviewed_spec(raw_spec, manifest, code=code)
    policy = SimpleNamespace(forbidden_columns=frozenset(), min_group_size=10)
    checks, trusted_files = [], {}
    result, collected = RunResult(0, False, False, b"", b"", 0.0), CollectedOutputs({}, [])
    with tempfile.TemporaryDirectory(prefix="sandbox-mock-") as tmp:
        root = Path(tmp)
        mock_data_dir(manifest, root / "data", rows, seed)
        if spec.has_computations:
            result, box = run_trusted(spec, manifest, root / "data", root / "trusted",
                                      Limits(wall_seconds=300, output_files=1), "mock-t", backend)
            raw = box.accepted.get(TRUSTED_FILE)
            if raw:
                for judged in judge_trusted(spec, json.loads(raw), policy, "mock", []):
                    checks += [c.to_dict() for c in judged.checks]
                    trusted_files[judged.file_name] = len((judged.content or "").encode())
        if spec.has_program and result.ok:
            mock_data_dir(manifest, root / "program-data", rows, seed, mode="reviewed")
            result, collected = run_program(spec, root / "program-data", root / "run",
                                            Limits(wall_seconds=min(spec.timeout_seconds, 300), output_files=32),
                                            "mock", backend)
    free_form = {}
    for o in spec.outputs:
        # Re-encoded as in a real run (agent.modes.reviewed): refusals (an SVG, a CSV that does
        # not parse) show here, on mock data, before the job is submitted.
        data, found = judge_free_form(o, collected.accepted.get(o.name), 10 << 20, policy, [], "mock")
        checks += [c.to_dict() for c in found]
        if data is not None:
            free_form[o.name] = len(data)
    return {"mock": True, "backend": getattr(backend, "name", ""), "exit_code": result.exit_code,
            "timed_out": result.timed_out, "stdout": result.stdout.decode("utf-8", "replace"),
            "stderr": result.stderr.decode("utf-8", "replace"),
            "files": {**trusted_files, **free_form},
            "dropped": [n for n in collected.accepted if not spec.declared(n)] + [r[0] for r in collected.refused],
            "checks": checks}


# ------------------------------------------------------------------ checks at submission
def check_program_on_mock(backend, spec, manifest: Manifest) -> None:
    """A program that fails on mock data cannot be submitted: run it once on a mock
    block in the same box the real run uses; its errors are about mock data only."""
    from sandbox.agent import aggregation as saa
    with tempfile.TemporaryDirectory(prefix="sandbox-mockcheck-") as tmp:
        block = mock_data_dir(manifest, Path(tmp) / "block", rows=500, mode="program")
        outcome = saa.run_block(backend, spec, block, Path(tmp) / "run",
                                saa.block_limits(spec, Limits(memory_mb=2048), timing=_timing(backend)),
                                label="mockcheck", timing=_timing(backend))
    if outcome.reason is not None:
        # Mock data is made from the public manifest alone, so its errors may be shown.
        raw = getattr(outcome.run, "stderr", b"") or b""
        stderr = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)).strip()
        if stderr:
            raise InvalidInput(Text("code: the program fails on mock data ({reason}); run `sandbox run --mock "
                                    "SPEC` to see its output and errors, fix it, then submit; its last error "
                                    "output:\n{stderr}", reason=outcome.reason,
                                    stderr=stderr[-MOCK_STDERR_CHARS:]), "code")
        raise InvalidInput(Text("code: the program fails on mock data ({reason}); run `sandbox run --mock SPEC` "
                                "to see its output and errors, fix it, then submit", reason=outcome.reason),
                           "code")


def check_reviewed_on_mock(backend, spec, manifest: Manifest) -> None:
    from sandbox.agent.modes.reviewed import run_program
    if not spec.has_program:  # trusted tables and models only: no operator code to try
        return
    with tempfile.TemporaryDirectory(prefix="sandbox-mockcheck-") as tmp:
        data = mock_data_dir(manifest, Path(tmp) / "data", rows=1000, mode="reviewed")
        result, collected = run_program(spec, data, Path(tmp) / "run",
                                        Limits(memory_mb=2048, wall_seconds=min(spec.timeout_seconds, 300)),
                                        "mockcheck", backend)
    missing = [o.name for o in spec.outputs if o.name not in collected.accepted]
    if not result.ok or missing:
        why = Text("it failed") if not result.ok else Text("it did not write {files}", files=", ".join(missing))
        raise InvalidInput(Text("code: the program fails on mock data ({reason}); run `sandbox run --mock SPEC` "
                                "to see its output and errors, fix it, then submit", reason=why), "code")

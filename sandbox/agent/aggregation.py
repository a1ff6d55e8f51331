"""Sample-and-aggregate release for program mode. TRUSTED host code, next to raw data.

Each block's box leaves a vector.json written by (or reachable from) the operator's
code, so it is untrusted: `validate_vector` accepts a vector only if it has the
declared length and finite numbers, else substitutes the contract's default;
`clamp` forces every entry into its declared range; `aggregate` releases the mean or
median of the k clamped vectors through the OpenDP measurements of
sandbox.privacy.aggregate, whose privacy maps are checked against the budget before
they see a number. The block vectors and the per-block failure reasons never leave
the domain: the operator gets only the aggregate (result.json), compliance gets
counts (compliance_summary).

Accounting and the reasoning behind it: sandbox.core.specs.program_accounting.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from sandbox.core import schedule
from sandbox.core.schedule import Timing
from sandbox.core.specs import program_accounting as prog
from sandbox.core.specs.program import ProgramSpec
from sandbox.privacy.aggregate import mean_measurement, median_measurement
from sandbox.privacy.measurements import PrivacyAccountingError

REASONS = ("missing", "not_json", "wrong_length", "non_numeric", "non_finite", "timeout", "error")
VECTOR_FILE = "vector.json"
MAX_VECTOR_BYTES = 64 * 1024
RESULT_TABLE = "program_output"


# ------------------------------------------------------------------ block outputs

def validate_vector(raw: bytes | None, spec: ProgramSpec, *, timed_out: bool = False,
                    failed: bool = False) -> tuple[list[float], str | None]:
    """The block's vector, or the default and a reason code (REASONS).

    raw is vector.json as collected from the block's out area (None when absent);
    timed_out / failed say the box itself overran its wall clock or exited non-zero.
    The launcher's own "timeout" (CPU budget spent, or its wall-clock backstop reached)
    arrives in raw as {"status": "timeout"}."""
    default = list(spec.default)
    if timed_out:
        return default, "timeout"
    if failed:
        return default, "error"
    if raw is None:
        return default, "missing"
    if len(raw) > MAX_VECTOR_BYTES:
        return default, "not_json"
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return default, "not_json"
    if not isinstance(doc, dict):
        return default, "not_json"
    status = doc.get("status")
    if status in ("timeout", "error", "not_json"):
        return default, status
    if status != "ok":
        return default, "not_json"
    vec = doc.get("vector")
    if not isinstance(vec, list):
        return default, "non_numeric"
    if len(vec) != spec.n_outputs:
        return default, "wrong_length"
    out = []
    for v in vec:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return default, "non_numeric"
        try:
            f = float(v)
        except OverflowError:  # a huge JSON integer
            return default, "non_finite"
        if not math.isfinite(f):
            return default, "non_finite"
        out.append(f)
    return out, None


def clamp(vec: list[float], spec: ProgramSpec) -> list[float]:
    """Every entry into its declared [lower, upper]; anything not a finite number
    becomes the default (validate_vector should have caught it already)."""
    if len(vec) != spec.n_outputs:
        return list(spec.default)
    out = []
    for v, o, d in zip(vec, spec.outputs, spec.default):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            v = d
        out.append(min(o.upper, max(o.lower, float(v))) + 0.0)
    return out


def compliance_summary(reasons: list[str | None], spec: ProgramSpec) -> dict:
    """Counts only, for compliance and the audit log; never per block, never to the operator."""
    if len(reasons) != spec.k:
        raise ValueError(f"expected {spec.k} block outcomes, got {len(reasons)}")
    counts = Counter(r for r in reasons if r is not None)
    unknown = set(counts) - set(REASONS)
    if unknown:
        raise ValueError(f"unknown reason codes: {sorted(unknown)}")
    return {"blocks": spec.k, "defaults_used": sum(counts.values()),
            "reasons": {r: counts[r] for r in REASONS if counts[r]}}


# ------------------------------------------------------------------ release

def aggregate(vectors: list[list[float]], spec: ProgramSpec) -> dict:
    """Release the DP aggregate of exactly k block vectors (defaults already substituted)
    as {"tables": [program_output]}. Rows follow the contract's output order."""
    if len(vectors) != spec.k:
        # k is public and fixed: a lost block is filled with the default, never dropped.
        raise ValueError(f"expected {spec.k} block vectors, got {len(vectors)}")
    clamped = [clamp(v, spec) for v in vectors]
    eps_j = spec.epsilon_per_output
    if Fraction(eps_j) * spec.n_outputs > Fraction(spec.epsilon):
        raise PrivacyAccountingError("outputs' epsilons exceed the job's epsilon")
    rows, parts = [], []
    for j, o in enumerate(spec.outputs):
        column = [v[j] for v in clamped]
        if o.aggregate == "mean":
            meas, scale, sens = mean_measurement(o.lower, o.upper, spec.k, eps_j)
            value = float(meas(column))
            part = {"name": o.name, "aggregate": "mean", "mechanism": "laplace", "epsilon": eps_j,
                    "sensitivity": sens, "noise_scale": scale, "expected_abs_error": scale}
        else:
            meas, scale = median_measurement(o.lower, o.upper, spec.k, eps_j, spec.default[j])
            value = float(meas(column))
            part = {"name": o.name, "aggregate": "median", "mechanism": "exponential", "epsilon": eps_j,
                    "sensitivity": None, "noise_scale": scale, "expected_abs_error": None,
                    "rank_error_95": prog.median_rank_error_95(scale)}
        rows.append([o.name, value])
        parts.append(part)
    mechanisms = sorted({p["mechanism"] for p in parts})
    table = {
        "name": RESULT_TABLE,
        "columns": ["output", "value"],
        "rows": rows,
        "epsilon": spec.epsilon,
        "mechanism": "+".join(mechanisms),
        # Per output, aligned with rows.
        "noise_scale": [p["noise_scale"] for p in parts],
        "sensitivity": [p["sensitivity"] for p in parts],
        "expected_abs_error": [p["expected_abs_error"] for p in parts],
        "k": spec.k,
        "composition": "basic",
        "parts": parts,
    }
    return {"tables": [table]}


# ------------------------------------------------------------------ one block run

@dataclass(frozen=True)
class BlockOutcome:
    vector: list[float]          # validated and clamped; the default when reason is set
    reason: str | None           # None, or one of REASONS (compliance only)
    run: object                  # the backend's RunResult, for the compliance run log
    refused_outputs: list


def block_job(spec: ProgramSpec, *, memory_mb: int, timing: Timing = Timing()) -> dict:
    """job.json for one block's box. Nothing about the block (its index, the seed) goes
    in: the box needs none of it. The program's budget is CPU time (its timeout plus the
    start-up allowance); the wall clock is only a backstop (core/schedule.py)."""
    t = spec.block_timeout_seconds
    return {"kind": "program_block", "program": "/job/program.py", "entrypoint": spec.entrypoint,
            "data_dir": "/data", "out_dir": "/out",
            "cpu_seconds": schedule.block_cpu_seconds(t, timing),
            "wall_seconds": schedule.block_backstop_seconds(t, timing), "memory_mb": int(memory_mb)}


def block_limits(spec: ProgramSpec, base, *, timing: Timing = Timing()):
    """A block box's limits: the policy's memory/cpus, a wall clock of the launcher's
    backstop plus a margin (core/schedule.py), and room for one small output file."""
    from dataclasses import replace

    return replace(base, wall_seconds=schedule.block_box_seconds(spec.block_timeout_seconds, timing),
                   output_bytes=MAX_VECTOR_BYTES, output_files=1)


def run_block(backend, spec: ProgramSpec, block_dir: Path, work_dir: Path, limits, *, label: str = "",
              timing: Timing = Timing()) -> BlockOutcome:
    """Run the program on one block in its own box and validate what came back.

    work_dir gets job/ and out/ (fresh); block_dir is mounted at /data, nothing else. The
    launcher's wall-clock backstop is the box's, less the margin it needs to report
    (`limits` come from block_limits with the same timing)."""
    from sandbox.agent.boxes import run_box

    job = block_job(spec, memory_mb=limits.memory_mb, timing=timing)
    result, collected = run_box(backend, work_dir, Path(block_dir), job, limits, label, program=spec.code,
                                expected={VECTOR_FILE}, max_files=1)
    vec, reason = validate_vector(collected.accepted.get(VECTOR_FILE), spec, timed_out=result.timed_out,
                                  failed=not result.ok and not result.timed_out)
    return BlockOutcome(vector=clamp(vec, spec), reason=reason, run=result,
                        refused_outputs=[list(r) for r in collected.refused])

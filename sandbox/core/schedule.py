"""When work may end, fixed in advance from public quantities: the mode, the spec, the
policy's limits, the published size class of the dataset version and the machine's
configured start-up costs, never how long a run took. The executor holds each worker slot
until its bound (so the start of the next task, another operator's included, does not
depend on the data either) and operators see an outcome no earlier than the bound of the
whole job.

Bounds are calibrated (bench/RESULTS.md, "Latency"), not padded to the policy's wall time:
the policy's limit stays the ceiling, and a run that reaches its bound is stopped and ends
like any failed run, at the same fixed time.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """This machine's start-up costs, from configuration (public, never measured per run).

    box_start_seconds: create and start a box, outside the backend's wall clock.
    runner_start_seconds: the trusted runner's interpreter and imports, inside it.
    child_start_cpu_seconds: a program block's interpreter, pandas/pyarrow imports and
        block read, in CPU seconds (part of the block's CPU budget).
    margin_seconds: the backend's bookkeeping after the box's wall clock ends (kill, logs,
        removal) and the finish step.
    block_wall_factor: a block's wall-clock backstop, for a child that waits instead of
        computing, is its CPU budget times this, plus half a second. Each box has CPUs of its own
        (cpuslots), so a block that computes gets wall ~= CPU; the factor is room for the
        host's own work on those CPUs."""
    box_start_seconds: float = 0.7
    runner_start_seconds: float = 1.0
    child_start_cpu_seconds: int = 1
    margin_seconds: float = 0.6
    block_wall_factor: float = 1.25


# gVisor starts boxes and interpreters several times slower (bench, cold cache).
GVISOR = Timing(box_start_seconds=4.0, runner_start_seconds=4.0, child_start_cpu_seconds=20, margin_seconds=3.0,
                block_wall_factor=2.0)

# A query's scan, per million rows of the size class: ~2.3x the unverified path's measured
# ~0.11 s (bench/RESULTS.md), quantiles (a score per candidate) counted four times.
QUERY_SECONDS_PER_MILLION_ROWS = 0.25
QUERY_WEIGHT = {"quantile": 4}
# Reviewed mode's trusted tables and models: a grouped scan with per-unit statistics (or a
# model fit) costs about four query scans; importing statsmodels ~2.3 s in the image.
TRUSTED_SCAN_WEIGHT = 4
MODEL_IMPORT_SECONDS = 3.0
SNAPSHOT_SECONDS_PER_MILLION_ROWS = 0.1
# Splitting a version into blocks: a fixed part plus a part per million rows of its size
# class (ingest measured ~1 s per 10M rows for the keyed hash; generous on purpose).
SPLIT_BASE_SECONDS = 10
SPLIT_SECONDS_PER_MILLION_ROWS = 2
# Sizes are published as classes (powers of two), so a version's bound says no more than
# its size class, and neighbouring datasets (one person apart) share it but at a boundary.
MIN_SIZE_CLASS = 1 << 14


def size_class(rows: int) -> int:
    """The published size class of a version: rows rounded up to a power of two."""
    size = MIN_SIZE_CLASS
    while size < rows:
        size <<= 1
    return size


def block_cpu_seconds(block_timeout_seconds: int, timing: Timing = Timing()) -> int:
    """A block's CPU budget: the program's timeout plus start-up (interpreter, libraries, reading the block)."""
    return int(block_timeout_seconds) + int(timing.child_start_cpu_seconds)


def block_backstop_seconds(block_timeout_seconds: int, timing: Timing = Timing()) -> float:
    """The wall clock at which the in-box launcher stops a block that waits rather than computes."""
    return round(timing.block_wall_factor * block_cpu_seconds(block_timeout_seconds, timing) + 0.5, 2)


def block_box_seconds(block_timeout_seconds: int, timing: Timing = Timing()) -> float:
    """The block box's own wall clock (the backend kills it there): the launcher's backstop
    plus the margin the launcher needs to stop the child and write its report."""
    return round(block_backstop_seconds(block_timeout_seconds, timing) + timing.margin_seconds, 2)


def block_slot_seconds(block_timeout_seconds: int, timing: Timing = Timing()) -> float:
    """How long one program block holds its worker slot: starting its box, the box's wall
    clock, and the backend's bookkeeping after it."""
    return round(timing.box_start_seconds + block_box_seconds(block_timeout_seconds, timing) + timing.margin_seconds,
                 2)


def split_slot_seconds(size_class_rows: int) -> int:
    return SPLIT_BASE_SECONDS + -(-size_class_rows * SPLIT_SECONDS_PER_MILLION_ROWS // 1_000_000)


def snapshot_seconds(size_class_rows: int) -> float:
    """Re-hashing the version's files at the claim (the job reads exactly what was
    registered): SHA-256 at a few hundred MB/s, ~20 MB per million rows of Parquet."""
    return round(SNAPSHOT_SECONDS_PER_MILLION_ROWS * size_class_rows / 1e6, 2)


def query_run_seconds(spec: dict, size_class_rows: int, timing: Timing = Timing()) -> float:
    """The trusted query runner's wall clock: its start-up plus each query's scan."""
    scans = sum(QUERY_WEIGHT.get(q.get("statistic"), 1) for q in spec.get("queries") or [])
    return round(timing.runner_start_seconds + scans * QUERY_SECONDS_PER_MILLION_ROWS * size_class_rows / 1e6, 2)


def trusted_run_seconds(spec: dict, size_class_rows: int, timing: Timing = Timing()) -> float:
    """A reviewed job's trusted tables and models box (no operator code): the runner's start,
    statsmodels' import when there are models, and a grouped scan per table or model."""
    n = len(spec.get("tables") or []) + len(spec.get("models") or [])
    if not n:
        return 0.0
    start = timing.runner_start_seconds + (MODEL_IMPORT_SECONDS if spec.get("models") else 0.0)
    return round(start + n * TRUSTED_SCAN_WEIGHT * QUERY_SECONDS_PER_MILLION_ROWS * size_class_rows / 1e6, 2)


def run_seconds(mode: str, spec: dict, wall_seconds: int, size_class_rows: int, timing: Timing = Timing()) -> float:
    """The boxes' wall clock for a query or reviewed run, never above the policy's wall time:
    the calibrated bound (queries); for reviewed jobs the trusted box's calibrated bound, then
    a second box's start and the operator's declared timeout when there is a program."""
    if mode == "query":
        return min(float(wall_seconds), query_run_seconds(spec, size_class_rows, timing))
    trusted = trusted_run_seconds(spec, size_class_rows, timing)
    program = float(spec.get("timeout_seconds") or wall_seconds) if spec.get("outputs") else 0.0
    both = timing.box_start_seconds if trusted and program else 0.0
    return round(min(float(wall_seconds), trusted + both + program), 2)


def task_slot_seconds(mode: str, spec: dict, wall_seconds: int, size_class_rows: int,
                      timing: Timing = Timing()) -> float:
    """How long the task that claims a job holds its slot: starting the box, its run and
    the bookkeeping after it for query and reviewed jobs; the split for programs."""
    if mode == "program":
        return float(split_slot_seconds(size_class_rows))
    return round(snapshot_seconds(size_class_rows) + timing.box_start_seconds
                 + run_seconds(mode, spec, wall_seconds, size_class_rows, timing) + timing.margin_seconds, 2)


def outcome_delay_seconds(mode: str, spec: dict, wall_seconds: int, size_class_rows: int = MIN_SIZE_CLASS,
                          timing: Timing = Timing()) -> float:
    """From the claim to when the operator may see the outcome: the task's slot, and for
    programs the split plus all k blocks one after another (the worst case of one worker)
    and the finish step."""
    if mode != "program":
        return task_slot_seconds(mode, spec, wall_seconds, size_class_rows, timing)
    blocks = int(spec["blocks"]) * block_slot_seconds(spec["block_timeout_seconds"], timing)
    return round(split_slot_seconds(size_class_rows) + blocks + 5 * timing.margin_seconds, 2)

"""When work may end, fixed in advance from public quantities: the mode, the spec, the
policy's limits and the published size class of the dataset version, never how long a
run took. The executor holds each worker slot until its bound (so the start of the next
task, another operator's included, does not depend on the data either) and operators see
an outcome no earlier than the bound of the whole job.
"""
from __future__ import annotations

# A block's box gets this long beyond the program's own timeout for interpreter and
# library start-up (measured under gVisor on a cold cache), and a margin on top for the
# backend's own bookkeeping before it kills the box.
STARTUP_ALLOWANCE_SECONDS = 20
BOX_MARGIN_SECONDS = 30
# A block's budget is CPU time (its timeout plus the start-up allowance), which other boxes
# cannot eat into; its wall clock is a backstop this many times longer, for a block that
# waits instead of computing (docs/security.md, "Blocks isolated in time").
BLOCK_WALL_FACTOR = 2
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


def block_cpu_seconds(block_timeout_seconds: int, startup_allowance_seconds: int = STARTUP_ALLOWANCE_SECONDS) -> int:
    """A block's CPU budget: the program's timeout plus start-up (interpreter, libraries, reading the block)."""
    return int(block_timeout_seconds) + int(startup_allowance_seconds)


def block_backstop_seconds(block_timeout_seconds: int,
                           startup_allowance_seconds: int = STARTUP_ALLOWANCE_SECONDS) -> int:
    """The wall clock at which the in-box launcher stops a block that waits rather than computes."""
    return BLOCK_WALL_FACTOR * block_cpu_seconds(block_timeout_seconds, startup_allowance_seconds)


def block_slot_seconds(block_timeout_seconds: int) -> int:
    """How long one program block holds its worker slot: its wall-clock backstop plus the
    box margin, the wall-clock limit at which its box is killed."""
    return block_backstop_seconds(block_timeout_seconds) + BOX_MARGIN_SECONDS


def split_slot_seconds(size_class_rows: int) -> int:
    return SPLIT_BASE_SECONDS + -(-size_class_rows * SPLIT_SECONDS_PER_MILLION_ROWS // 1_000_000)


def task_slot_seconds(mode: str, wall_seconds: int, size_class_rows: int) -> int:
    """How long the task that claims a job holds its slot: the run for query and reviewed
    jobs (the policy's wall time, at which the box is killed), the split for programs."""
    return split_slot_seconds(size_class_rows) if mode == "program" else int(wall_seconds)


def outcome_delay_seconds(mode: str, spec: dict, wall_seconds: int, size_class_rows: int = MIN_SIZE_CLASS) -> int:
    """From the claim to when the operator may see the outcome: the task's slot, and for
    programs the split plus all k blocks one after another (the worst case of one worker)."""
    if mode != "program":
        return int(wall_seconds)
    blocks = int(spec["blocks"]) * block_slot_seconds(spec["block_timeout_seconds"])
    return max(int(wall_seconds), split_slot_seconds(size_class_rows) + blocks + 30)

"""When a run's outcome may become visible to its operator: fixed from public
quantities (the mode, the spec, the policy's limits) when the run starts, never from
how long the run took."""
from __future__ import annotations

# A block's box gets this long beyond the program's own timeout for interpreter and
# library start-up (measured under gVisor on a cold cache), and a margin on top for the
# backend's own bookkeeping before it kills the box.
STARTUP_ALLOWANCE_SECONDS = 20
BOX_MARGIN_SECONDS = 30


def outcome_delay_seconds(mode: str, spec: dict, wall_seconds: int) -> int:
    """The policy's wall time, and for programs at least the time all k blocks could
    take one after another (each its timeout plus start-up), so it never depends on the data."""
    if mode != "program":
        return wall_seconds
    per_block = int(spec["block_timeout_seconds"]) + STARTUP_ALLOWANCE_SECONDS + BOX_MARGIN_SECONDS
    return max(wall_seconds, int(spec["blocks"]) * per_block + 30)

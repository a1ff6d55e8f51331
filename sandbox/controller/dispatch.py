"""Handing a queued job to the agent side."""
from __future__ import annotations

from sandbox.core.ports import Parts


def send_job(parts: Parts, job_id: str) -> None:
    # The job is durable in the store; if the broker is down, the sweeper re-sends.
    try:
        parts.queue.send_job(job_id)
    except Exception:  # noqa: BLE001 - any broker failure is recovered by the sweeper
        pass

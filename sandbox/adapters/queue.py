"""Queues that hand work to the agent side (core.ports.Queue).

`celery_app` is only the configuration: sending a task by name needs no task code, so
the controller side never imports agent/tasks.py (which imports bootstrap: the old
import circle). The default broker is Kombu's filesystem transport: no server needed.
"""
from __future__ import annotations

from collections import deque
from functools import lru_cache

from sandbox.config import Settings


def _broker_options(settings: Settings) -> dict:
    if settings.broker_url.startswith("filesystem"):
        folder = settings.broker_dir
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {"data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
                "processed_folder": str(folder / "processed"), "store_processed": False,
                # Kombu's default control folder is ./control in the working directory.
                "control_folder": str(folder / "control"),
                # The filesystem transport polls; once a second added ~0.5 s to every job.
                "polling_interval": 0.1}
    if settings.broker_url.startswith("redis"):
        # Redelivery of unacknowledged messages after a worker loss.
        return {"visibility_timeout": 3600}
    return {}


@lru_cache(maxsize=8)
def celery_app(settings: Settings):
    from celery import Celery
    from kombu.transport import TRANSPORT_ALIASES
    # Every process that sends or takes messages creates the app first: from then on
    # "filesystem://" means the transport with atomic message files (adapters/fsbroker.py).
    TRANSPORT_ALIASES["filesystem"] = "sandbox.adapters.fsbroker:Transport"
    app = Celery("sandbox", broker=settings.broker_url)
    app.conf.update(
        broker_transport_options=_broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )
    return app


class CeleryQueue:
    def __init__(self, settings: Settings):
        self.settings = settings

    def send_job(self, job_id: str) -> None:
        celery_app(self.settings).send_task("sandbox.run_job", args=[job_id])

    def send_block(self, job_id: str, attempt: int, index: int) -> None:
        celery_app(self.settings).send_task("sandbox.run_block", args=[job_id, attempt, index])


class CallableQueue:
    """A queue made of two callables (tests, the CLI): `job(job_id)`, `block(job_id, attempt, i)`."""

    def __init__(self, job, block=None):
        self.job, self.block = job, block

    def send_job(self, job_id: str) -> None:
        self.job(job_id)

    def send_block(self, job_id: str, attempt: int, index: int) -> None:
        self.block(job_id, attempt, index)


class InProcessQueue:
    """Runs what is sent in this process, in order, when `drain()` is called (or at once
    with `eager=True`): the fake queue of fast lifecycle tests."""

    def __init__(self, eager: bool = False):
        self.eager = eager
        self.executor = None           # set by bootstrap()
        self.pending: deque = deque()

    def send_job(self, job_id: str) -> None:
        self.pending.append(("job", (job_id,)))
        if self.eager:
            self.drain()

    def send_block(self, job_id: str, attempt: int, index: int) -> None:
        self.pending.append(("block", (job_id, attempt, index)))

    def drain(self, max_items: int | None = None) -> int:
        """Run what is pending, in order (and what that sends in turn); at most `max_items`."""
        done = 0
        while self.pending and (max_items is None or done < max_items):
            kind, args = self.pending.popleft()
            (self.executor.execute if kind == "job" else self.executor.run_block)(*args)
            done += 1
        return done

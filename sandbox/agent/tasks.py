"""Celery: the task that runs jobs, and the sweeper that recovers lost work.

Tasks are acknowledged late and are idempotent (the claim queued -> running is
atomic in the store), so a redelivered message never runs a job twice and a
worker killed mid-job is recovered by the sweeper (lease expiry).
The default broker is Kombu's filesystem transport: no server needed.
"""
from __future__ import annotations

import logging
import threading
from functools import lru_cache

from celery import Celery, signals

from sandbox.config import Settings, load

log = logging.getLogger(__name__)


def _broker_options(settings: Settings) -> dict:
    if settings.broker_url.startswith("filesystem"):
        folder = settings.broker_dir
        (folder / "queue").mkdir(parents=True, exist_ok=True)
        (folder / "processed").mkdir(parents=True, exist_ok=True)
        return {"data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
                "processed_folder": str(folder / "processed"), "store_processed": False,
                # The filesystem transport polls; once a second added ~0.5 s to every job.
                "polling_interval": 0.1}
    if settings.broker_url.startswith("redis"):
        # Redelivery of unacknowledged messages after a worker loss.
        return {"visibility_timeout": 3600}
    return {}


@lru_cache(maxsize=8)
def celery_app(settings: Settings) -> Celery:
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

    @app.task(name="sandbox.run_job", acks_late=True)
    def run_job(job_id: str) -> str | None:
        return _services(settings).execute(job_id)

    @app.task(name="sandbox.run_block", acks_late=True)
    def run_block(job_id: str, attempt: int, index: int) -> str | None:
        return _services(settings).run_block(job_id, attempt, index)

    @app.task(name="sandbox.sweep")
    def sweep() -> dict:
        return _services(settings).sweep()

    return app


@lru_cache(maxsize=8)
def _services(settings: Settings):
    from sandbox.bootstrap import bootstrap
    return bootstrap(settings)


def run_worker(settings: Settings | None = None, concurrency: int = 1, loglevel: str = "INFO") -> None:
    settings = settings or load()
    sweep_every = settings.sweep_seconds
    app = celery_app(settings)
    stop = threading.Event()

    def sweeper():
        while not stop.wait(sweep_every):
            try:
                _services(settings).sweep()
            except Exception:  # noqa: BLE001 - keep sweeping; the next round retries
                log.exception("sweep failed")

    @signals.worker_ready.connect(weak=False)
    def _ready(**_kw):
        _services(settings).sweep(queued_grace_seconds=0)
        threading.Thread(target=sweeper, name="sandbox-sweeper", daemon=True).start()

    @signals.worker_shutdown.connect(weak=False)
    def _shutdown(**_kw):
        stop.set()

    pool = "solo" if concurrency == 1 else "prefork"
    app.worker_main(["worker", f"--loglevel={loglevel}", f"--concurrency={concurrency}", f"--pool={pool}",
                     "--without-gossip", "--without-mingle", "--without-heartbeat"])

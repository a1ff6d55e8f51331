"""Celery tasks on the agent side: run a job, run one program block, sweep.

Tasks are acknowledged late and are idempotent (see agent/executor.py), so a
redelivered message never runs a job twice. While a worker works on a job it renews
the job's lease (agent/leases.py), so the sweeper never takes a live worker for lost.
"""
from __future__ import annotations

import logging
import threading
from functools import lru_cache

from sandbox.adapters.queue import celery_app
from sandbox.config import Settings, load

log = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def _services(settings: Settings):
    from sandbox.bootstrap import bootstrap
    return bootstrap(settings)


@lru_cache(maxsize=8)
def _leases(settings: Settings):
    from sandbox.agent.leases import LeaseKeeper
    services = _services(settings)
    return LeaseKeeper(services.repo, services.clock, settings.lease_margin_seconds)


def run_job_renewing(agent, leases, job_id: str) -> str | None:
    """Run a job while this worker renews its lease; a program job whose blocks now wait in
    the queue stays held until it leaves running (its lease covers the wait, not a guess)."""
    from sandbox.core.states import RUNNING
    with leases.holding(job_id):
        state = agent.execute(job_id)
    if state == RUNNING:
        leases.keep(job_id)
    return state


def run_block_renewing(agent, leases, job_id: str, attempt: int, index: int) -> str | None:
    with leases.holding(job_id):
        return agent.run_block(job_id, attempt, index)


def register_tasks(settings: Settings):
    app = celery_app(settings)
    if "sandbox.run_job" in app.tasks:
        return app

    @app.task(name="sandbox.run_job", acks_late=True)
    def run_job(job_id: str) -> str | None:
        return run_job_renewing(_services(settings).agent, _leases(settings), job_id)

    @app.task(name="sandbox.run_block", acks_late=True)
    def run_block(job_id: str, attempt: int, index: int) -> str | None:
        return run_block_renewing(_services(settings).agent, _leases(settings), job_id, attempt, index)

    @app.task(name="sandbox.sweep")
    def sweep() -> dict:
        return _services(settings).agent.sweep()

    return app


def run_worker(settings: Settings | None = None, concurrency: int = 1, loglevel: str = "INFO") -> None:
    from celery import signals
    settings = settings or load()
    app = register_tasks(settings)
    stop = threading.Event()

    def sweeper():
        while not stop.wait(settings.sweep_seconds):
            try:
                _services(settings).agent.sweep()
            except Exception:  # noqa: BLE001 - keep sweeping; the next round retries
                log.exception("sweep failed")
            try:
                # Licence-expiring notices and mail of notices now visible (controller/notices.py):
                # a fixed period, so when an operator's mail goes out never depends on the data.
                _services(settings).notices.tick()
            except Exception:  # noqa: BLE001 - the next round retries
                log.exception("notices round failed")

    @signals.worker_ready.connect(weak=False)
    def _ready(**_kw):
        _services(settings).agent.sweep(queued_grace_seconds=0)
        threading.Thread(target=sweeper, name="sandbox-sweeper", daemon=True).start()

    @signals.worker_shutdown.connect(weak=False)
    def _shutdown(**_kw):
        stop.set()

    from sandbox.logs import install_worker_logging
    global_opts = install_worker_logging(loglevel)
    pool = "solo" if concurrency == 1 else "prefork"
    app.worker_main([*global_opts, "worker", f"--loglevel={loglevel}", f"--concurrency={concurrency}",
                     f"--pool={pool}", "--without-gossip", "--without-mingle", "--without-heartbeat"])

"""Wires real parts together: store, isolation backend, Celery enqueue.

Tests call `bootstrap(settings, enqueue=..., backend_factory=...)` with their own parts.
"""
from __future__ import annotations

from functools import lru_cache

from sandbox.config import Settings, load
from sandbox.services import Services
from sandbox.adapters.store.db import Store


def bootstrap(settings: Settings | None = None, *, enqueue=None, backend_factory=None,
              create_schema: bool = True, enqueue_block=None) -> Services:
    """Real parts by default. A caller that passes its own `enqueue` (tests, the CLI) runs
    program blocks in-process unless it passes `enqueue_block` too."""
    settings = settings or load()
    settings.home.mkdir(parents=True, exist_ok=True)
    store = Store(settings.database_url)
    if create_schema:
        store.create_all()
    if backend_factory is None:
        def backend_factory(classification: str | None = None, _s=settings):
            # Higher classification levels run only under gVisor; if runsc is not
            # available the run fails rather than falling back to weaker isolation.
            if classification in _s.runsc_levels:
                return _backend(_s.with_(backend="docker", docker_runtime="runsc"))
            return _backend(_s)
    if enqueue is None:
        def enqueue(job_id: str, _s=settings) -> None:
            from sandbox.agent.tasks import celery_app
            celery_app(_s).send_task("sandbox.run_job", args=[job_id])

        def enqueue_block(job_id: str, attempt: int, index: int, _s=settings) -> None:
            from sandbox.agent.tasks import celery_app
            celery_app(_s).send_task("sandbox.run_block", args=[job_id, attempt, index])
    return Services(settings=settings, store=store, backend_factory=backend_factory, enqueue=enqueue,
                    enqueue_block=enqueue_block)


@lru_cache(maxsize=8)
def _backend(settings: Settings):
    from sandbox.agent.backends.select import get_backend
    return get_backend(settings)

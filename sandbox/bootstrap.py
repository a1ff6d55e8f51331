"""The one composition root: real parts by default, or the fakes a test passes in.

    services = bootstrap(settings)                       # SQL store, Celery, Docker/bwrap
    services = bootstrap(settings, repo=MemoryRepository(clock), queue=InProcessQueue(),
                         backend_factory=lambda _c=None: FakeBackend(...))   # milliseconds

`services.operator`, `.owner`, `.compliance`, `.views`, `.accounts` face people
(controller/); `services.agent` runs next to the data (agent/executor.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sandbox.config import Settings, load
from sandbox.core.ports import Parts
from sandbox.core.records import utcnow


@dataclass
class Services:
    parts: Parts
    accounts: object
    views: object
    operator: object
    owner: object
    compliance: object
    agent: object
    notices: object = None

    @property
    def settings(self) -> Settings:
        return self.parts.settings

    @property
    def repo(self):
        return self.parts.repo

    @property
    def store(self):
        """The SQL store behind the repository (integration tests inspect its tables)."""
        return self.parts.repo.store

    @property
    def clock(self):
        return self.parts.clock

    @clock.setter
    def clock(self, clock) -> None:
        # Tests move time; the repository stamps audit events with the same clock.
        self.parts.clock = clock
        self.parts.repo.clock = clock

    def dispose(self) -> None:
        store = getattr(self.parts.repo, "store", None)
        if store is not None:
            store.dispose()


def bootstrap(settings: Settings | None = None, *, repo=None, queue=None, backend_factory=None, clock=None,
              sleep=None, create_schema: bool = True, enqueue=None, enqueue_block=None) -> Services:
    """`enqueue` / `enqueue_block` (callables) stand in for the queue; a caller that passes
    `enqueue` alone runs program blocks in-process, one after another."""
    from sandbox.adapters.queue import CallableQueue, CeleryQueue, InProcessQueue
    from sandbox.agent.executor import Executor
    from sandbox.controller.accounts import Accounts
    from sandbox.controller.compliance import Compliance
    from sandbox.controller.notices import Notices
    from sandbox.controller.operator import Operator
    from sandbox.controller.owner import Owner
    from sandbox.controller.views import Views

    settings = settings or load()
    settings.home.mkdir(parents=True, exist_ok=True)
    clock = clock or utcnow
    if repo is None:
        from sandbox.adapters.store.db import Store
        from sandbox.adapters.store.repository import SqlRepository
        store = Store(settings.database_url)
        if create_schema:
            store.create_all()
        repo = SqlRepository(store, clock)
    inline_blocks = False
    if queue is None and enqueue is not None:
        inline_blocks = enqueue_block is None
        queue = CallableQueue(enqueue, enqueue_block)
    queue = queue or CeleryQueue(settings)
    if backend_factory is None:
        def backend_factory(classification: str | None = None, _s=settings):
            # Higher classification levels run only under gVisor; if runsc is not
            # available the run fails rather than falling back to weaker isolation.
            if classification in _s.runsc_levels:
                return _backend(_s.with_(backend="docker", docker_runtime="runsc"))
            return _backend(_s)
    parts = Parts(settings=settings, repo=repo, clock=clock, queue=queue, backend_factory=backend_factory,
                  **({"sleep": sleep} if sleep is not None else {}))
    views = Views(parts)
    agent = Executor(parts, run_blocks_inline=inline_blocks)
    if isinstance(queue, InProcessQueue):
        queue.executor = agent
    return Services(parts=parts, accounts=Accounts(parts), views=views, operator=Operator(parts),
                    owner=Owner(parts), compliance=Compliance(parts, views), agent=agent, notices=Notices(parts))


@lru_cache(maxsize=8)
def _backend(settings: Settings):
    from sandbox.agent.backends.select import get_backend
    return get_backend(settings)

"""One fixture body for tests that run a repository contract on every backend: SQL on SQLite
and on PostgreSQL (the session's test database, emptied first), and the in-memory one."""
from __future__ import annotations

from sandbox.adapters.memory import MemoryRepository
from sandbox.adapters.store.db import Store
from sandbox.adapters.store.repository import SqlRepository

BACKENDS = ["sqlite", "postgres", "memory"]


def each_repository(request, tmp_path, clock):
    """Yields the repository named by request.param (one of BACKENDS) with `clock`."""
    if request.param == "memory":
        yield MemoryRepository(clock)
        return
    if request.param == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'sandbox.db'}")
    else:
        store = Store(request.getfixturevalue("pg_database"))
        store.drop_all()
    store.create_all()
    try:
        yield SqlRepository(store, clock)
    finally:
        store.dispose()

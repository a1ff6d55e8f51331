"""The Alembic migrations build exactly the schema the models describe, on both databases."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from sandbox.adapters.store.db import Store
from sandbox.adapters.store.models import Base


def test_migrated_schema_matches_the_models(database_url):
    store = Store(database_url)
    store.create_all()
    store.create_all()  # idempotent: a second start changes nothing
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    store.dispose()
    assert diff == []

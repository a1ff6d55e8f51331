"""Alembic environment: runs on the connection the store hands over (see Store.migrate)."""
from alembic import context

from sandbox.adapters.store.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()

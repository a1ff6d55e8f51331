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


def test_upgrading_gives_each_dataset_an_opaque_version_id_and_renames_what_named_its_hash(database_url):
    # Before revision 0005 operators saw the content hash of a version; after it, a random id,
    # and the jobs and released aggregates that named the current version by hash name it by id.
    from datetime import datetime, timezone

    import sqlalchemy as sa
    from alembic import command

    store = Store(database_url)
    cfg = store.alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
    current, older, now = "ab" * 32, "cd" * 32, datetime.now(timezone.utc)
    datasets = sa.table("datasets", *(sa.column(c) for c in (
        "name", "classification", "owner", "owner_account", "data_dir", "version_hash", "bound_verified", "rows",
        "registered_at")), sa.column("manifest", sa.JSON))
    jobs = sa.table("jobs", *(sa.column(c) for c in (
        "id", "operator", "dataset", "mode", "purpose", "spec_hash", "code", "epsilon", "delta", "state",
        "policy_hash", "dataset_version", "reviewers_required", "message", "attempts", "backend", "created_at",
        "updated_at")), sa.column("spec", sa.JSON), sa.column("compliance", sa.JSON))
    aggregates = sa.table("released_aggregates", sa.column("dataset"), sa.column("dataset_version"),
                          sa.column("grouping", sa.JSON), sa.column("cells", sa.JSON), sa.column("job_id"),
                          sa.column("name"))
    job = dict(operator="op", dataset="d", mode="query", purpose="p", spec={}, spec_hash="", code="", compliance={},
               epsilon=0.1, delta=0.0, state="released", policy_hash="", reviewers_required=0, message="",
               attempts=1, backend="", created_at=now, updated_at=now)
    with store.engine.begin() as conn:
        conn.execute(datasets.insert().values(name="d", manifest={}, classification="L2", owner="", owner_account="",
                                              data_dir="/x", version_hash=current, bound_verified=True, rows=0,
                                              registered_at=now))
        conn.execute(jobs.insert(), [dict(job, id="j1", dataset_version=current),
                                     dict(job, id="j2", dataset_version=older)])
        conn.execute(aggregates.insert().values(dataset="d", dataset_version=current, grouping=[], cells=[],
                                                job_id="j1", name="t.csv"))
    store.create_all()
    with store.engine.connect() as conn:
        version_id = conn.execute(sa.text("SELECT version_id FROM datasets WHERE name = 'd'")).scalar_one()
        by_job = dict(conn.execute(sa.text("SELECT id, dataset_version FROM jobs")).all())
        aggregate = conn.execute(sa.text("SELECT dataset_version FROM released_aggregates")).scalar_one()
    store.dispose()
    assert len(version_id) == 32 and version_id not in (current, older)
    assert by_job == {"j1": version_id, "j2": older} and aggregate == version_id

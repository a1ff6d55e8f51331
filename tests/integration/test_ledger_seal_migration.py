"""Migration 0008 seals ledger rows written before the ledger was under the audit chain: after
the upgrade they verify, and an edit to one of them is found like any other."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import command

from sandbox.adapters.store.db import Store
from sandbox.adapters.store.repository import SqlRepository
from sandbox.core.audit import GENESIS, verify_chain
from sandbox.core.ledger_chain import verify_ledger


def test_upgrading_seals_existing_ledger_rows_into_the_chain(database_url):
    store = Store(database_url)
    cfg = store.alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0007")
    at = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": GENESIS})
        for kind, resolution in (("reserve", "reserve"), ("charge", "resolve")):
            conn.execute(sa.text("INSERT INTO ledger_entries (dataset, operator, job_id, kind, resolution, epsilon, "
                                 "delta, at) VALUES ('health_visits', 'operator', 'old1', :k, :r, 0.3, 0.0, :at)"),
                         {"k": kind, "r": resolution, "at": at})
    store.create_all()
    repo = SqlRepository(store, lambda: datetime.now(timezone.utc))
    with repo.transaction() as tx:
        records, entries = tx.audit_records(), tx.budget_entries("health_visits")
        assert verify_chain(records) == [] and tx.audit_head() == (2, records[-1].hash)
    assert [r.action for r in records] == ["budget.reserve", "budget.charge"]
    assert verify_ledger(entries, records) == []
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE ledger_entries SET epsilon = 0 WHERE kind = 'charge'"))
    with repo.transaction() as tx:
        problems = verify_ledger(tx.budget_entries("health_visits"), tx.audit_records())
    assert any("charge of job old1" in p and "modified" in p for p in problems)
    store.dispose()

"""Seal the budget ledger into the audit chain: from now on every ledger row is written with
an audit event holding its content (core/ledger_chain.py); rows written before this version
get theirs here, appended once at upgrade, so `audit verify` covers them from now on.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""
import json
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

from sandbox.core.audit import canonical, entry_hash
from sandbox.core.ledger_chain import ACTION_PREFIX, ledger_payload
from sandbox.core.records import BudgetEntry

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ledger = sa.table("ledger_entries", sa.column("id", sa.Integer), sa.column("dataset", sa.String),
                  sa.column("operator", sa.String), sa.column("job_id", sa.String), sa.column("kind", sa.String),
                  sa.column("resolution", sa.String), sa.column("epsilon", sa.Float), sa.column("delta", sa.Float),
                  sa.column("at", sa.DateTime(timezone=True)))
events = sa.table("audit_events", sa.column("seq", sa.BigInteger), sa.column("at", sa.String),
                  sa.column("actor", sa.String), sa.column("action", sa.String), sa.column("subject", sa.String),
                  sa.column("payload", sa.JSON), sa.column("prev_hash", sa.String), sa.column("hash", sa.String))
head = sa.table("audit_head", sa.column("id", sa.Integer), sa.column("seq", sa.BigInteger),
                sa.column("hash", sa.String))


def upgrade() -> None:
    conn = op.get_bind()
    current = conn.execute(sa.select(head.c.seq, head.c.hash).where(head.c.id == 1)).first()
    rows = conn.execute(sa.select(ledger).order_by(ledger.c.id)).mappings().all()
    if current is None or not rows:
        return  # a new store: nothing written before sealing existed
    sealed = {e.payload.get("entry_id") for e in conn.execute(
        sa.select(events.c.payload).where(events.c.action.like(ACTION_PREFIX + "%")))
        if isinstance(e.payload, dict)}
    seq, prev = current
    at = datetime.now(timezone.utc).isoformat()
    for row in rows:
        if row["id"] in sealed:
            continue
        entry = BudgetEntry(**{k: row[k] for k in ("id", "dataset", "operator", "job_id", "kind", "resolution",
                                                    "epsilon", "delta", "at")})
        payload = json.loads(canonical(ledger_payload(entry)))
        seq += 1
        h = entry_hash(prev, seq, at, "system", ACTION_PREFIX + entry.kind, entry.job_id, payload)
        conn.execute(events.insert().values(seq=seq, at=at, actor="system", action=ACTION_PREFIX + entry.kind,
                                            subject=entry.job_id, payload=payload, prev_hash=prev, hash=h))
        prev = h
    conn.execute(head.update().where(head.c.id == 1).values(seq=seq, hash=prev))


def downgrade() -> None:
    pass  # the seals are audit events: the chain is append-only

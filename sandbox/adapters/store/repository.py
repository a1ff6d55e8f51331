"""The Repository contract (core/ports.py) on SQLAlchemy: SQLite embedded, PostgreSQL
in production. Rows are copied into and out of the core's plain records, so a use case
changes storage only through a mutator, and every mutator records its audit event."""
from __future__ import annotations

import dataclasses
import json
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterable

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from sandbox.adapters.store import models as m
from sandbox.adapters.store.db import Store, head_stmt
from sandbox.adapters.store.notices import SqlNotices
from sandbox.core import records as r
from sandbox.core.audit import AuditRecord, canonical, entry_hash
from sandbox.core.ledger_chain import ledger_event
from sandbox.core.policy.versions import APPLIED
from sandbox.core.ports import DATASET_WIDE, Clock
from sandbox.core.states import RUNNING

_ROW = {r.User: m.User, r.Dataset: m.Dataset, r.DatasetVersion: m.DatasetVersion, r.PolicyVersion: m.PolicyVersion, r.Job: m.Job,
        r.RunLog: m.RunLog, r.BlockResult: m.BlockResult, r.Output: m.Output,
        r.ReleasedAggregate: m.ReleasedAggregate, r.Review: m.Review, r.BudgetEntry: m.LedgerEntry}


def _aware(value):
    # SQLite drops tzinfo; everything is stored in UTC.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def to_record(row, cls):
    if row is None:
        return None
    return cls(**{f.name: _aware(getattr(row, f.name)) for f in dataclasses.fields(cls)})


def to_row(record, row=None):
    row = row if row is not None else _ROW[type(record)]()
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if f.name == "id" and value is None:
            continue
        setattr(row, f.name, value)
    return row


class SqlTx(SqlNotices):
    def __init__(self, session, store: Store, clock: Clock):
        self.s, self.store, self.clock = session, store, clock
        self._recorded: list[r.Event] = []

    # ---------------------------------------------------------------- audit
    def record(self, event: r.Event) -> None:
        if any(e is event for e in self._recorded):
            return  # one event, several changes: recorded once
        self._recorded.append(event)
        head = self.store.lock_for_update(self.s, head_stmt())
        seq = head.seq + 1
        at = self.clock().isoformat()
        payload = json.loads(canonical(event.payload or {}))
        h = entry_hash(head.hash, seq, at, event.actor, event.action, event.subject, payload)
        self.s.add(m.AuditEvent(seq=seq, at=at, actor=event.actor, action=event.action, subject=event.subject,
                                payload=payload, prev_hash=head.hash, hash=h))
        head.seq, head.hash = seq, h

    def audit_records(self) -> list[AuditRecord]:
        rows = self.s.execute(select(m.AuditEvent).order_by(m.AuditEvent.seq)).scalars().all()
        return [AuditRecord(x.seq, x.at, x.actor, x.action, x.subject, x.payload, x.prev_hash, x.hash) for x in rows]

    def audit_head(self) -> tuple[int, str]:
        head = self.s.execute(head_stmt()).scalar_one()
        return head.seq, head.hash

    def _insert(self, record, event: r.Event) -> None:
        self.record(event)
        row = to_row(record)
        self.s.add(row)
        self.s.flush()
        if hasattr(record, "id") and getattr(row, "id", None) is not None:
            record.id = row.id

    def _all(self, cls, stmt) -> list:
        return [to_record(x, cls) for x in self.s.execute(stmt).scalars().all()]

    # ---------------------------------------------------------------- users
    def user_by_name(self, name: str):
        return to_record(self.s.execute(select(m.User).where(m.User.name == name)).scalar_one_or_none(), r.User)

    def user_by_token_hash(self, token_hash: str):
        return to_record(self.s.execute(select(m.User).where(m.User.token_hash == token_hash)).scalar_one_or_none(),
                         r.User)

    def _upsert_by_name(self, record, event: r.Event) -> None:
        model = _ROW[type(record)]
        row = self.s.execute(select(model).where(model.name == record.name)).scalar_one_or_none()
        if row is None:
            return self._insert(record, event)
        self.record(event)
        record.id = row.id
        to_row(record, row)

    def save_user(self, user: r.User, event: r.Event) -> None:
        self._upsert_by_name(user, event)

    # ---------------------------------------------------------------- datasets, policies
    def dataset(self, name: str):
        return to_record(self.s.execute(select(m.Dataset).where(m.Dataset.name == name)).scalar_one_or_none(),
                         r.Dataset)

    def datasets(self):
        return self._all(r.Dataset, select(m.Dataset).order_by(m.Dataset.name))

    def save_dataset(self, dataset: r.Dataset, event: r.Event) -> None:
        self._upsert_by_name(dataset, event)

    def dataset_versions(self, dataset: str):
        return self._all(r.DatasetVersion, select(m.DatasetVersion).where(m.DatasetVersion.dataset == dataset)
                         .order_by(m.DatasetVersion.id))

    def save_dataset_version(self, version: r.DatasetVersion, event: r.Event) -> None:
        row = self.s.execute(select(m.DatasetVersion).where(m.DatasetVersion.dataset == version.dataset,
                                                             m.DatasetVersion.version_id == version.version_id)
                             ).scalar_one_or_none()
        if row is None:
            return self._insert(version, event)
        self.record(event)
        version.id = row.id
        to_row(version, row)

    def latest_policy(self, dataset: str):
        # Only applied versions are in force: a proposed or declined one never is.
        return to_record(self.s.execute(select(m.PolicyVersion).where(m.PolicyVersion.dataset == dataset,
                                                                      m.PolicyVersion.state == APPLIED)
                                        .order_by(m.PolicyVersion.version.desc()).limit(1)).scalar_one_or_none(),
                         r.PolicyVersion)

    def policy_versions(self, dataset: str):
        return self._all(r.PolicyVersion, select(m.PolicyVersion).where(m.PolicyVersion.dataset == dataset)
                         .order_by(m.PolicyVersion.version))

    def save_policy_version(self, policy: r.PolicyVersion, event: r.Event) -> None:
        row = self.s.get(m.PolicyVersion, policy.id)
        if row is None:
            raise KeyError(f"no policy version {policy.id}")
        self.record(event)
        to_row(policy, row)

    def policy_version(self, version_id: int):
        return to_record(self.s.get(m.PolicyVersion, version_id), r.PolicyVersion)

    def add_policy_version(self, policy: r.PolicyVersion, event: r.Event) -> None:
        self._insert(policy, event)

    # ---------------------------------------------------------------- jobs
    def job(self, job_id: str, *, for_update: bool = False):
        if not isinstance(job_id, str) or len(job_id) > 32:
            return None
        stmt = select(m.Job).where(m.Job.id == job_id)
        row = self.store.lock_for_update(self.s, stmt) if for_update else self.s.execute(stmt).scalar_one_or_none()
        return to_record(row, r.Job)

    def jobs(self, *, operator=None, dataset=None, states: Iterable[str] | None = None, created_before=None,
             visible_by=None, hidden_at=None, newest_first=True, limit=None):
        q = select(m.Job)
        if operator is not None:
            q = q.where(m.Job.operator == operator)
        if dataset is not None:
            q = q.where(m.Job.dataset == dataset)
        if created_before is not None:
            q = q.where(m.Job.created_at < created_before)
        cond = m.Job.state.in_(list(states)) if states is not None else None
        if visible_by is not None:
            settled = or_(m.Job.visible_after.is_(None), m.Job.visible_after <= visible_by)
            cond = settled if cond is None else and_(cond, settled)
        if hidden_at is not None:
            hidden = m.Job.visible_after > hidden_at
            cond = hidden if cond is None else or_(cond, hidden)
        if cond is not None:
            q = q.where(cond)
        q = q.order_by(m.Job.created_at.desc() if newest_first else m.Job.created_at)
        if limit is not None:
            q = q.limit(limit)
        return self._all(r.Job, q)

    def add_job(self, job: r.Job, event: r.Event) -> None:
        self._insert(job, event)

    def save_job(self, job: r.Job, event: r.Event) -> None:
        self.record(event)
        to_row(job, self.s.get(m.Job, job.id))

    # ---------------------------------------------------------------- run facts
    def add_run_log(self, log: r.RunLog, event: r.Event) -> None:
        self._insert(log, event)

    def run_logs(self, job_id=None):
        q = select(m.RunLog).order_by(m.RunLog.id)
        if job_id is not None:
            q = q.where(m.RunLog.job_id == job_id)
        return self._all(r.RunLog, q)

    def add_block_result(self, result: r.BlockResult, event: r.Event) -> bool:
        self.record(event)
        if self.s.execute(select(m.BlockResult.id).where(
                m.BlockResult.job_id == result.job_id, m.BlockResult.attempt == result.attempt,
                m.BlockResult.block == result.block)).first() is not None:
            return False
        row = to_row(result)
        try:
            with self.s.begin_nested():
                self.s.add(row)
        except IntegrityError:
            return False  # a duplicate delivery of this block finished first
        result.id = row.id
        return True

    def block_results(self, job_id: str, attempt=None):
        q = select(m.BlockResult).where(m.BlockResult.job_id == job_id)
        if attempt is not None:
            q = q.where(m.BlockResult.attempt == attempt)
        return self._all(r.BlockResult, q.order_by(m.BlockResult.attempt, m.BlockResult.block))

    def add_output(self, output: r.Output, event: r.Event) -> None:
        self._insert(output, event)

    def outputs(self, job_id: str):
        return self._all(r.Output, select(m.Output).where(m.Output.job_id == job_id).order_by(m.Output.name))

    # ---------------------------------------------------------------- release
    def add_review(self, review: r.Review, event: r.Event) -> None:
        self._insert(review, event)

    def reviews(self, job_id: str):
        return self._all(r.Review, select(m.Review).where(m.Review.job_id == job_id).order_by(m.Review.id))

    def add_released_aggregate(self, aggregate: r.ReleasedAggregate, event: r.Event) -> None:
        self._insert(aggregate, event)

    def released_aggregates(self, dataset: str, version: str):
        return self._all(r.ReleasedAggregate, select(m.ReleasedAggregate).where(
            m.ReleasedAggregate.dataset == dataset, m.ReleasedAggregate.dataset_version == version)
            .order_by(m.ReleasedAggregate.id))

    # ---------------------------------------------------------------- budget
    def lock_budget(self, dataset: str, operator: str) -> None:
        # The lock rows are created outside this transaction (SqlRepository.ensure_budget_lock)
        # so a concurrent first admission cannot fail on their unique key. The dataset-wide row
        # first, always: one order for every admission, so no two can deadlock.
        for who in dict.fromkeys((DATASET_WIDE, operator)):
            self.store.lock_for_update(self.s, select(m.BudgetLock).where(m.BudgetLock.dataset == dataset,
                                                                          m.BudgetLock.operator == who))

    def add_budget_entry(self, entry: r.BudgetEntry, event: r.Event) -> None:
        self._insert(entry, event)
        # Sealed by an event of its own, with the row's content and id (core/ledger_chain.py).
        self.record(ledger_event(entry, event))

    def budget_entries(self, dataset: str, operator=None, job_id=None):
        q = select(m.LedgerEntry).where(m.LedgerEntry.dataset == dataset)
        if operator is not None:
            q = q.where(m.LedgerEntry.operator == operator)
        if job_id is not None:
            q = q.where(m.LedgerEntry.job_id == job_id)
        return self._all(r.BudgetEntry, q.order_by(m.LedgerEntry.id))


class SqlRepository:
    def __init__(self, store: Store, clock: Clock):
        self.store, self.clock = store, clock

    @contextmanager
    def transaction(self):
        with self.store.transaction() as s:
            yield SqlTx(s, self.store, self.clock)

    @contextmanager
    def snapshot(self):
        """A transaction that reads one moment: REPEATABLE READ on PostgreSQL, so the chain, its
        head and the ledger agree while others append (SQLite transactions already do)."""
        with self.store.transaction() as s:
            if not self.store.is_sqlite:
                s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield SqlTx(s, self.store, self.clock)

    def ensure_budget_lock(self, dataset: str, operator: str) -> None:
        for who in dict.fromkeys((DATASET_WIDE, operator)):
            try:
                with self.store.transaction() as s:
                    if s.get(m.BudgetLock, (dataset, who)) is None:
                        s.add(m.BudgetLock(dataset=dataset, operator=who))
            except IntegrityError:
                pass  # a concurrent submission created it first

    def renew_leases(self, job_ids: Iterable[str], until: datetime) -> list[str]:
        ids = [j for j in job_ids if isinstance(j, str)]
        if not ids:
            return []
        now = self.clock()
        running = []
        with self.store.transaction() as s:
            stmt = select(m.Job).where(m.Job.id.in_(ids), m.Job.state == RUNNING)
            if not self.store.is_sqlite:
                stmt = stmt.with_for_update()  # not interleaved with the sweeper's requeue
            for row in s.execute(stmt).scalars():
                running.append(row.id)
                expires = _aware(row.lease_expires)
                if expires is not None and now <= expires < until:
                    row.lease_expires = until
        return running

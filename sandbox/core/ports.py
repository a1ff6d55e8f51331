"""The contracts between the use cases and the parts at the edges.

`Repository` is all data access: one unit of work per `transaction()`. Readers return
copies of records; nothing changes in storage unless a mutator is called, and every
mutator takes the audit `Event` that explains the change (tests/unit/test_ports.py
fails if one does not). One event handed to several mutators of one transaction is
recorded once. Implementations: adapters/store/repository.py (SQLAlchemy: SQLite,
PostgreSQL) and adapters/memory.py (an in-memory fake for fast tests).
"""
from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Protocol

from sandbox.core.audit import AuditRecord
from sandbox.core.records import (BlockResult, BudgetEntry, Dataset, DatasetVersion, Event, Job, Notice, Output,
                                  PolicyVersion, ReleasedAggregate, Review, RunLog, User)

Clock = Callable[[], datetime]


class Tx(Protocol):
    """One transaction. Leaving the `with` block commits; an exception rolls back."""

    # ---- users
    def user_by_name(self, name: str) -> User | None: ...
    def user_by_token_hash(self, token_hash: str) -> User | None: ...
    def save_user(self, user: User, event: Event) -> None:
        """Insert or update by name."""
    def users(self, role: str | None = None) -> list[User]:
        """Every user (of this role), by name."""

    # ---- datasets and policies
    def dataset(self, name: str) -> Dataset | None: ...
    def datasets(self) -> list[Dataset]: ...
    def save_dataset(self, dataset: Dataset, event: Event) -> None:
        """Insert or update by name."""
    def dataset_versions(self, dataset: str) -> list[DatasetVersion]:
        """The dataset's registered versions, oldest first."""
    def save_dataset_version(self, version: DatasetVersion, event: Event) -> None:
        """Insert or update by (dataset, version_id)."""
    def latest_policy(self, dataset: str) -> PolicyVersion | None:
        """The policy in force: the highest applied version (never a proposed or declined one)."""
    def policy_version(self, version_id: int) -> PolicyVersion | None: ...
    def policy_versions(self, dataset: str) -> list[PolicyVersion]:
        """Every version of the dataset's policy, whatever its state, oldest first."""
    def add_policy_version(self, policy: PolicyVersion, event: Event) -> None:
        """Insert; sets `policy.id`."""
    def save_policy_version(self, policy: PolicyVersion, event: Event) -> None:
        """Update an existing version by id (its state and decision)."""

    # ---- jobs
    def job(self, job_id: str, *, for_update: bool = False) -> Job | None:
        """`for_update` locks the row until the transaction ends (PostgreSQL), so
        concurrent workers and reviewers serialize on one job."""
    def jobs(self, *, operator: str | None = None, dataset: str | None = None, states: Iterable[str] | None = None,
             created_before: datetime | None = None, visible_by: datetime | None = None,
             hidden_at: datetime | None = None, newest_first: bool = True, limit: int | None = None) -> list[Job]:
        """Jobs matching every given filter. `visible_by=t`: outcome visible at t (no
        `visible_after` or `visible_after <= t`); `hidden_at=t` with `states`: jobs in
        those states OR with an outcome still hidden at t (the operator's in_progress)."""
    def add_job(self, job: Job, event: Event) -> None: ...
    def save_job(self, job: Job, event: Event) -> None:
        """Write every field of the job. Only core.lifecycle.transition changes `state`."""

    # ---- run facts (compliance only)
    def add_run_log(self, log: RunLog, event: Event) -> None: ...
    def run_logs(self, job_id: str | None = None) -> list[RunLog]: ...
    def add_block_result(self, result: BlockResult, event: Event) -> bool:
        """False (and nothing stored) when this (job, attempt, block) is already there."""
    def block_results(self, job_id: str, attempt: int | None = None) -> list[BlockResult]: ...
    def add_output(self, output: Output, event: Event) -> None: ...
    def outputs(self, job_id: str) -> list[Output]: ...

    # ---- release
    def add_review(self, review: Review, event: Event) -> None: ...
    def reviews(self, job_id: str) -> list[Review]: ...
    def add_released_aggregate(self, aggregate: ReleasedAggregate, event: Event) -> None: ...
    def released_aggregates(self, dataset: str, version: str) -> list[ReleasedAggregate]: ...

    # ---- budget
    def lock_budget(self, dataset: str, operator: str) -> None:
        """Serialize admissions against the dataset's budgets until commit: the dataset-wide
        one (DATASET_WIDE lock row, taken first by everyone) and this operator's. The rows
        must exist (Repository.ensure_budget_lock, outside the transaction)."""
    def add_budget_entry(self, entry: BudgetEntry, event: Event) -> None: ...
    def budget_entries(self, dataset: str, operator: str | None = None, job_id: str | None = None
                       ) -> list[BudgetEntry]: ...

    # ---- audit
    def record(self, event: Event) -> None:
        """Append an event that goes with no other change (a sign-in failure, a download)."""
    def audit_records(self) -> list[AuditRecord]: ...
    def audit_head(self) -> tuple[int, str]: ...

    # ---- notices (core/notices.py)
    def add_notice(self, notice: Notice, event: Event) -> bool:
        """Insert; False, with nothing stored and no event recorded, when the recipient already
        has a notice of this dedup_key (periodic scans repeat themselves)."""
    def save_notice(self, notice: Notice, event: Event) -> None:
        """Write read_at and emailed_at of a stored notice."""
    def notice(self, notice_id: str, *, for_update: bool = False) -> Notice | None: ...
    def notices(self, recipient: str | None = None, *, visible_by: datetime | None = None,
                unread_only: bool = False, unemailed_only: bool = False, limit: int | None = None) -> list[Notice]:
        """Notices matching every filter, newest `visible_at` first (ties by id, which is
        random), never ordered by when they were created. `visible_by=t`: visible_at <= t."""


class Repository(Protocol):
    """Opens units of work; `clock` stamps audit events."""
    def transaction(self) -> AbstractContextManager[Tx]: ...
    def snapshot(self) -> AbstractContextManager[Tx]:
        """A unit of work for reading that sees one moment while others write (the audit
        chain, its head and the ledger agree); for `audit verify` and backups."""
    def ensure_budget_lock(self, dataset: str, operator: str) -> None:
        """Create the lock rows Tx.lock_budget takes, (dataset, DATASET_WIDE) and (dataset,
        operator), in their own transaction, so concurrent first admissions cannot collide
        on the rows' unique key. Idempotent; the rows hold no data."""
    def renew_leases(self, job_ids: Iterable[str], until: datetime) -> list[str]:
        """A live worker's heartbeat (agent/leases.py): move the lease of each of these jobs
        that is still running, its lease not yet expired, forward to `until` (never back);
        returns the ids still running. No audit event: the job's transitions are audited,
        and an event every few seconds would flood the chain with nothing to verify."""


# The operator value of a dataset's dataset-wide lock row (budget_locks). Lock rows carry no
# data, so even an operator of that name would only share the lock, never a budget.
DATASET_WIDE = "*"


class Queue(Protocol):
    """Hands work to the agent side. Sending may fail; the sweeper re-sends."""
    def send_job(self, job_id: str) -> None: ...
    def send_block(self, job_id: str, attempt: int, index: int) -> None: ...


class Backend(Protocol):
    """An isolation backend (agent/backends): runs the in-box runner on a request."""
    name: str

    def run(self, request: Any) -> Any: ...


@dataclass
class Parts:
    """What every use case is given by bootstrap(): real parts, or fakes in tests."""
    settings: Any                                  # sandbox.config.Settings
    repo: Repository
    clock: Clock
    queue: Queue
    # (classification=None) -> Backend; raises BackendUnavailable when none can run here.
    backend_factory: Callable[..., Backend]
    # Waits (seconds); tests pass one that moves their clock instead.
    sleep: Callable[[float], None] = time.sleep


MUTATORS = ("save_user", "save_dataset", "save_dataset_version", "add_policy_version", "save_policy_version", "add_job", "save_job",
            "add_run_log",
            "add_block_result", "add_output", "add_review", "add_released_aggregate", "add_budget_entry",
            "add_notice", "save_notice")

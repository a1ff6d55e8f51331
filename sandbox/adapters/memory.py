"""An in-memory Repository (core/ports.py) for fast tests: the same contract as the
SQL one, kept in dicts. A transaction works on a deep copy of the state and swaps it
in on success, so an exception leaves nothing half-written; one lock serializes
transactions, as SQLite's BEGIN IMMEDIATE does."""
from __future__ import annotations

import copy
import dataclasses
import json
import threading
from contextlib import contextmanager

from sandbox.adapters.memory_notices import MemoryNotices
from sandbox.core import records as r
from sandbox.core.audit import GENESIS, AuditRecord, canonical, entry_hash
from sandbox.core.ledger_chain import ledger_event
from sandbox.core.policy.versions import APPLIED
from sandbox.core.ports import Clock
from sandbox.core.states import RUNNING


@dataclasses.dataclass
class _State:
    users: dict = dataclasses.field(default_factory=dict)          # name -> User
    datasets: dict = dataclasses.field(default_factory=dict)       # name -> Dataset
    dataset_versions: list = dataclasses.field(default_factory=list)
    policies: list = dataclasses.field(default_factory=list)
    jobs: dict = dataclasses.field(default_factory=dict)           # id -> Job (insertion order)
    run_logs: list = dataclasses.field(default_factory=list)
    blocks: list = dataclasses.field(default_factory=list)
    outputs: list = dataclasses.field(default_factory=list)
    reviews: list = dataclasses.field(default_factory=list)
    aggregates: list = dataclasses.field(default_factory=list)
    budget: list = dataclasses.field(default_factory=list)
    audit: list = dataclasses.field(default_factory=list)
    notices: list = dataclasses.field(default_factory=list)
    next_id: int = 1


class MemoryTx(MemoryNotices):
    def __init__(self, state: _State, clock: Clock):
        self.st, self.clock = state, clock
        self._recorded: list[r.Event] = []

    def _id(self) -> int:
        self.st.next_id += 1
        return self.st.next_id

    def _add(self, bucket: list, record, event) -> None:
        self.record(event)
        if getattr(record, "id", None) is None:
            record.id = self._id()
        bucket.append(copy.deepcopy(record))

    @staticmethod
    def _copies(items) -> list:
        return [copy.deepcopy(x) for x in items]

    # ---- audit
    def record(self, event: r.Event) -> None:
        if any(e is event for e in self._recorded):
            return
        self._recorded.append(event)
        prev = self.st.audit[-1] if self.st.audit else None
        seq, prev_hash = (prev.seq + 1, prev.hash) if prev else (1, GENESIS)
        at = self.clock().isoformat()
        payload = json.loads(canonical(event.payload or {}))
        h = entry_hash(prev_hash, seq, at, event.actor, event.action, event.subject, payload)
        self.st.audit.append(AuditRecord(seq, at, event.actor, event.action, event.subject, payload, prev_hash, h))

    def audit_records(self):
        return list(self.st.audit)

    def audit_head(self):
        return (self.st.audit[-1].seq, self.st.audit[-1].hash) if self.st.audit else (0, GENESIS)

    # ---- users
    def user_by_name(self, name):
        return copy.deepcopy(self.st.users.get(name))

    def user_by_token_hash(self, token_hash):
        return next((copy.deepcopy(u) for u in self.st.users.values() if u.token_hash == token_hash), None)

    def save_user(self, user, event):
        self.record(event)
        old = self.st.users.get(user.name)
        user.id = old.id if old else self._id()
        self.st.users[user.name] = copy.deepcopy(user)

    # ---- datasets, policies
    def dataset(self, name):
        return copy.deepcopy(self.st.datasets.get(name))

    def datasets(self):
        return self._copies(self.st.datasets[k] for k in sorted(self.st.datasets))

    def save_dataset(self, dataset, event):
        self.record(event)
        old = self.st.datasets.get(dataset.name)
        dataset.id = old.id if old else self._id()
        self.st.datasets[dataset.name] = copy.deepcopy(dataset)

    def dataset_versions(self, dataset):
        return self._copies(v for v in self.st.dataset_versions if v.dataset == dataset)

    def save_dataset_version(self, version, event):
        self.record(event)
        for i, old in enumerate(self.st.dataset_versions):
            if (old.dataset, old.version_id) == (version.dataset, version.version_id):
                version.id = old.id
                self.st.dataset_versions[i] = copy.deepcopy(version)
                return
        version.id = self._id()
        self.st.dataset_versions.append(copy.deepcopy(version))

    def latest_policy(self, dataset):
        rows = [p for p in self.st.policies if p.dataset == dataset and p.state == APPLIED]
        return copy.deepcopy(max(rows, key=lambda p: p.version)) if rows else None

    def policy_versions(self, dataset):
        return self._copies(sorted((p for p in self.st.policies if p.dataset == dataset), key=lambda p: p.version))

    def save_policy_version(self, policy, event):
        i = next(i for i, p in enumerate(self.st.policies) if p.id == policy.id)
        self.record(event)
        self.st.policies[i] = copy.deepcopy(policy)

    def policy_version(self, version_id):
        return next((copy.deepcopy(p) for p in self.st.policies if p.id == version_id), None)

    def add_policy_version(self, policy, event):
        self._add(self.st.policies, policy, event)

    # ---- jobs
    def job(self, job_id, *, for_update=False):
        return copy.deepcopy(self.st.jobs.get(job_id)) if isinstance(job_id, str) else None

    def jobs(self, *, operator=None, dataset=None, states=None, created_before=None, visible_by=None,
             hidden_at=None, newest_first=True, limit=None):
        states = set(states) if states is not None else None

        def keep(j) -> bool:
            if operator is not None and j.operator != operator:
                return False
            if dataset is not None and j.dataset != dataset:
                return False
            if created_before is not None and not j.created_at < created_before:
                return False
            ok = None if states is None else j.state in states
            if visible_by is not None:
                settled = j.visible_after is None or j.visible_after <= visible_by
                ok = settled if ok is None else ok and settled
            if hidden_at is not None:
                hidden = j.visible_after is not None and j.visible_after > hidden_at
                ok = hidden if ok is None else ok or hidden
            return True if ok is None else ok

        found = sorted((j for j in self.st.jobs.values() if keep(j)), key=lambda j: j.created_at,
                       reverse=newest_first)
        return self._copies(found[:limit] if limit is not None else found)

    def add_job(self, job, event):
        self.record(event)
        self.st.jobs[job.id] = copy.deepcopy(job)

    def save_job(self, job, event):
        self.record(event)
        self.st.jobs[job.id] = copy.deepcopy(job)

    # ---- run facts
    def add_run_log(self, log, event):
        self._add(self.st.run_logs, log, event)

    def run_logs(self, job_id=None):
        return self._copies(x for x in self.st.run_logs if job_id is None or x.job_id == job_id)

    def add_block_result(self, result, event):
        self.record(event)
        if any((b.job_id, b.attempt, b.block) == (result.job_id, result.attempt, result.block)
               for b in self.st.blocks):
            return False
        self._add(self.st.blocks, result, event)
        return True

    def block_results(self, job_id, attempt=None):
        found = [b for b in self.st.blocks if b.job_id == job_id and (attempt is None or b.attempt == attempt)]
        return self._copies(sorted(found, key=lambda b: (b.attempt, b.block)))

    def add_output(self, output, event):
        self._add(self.st.outputs, output, event)

    def outputs(self, job_id):
        return self._copies(sorted((o for o in self.st.outputs if o.job_id == job_id), key=lambda o: o.name))

    # ---- release
    def add_review(self, review, event):
        self._add(self.st.reviews, review, event)

    def reviews(self, job_id):
        return self._copies(x for x in self.st.reviews if x.job_id == job_id)

    def add_released_aggregate(self, aggregate, event):
        self._add(self.st.aggregates, aggregate, event)

    def released_aggregates(self, dataset, version):
        return self._copies(a for a in self.st.aggregates if (a.dataset, a.dataset_version) == (dataset, version))

    # ---- budget
    def lock_budget(self, dataset, operator):
        pass  # every memory transaction already holds the one lock, dataset-wide included

    def add_budget_entry(self, entry, event):
        self._add(self.st.budget, entry, event)
        self.record(ledger_event(entry, event))  # sealed as the SQL store seals it

    def budget_entries(self, dataset, operator=None, job_id=None):
        return self._copies(e for e in self.st.budget if e.dataset == dataset
                            and (operator is None or e.operator == operator) and (job_id is None or e.job_id == job_id))


class MemoryRepository:
    def __init__(self, clock: Clock):
        self.clock = clock
        self._state = _State()
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self):
        with self._lock:
            work = copy.deepcopy(self._state)
            yield MemoryTx(work, self.clock)
            self._state = work  # reached only without an exception: commit

    snapshot = transaction  # every memory transaction already sees one moment

    def ensure_budget_lock(self, dataset: str, operator: str) -> None:
        pass  # no lock rows: transactions serialize on self._lock

    def renew_leases(self, job_ids, until):
        now, running = self.clock(), []
        with self._lock:
            for job_id in job_ids:
                job = self._state.jobs.get(job_id)
                if job is None or job.state != RUNNING:
                    continue
                running.append(job_id)
                if job.lease_expires is not None and now <= job.lease_expires < until:
                    job.lease_expires = until
        return running

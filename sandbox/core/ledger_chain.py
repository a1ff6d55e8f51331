"""The budget ledger under the audit chain.

Every ledger row is sealed by an audit event of its own ("budget.reserve", "budget.charge",
"budget.release") whose payload is the row's full content, written in the same transaction.
A row edited in the database (a charge set to 0, a reserve and its charge both zeroed to
get budget back), deleted or inserted no longer matches the chain, and rewriting the chain
to match is what signed checkpoints (adapters/checkpoints.py) catch. `verify_ledger` names
each such row; the balance code itself only checks the invariants it can see (core.ledger).
"""
from __future__ import annotations

from collections.abc import Iterable

from sandbox.core.audit import AuditRecord
from sandbox.core.ledger import LedgerEntry, LedgerError, as_utc, validate_sequence
from sandbox.core.records import BudgetEntry, Event

ACTION_PREFIX = "budget."


def ledger_payload(entry: BudgetEntry) -> dict:
    """Everything a ledger row holds, as JSON values (floats round-trip exactly)."""
    return {"entry_id": entry.id, "dataset": entry.dataset, "operator": entry.operator, "job_id": entry.job_id,
            "kind": entry.kind, "resolution": entry.resolution, "epsilon": float(entry.epsilon),
            "delta": float(entry.delta), "at": as_utc(entry.at).isoformat()}


def ledger_event(entry: BudgetEntry, cause: Event) -> Event:
    """The audit event that seals one ledger row, by whoever caused it."""
    return Event(cause.actor, ACTION_PREFIX + entry.kind, entry.job_id, ledger_payload(entry))


def _name(entry_id, kind, job_id, dataset, operator) -> str:
    return f"ledger entry id={entry_id} ({kind} of job {job_id}, operator {operator}, dataset {dataset})"


def verify_ledger(entries: Iterable[BudgetEntry], records: Iterable[AuditRecord]) -> list[str]:
    """Problems found (empty when intact): rows that differ from, are missing from, or were
    never recorded in the audit chain, and per-operator sequences that break the ledger's
    invariants. Each problem names the row."""
    sealed: dict = {}
    problems: list[str] = []
    for r in records:
        if r.action.startswith(ACTION_PREFIX) and isinstance(r.payload, dict) and "entry_id" in r.payload:
            if r.payload["entry_id"] in sealed:
                problems.append(f"audit seq={r.seq}: seals ledger entry id={r.payload['entry_id']} a second time")
                continue
            sealed[r.payload["entry_id"]] = (r.seq, r.payload)
    groups: dict[tuple, list] = {}
    seen = set()
    for e in entries:
        seen.add(e.id)
        name = _name(e.id, e.kind, e.job_id, e.dataset, e.operator)
        found = sealed.get(e.id)
        if found is None:
            problems.append(f"{name}: not sealed by any audit event (written outside the application)")
        else:
            seq, recorded = found
            now = ledger_payload(e)
            diffs = [f"{k} is {now[k]!r}, sealed as {recorded.get(k)!r}" for k in now if recorded.get(k) != now[k]]
            if diffs:
                problems.append(f"{name}: modified since audit seq={seq} sealed it: {'; '.join(diffs)}")
        try:
            groups.setdefault((e.dataset, e.operator), []).append(
                LedgerEntry(kind=e.kind, job_id=e.job_id, epsilon=e.epsilon, delta=e.delta, at=e.at))
        except LedgerError as ex:
            problems.append(f"{name}: {ex}")
    for entry_id, (seq, p) in sealed.items():
        if entry_id not in seen:
            problems.append(f"{_name(entry_id, p.get('kind'), p.get('job_id'), p.get('dataset'), p.get('operator'))}"
                            f": sealed at audit seq={seq} but missing from the ledger (deleted or moved)")
    for (dataset, operator), group in groups.items():
        try:
            validate_sequence(group)
        except LedgerError as ex:
            problems.append(f"ledger of operator {operator} on dataset {dataset}: {ex}")
    return problems

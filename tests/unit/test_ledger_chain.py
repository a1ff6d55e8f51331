"""Ledger rows sealed by the audit chain (core/ledger_chain.py), on the in-memory repository:
each row's audit event holds its content, so an edit, a deletion or an insertion is named."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

from sandbox.adapters.memory import MemoryRepository
from sandbox.core.audit import verify_chain
from sandbox.core.ledger_chain import verify_ledger
from sandbox.core.records import BudgetEntry, Event

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)


def ledger() -> MemoryRepository:
    repo = MemoryRepository(lambda: T0)
    with repo.transaction() as tx:
        for job, eps in (("j1", 0.25), ("j2", 0.5)):
            reserve = BudgetEntry("ds", "op", job, "reserve", "reserve", eps, at=T0)
            tx.add_budget_entry(reserve, Event("op", "job.submitted", job))
        charge = BudgetEntry("ds", "op", "j1", "charge", "resolve", 0.25, at=T0 + timedelta(seconds=5))
        tx.add_budget_entry(charge, Event("system", "job.transition", "j1"))
    return repo


def check(repo) -> list[str]:
    with repo.transaction() as tx:
        return verify_ledger(tx.budget_entries("ds"), tx.audit_records())


def test_every_ledger_row_is_sealed_by_an_audit_event_of_its_own():
    repo = ledger()
    with repo.transaction() as tx:
        actions = [r.action for r in tx.audit_records()]
        assert verify_chain(tx.audit_records()) == []
    assert actions == ["job.submitted", "budget.reserve", "job.submitted", "budget.reserve", "job.transition",
                       "budget.charge"]
    assert check(repo) == []


def test_a_zeroed_reserve_and_charge_are_both_named():
    repo = ledger()
    repo._state.budget = [dataclasses.replace(e, epsilon=0.0) if e.job_id == "j1" else e for e in repo._state.budget]
    problems = check(repo)
    assert len(problems) == 2
    assert all("of job j1" in p and "epsilon is 0.0, sealed as 0.25" in p for p in problems)


def test_an_edited_charge_breaks_the_seal_and_the_ledgers_own_invariant():
    repo = ledger()
    repo._state.budget[2] = dataclasses.replace(repo._state.budget[2], epsilon=0.1)
    problems = check(repo)
    assert any(p.startswith("ledger entry id=") and "(charge of job j1" in p and "modified" in p for p in problems)
    assert any("differs from the reserved amount" in p for p in problems)


def test_a_deleted_row_and_a_forged_row_are_named():
    repo = ledger()
    deleted = repo._state.budget.pop(1)
    repo._state.budget.append(BudgetEntry("ds", "op", "forged", "reserve", "reserve", 0.1, id=999, at=T0))
    problems = check(repo)
    assert any(f"id={deleted.id} (reserve of job j2" in p and "deleted" in p for p in problems)
    assert any("id=999 (reserve of job forged" in p and "not sealed" in p for p in problems)

"""The one function that changes a job's state (tests/unit/test_ports.py keeps it so).

It validates the change against the transition table (core.states), writes the budget
effect of the change (charge when the run starts, release when a job ends before
touching data), the audit event and the notices the change gives (core/notices.py), all in
the caller's transaction.
"""
from __future__ import annotations

from datetime import datetime

from sandbox.core import notices
from sandbox.core import states as st
from sandbox.core.errors import text_to_data
from sandbox.core.ports import Tx
from sandbox.core.records import BudgetEntry, Event, Job


def transition(tx: Tx, job: Job, to_state: str, actor_role: str, actor: str, now: datetime,
               reason: str = "", payload: dict | None = None) -> Event:
    st.check_transition(job.state, to_state, actor_role)
    event = Event(actor, "job.transition", job.id,
                  {"from": job.state, "to": to_state, "role": actor_role, "reason": str(reason), **(payload or {})})
    effect = st.ledger_effect(job.state, to_state)
    if effect is not None:
        resolutions = {e.resolution for e in tx.budget_entries(job.dataset, job.operator, job_id=job.id)}
        # Nothing reserved (refused at admission), or already resolved: a retried task
        # must never charge twice.
        if "reserve" in resolutions and "resolve" not in resolutions:
            tx.add_budget_entry(BudgetEntry(dataset=job.dataset, operator=job.operator, job_id=job.id, kind=effect,
                                            resolution="resolve", epsilon=job.epsilon, delta=job.delta, at=now),
                                event)
    from_state = job.state
    job.state = to_state
    job.updated_at = now
    tx.save_job(job, event)
    notices.record_transition(tx, job, from_state, now, event)
    return event


def tell(job: Job, message: str) -> None:
    """Set the operator's message of a job: English, and as template and parameters so the
    UI can show it in the reader's language (a reason typed by a person stays as typed)."""
    job.message = str(message)
    job.message_i18n = text_to_data(message)

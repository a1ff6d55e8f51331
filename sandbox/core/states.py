"""The job state machine: one table of valid transitions and who may make them.

`check_transition` validates; the store's single `transition()` records the
change and its audit event in the same database transaction.
"""
from __future__ import annotations

SUBMITTED = "submitted"
AWAITING_APPROVAL = "awaiting_approval"   # data owner must approve the run (policy)
QUEUED = "queued"
RUNNING = "running"
CHECKING = "checking"
AWAITING_REVIEW = "awaiting_review"
RELEASED = "released"
REJECTED = "rejected"
FAILED = "failed"
CANCELLED = "cancelled"

STATES = (SUBMITTED, AWAITING_APPROVAL, QUEUED, RUNNING, CHECKING, AWAITING_REVIEW,
          RELEASED, REJECTED, FAILED, CANCELLED)
TERMINAL = frozenset({RELEASED, REJECTED, FAILED, CANCELLED})

# Actors: the roles of users plus "system" (admission, worker, sweeper).
OPERATOR, OWNER, COMPLIANCE, SYSTEM = "operator", "owner", "compliance", "system"
ROLES = (OPERATOR, OWNER, COMPLIANCE)

# (from, to) -> actors allowed to make the change.
TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
    (SUBMITTED, AWAITING_APPROVAL): frozenset({SYSTEM}),
    (SUBMITTED, QUEUED): frozenset({SYSTEM}),
    (SUBMITTED, REJECTED): frozenset({SYSTEM}),            # admission denied
    (AWAITING_APPROVAL, QUEUED): frozenset({OWNER}),
    (AWAITING_APPROVAL, REJECTED): frozenset({OWNER}),
    (AWAITING_APPROVAL, CANCELLED): frozenset({OPERATOR}),
    (QUEUED, RUNNING): frozenset({SYSTEM}),
    (QUEUED, CANCELLED): frozenset({OPERATOR}),
    # A worker lost mid-run: the sweeper puts the job back; it was charged once already.
    (RUNNING, QUEUED): frozenset({SYSTEM}),
    (RUNNING, CHECKING): frozenset({SYSTEM}),
    # A failed run of a job a person releases goes to compliance like a success (marked
    # failed for compliance only), so its operator sees the same states and times.
    (RUNNING, AWAITING_REVIEW): frozenset({SYSTEM}),
    (RUNNING, FAILED): frozenset({SYSTEM}),                # only jobs no person releases (auto DP queries)
    (CHECKING, AWAITING_REVIEW): frozenset({SYSTEM}),
    (CHECKING, RELEASED): frozenset({SYSTEM}),             # policy allows automatic release
    (CHECKING, FAILED): frozenset({SYSTEM}),
    (AWAITING_REVIEW, RELEASED): frozenset({COMPLIANCE}),
    (AWAITING_REVIEW, REJECTED): frozenset({COMPLIANCE}),
}

# States from which data has not been touched: leaving them for a terminal
# state releases the budget reservation instead of charging it.
BEFORE_RUN = frozenset({SUBMITTED, AWAITING_APPROVAL, QUEUED})


class TransitionError(Exception):
    """An invalid state change or an actor not allowed to make it."""


def check_transition(from_state: str, to_state: str, actor_role: str) -> None:
    allowed = TRANSITIONS.get((from_state, to_state))
    if allowed is None:
        raise TransitionError(f"a job cannot go from {from_state} to {to_state}")
    if actor_role not in allowed:
        raise TransitionError(f"{actor_role} may not move a job from {from_state} to {to_state}")


def ledger_effect(from_state: str, to_state: str) -> str | None:
    """What the budget ledger records for a transition: 'charge' when the job is
    about to touch data, 'release' when it ends without having touched it."""
    if to_state == RUNNING and from_state == QUEUED:
        return "charge"
    if to_state in TERMINAL and from_state in BEFORE_RUN:
        return "release"
    return None


# What an operator is shown. Internal steps after the run starts collapse into one
# state so the operator cannot time the real-data run from state changes.
OPERATOR_VIEW = {
    SUBMITTED: SUBMITTED, AWAITING_APPROVAL: AWAITING_APPROVAL, QUEUED: QUEUED,
    RUNNING: "in_progress", CHECKING: "in_progress", AWAITING_REVIEW: "in_progress",
    RELEASED: RELEASED, REJECTED: REJECTED, FAILED: FAILED, CANCELLED: CANCELLED,
}

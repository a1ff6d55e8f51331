"""The job state machine: every (state, state, role) combination against the one table."""
from __future__ import annotations

import itertools

import pytest

from sandbox.core import states as st


@pytest.mark.parametrize("src,dst,role", list(itertools.product(st.STATES, st.STATES, st.ROLES + (st.SYSTEM,))))
def test_only_the_table_allows_a_transition(src, dst, role):
    allowed = role in st.TRANSITIONS.get((src, dst), frozenset())
    if allowed:
        st.check_transition(src, dst, role)
    else:
        with pytest.raises(st.TransitionError):
            st.check_transition(src, dst, role)


def test_terminal_states_have_no_way_out():
    assert not [k for k in st.TRANSITIONS if k[0] in st.TERMINAL]


def test_budget_is_charged_when_data_is_touched_and_released_only_before():
    assert st.ledger_effect(st.QUEUED, st.RUNNING) == "charge"
    assert st.ledger_effect(st.QUEUED, st.CANCELLED) == "release"
    assert st.ledger_effect(st.AWAITING_APPROVAL, st.REJECTED) == "release"
    assert st.ledger_effect(st.RUNNING, st.FAILED) is None       # ran and failed: stays charged
    assert st.ledger_effect(st.AWAITING_REVIEW, st.REJECTED) is None


def test_operators_cannot_tell_internal_steps_apart():
    inside = {st.OPERATOR_VIEW[s] for s in (st.RUNNING, st.CHECKING, st.AWAITING_REVIEW)}
    assert inside == {"in_progress"}


def test_only_compliance_releases_after_review_and_never_the_operator():
    for (src, dst), roles in st.TRANSITIONS.items():
        if dst == st.RELEASED:
            assert st.OPERATOR not in roles and st.OWNER not in roles

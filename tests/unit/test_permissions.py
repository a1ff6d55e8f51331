"""The permissions table (core/permissions.py): who may act on what, object-level."""
from __future__ import annotations

import pytest

from sandbox.core import permissions as perm
from sandbox.core.errors import Forbidden, NotFound
from sandbox.core.records import User
from sandbox.core.states import COMPLIANCE, OPERATOR, OWNER, SYSTEM

alice = User(name="alice", role=OPERATOR, token_hash="")
bob = User(name="bob", role=OPERATOR, token_hash="")
owner = User(name="owner", role=OWNER, token_hash="")
owner2 = User(name="owner2", role=OWNER, token_hash="")
rev = User(name="rev", role=COMPLIANCE, token_hash="")
admin = User(name="system", role=SYSTEM, token_hash="")


def test_every_action_names_only_known_roles():
    for action, rules in perm.PERMISSIONS.items():
        assert set(rules) <= {OPERATOR, OWNER, COMPLIANCE, SYSTEM}, action


@pytest.mark.parametrize("action", ["policy.apply", "job.approve_run", "consumption.read"])
def test_an_owner_acts_only_on_datasets_its_account_owns(action):
    mine = perm.Subject(dataset_owner="owner")
    assert perm.allowed(owner, action, mine)
    assert not perm.allowed(owner2, action, mine)
    # A dataset with no owner account (registered before accounts existed) is the administrator's.
    assert not perm.allowed(owner, action, perm.Subject(dataset_owner=""))


def test_registering_a_version_needs_the_owning_account_unless_the_dataset_is_new():
    assert perm.allowed(owner2, "dataset.register", perm.Subject(dataset_owner=None))
    assert not perm.allowed(owner2, "dataset.register", perm.Subject(dataset_owner="owner"))
    assert perm.allowed(admin, "dataset.register", perm.Subject(dataset_owner="owner"))


@pytest.mark.parametrize("action", ["job.read", "job.cancel", "release.download"])
def test_an_operator_acts_only_on_its_own_jobs_and_others_look_unknown(action):
    assert perm.allowed(alice, action, perm.Subject(job_operator="alice"))
    with pytest.raises(NotFound, match="no such job"):
        perm.check(bob, action, perm.Subject(job_operator="alice"))


@pytest.mark.parametrize("action", ["review.open", "review.decide"])
def test_a_reviewer_never_reviews_its_own_submission(action):
    assert perm.allowed(rev, action, perm.Subject(job_operator="alice"))
    with pytest.raises(Forbidden):
        perm.check(User(name="alice", role=COMPLIANCE, token_hash=""), action, perm.Subject(job_operator="alice"))


def test_roles_outside_an_actions_row_are_refused():
    with pytest.raises(Forbidden):
        perm.check(owner, "job.submit")
    with pytest.raises(Forbidden):
        perm.check(alice, "metering.read")
    with pytest.raises(Forbidden):
        perm.check(alice, "user.manage")
    assert perm.allowed(admin, "user.manage")


def test_an_operator_reads_only_its_own_balance():
    assert perm.allowed(alice, "budget.read", perm.Subject(operator="alice"))
    assert not perm.allowed(alice, "budget.read", perm.Subject(operator="bob"))
    assert perm.allowed(owner, "budget.read", perm.Subject(operator="bob"))

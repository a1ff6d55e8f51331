"""Who may act on what: one table, object-level, checked in one place (`check`).

Each action maps each role that may take it to the condition on the object: an owner
acts only on datasets its account owns, an operator only on its own jobs, a reviewer
never on a job it submitted. `system` is the server-side administrator (the `sandbox`
admin CLI on the host), never a web user. Operators asking about another operator's job
get NotFound, exactly as for an unknown id, so no answer confirms that a job exists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sandbox.core.errors import Forbidden, NotFound, Text
from sandbox.core.states import COMPLIANCE, OPERATOR, OWNER, SYSTEM


@dataclass(frozen=True)
class Subject:
    """What an action is about: the job, the dataset (its owner account), an operator."""
    job_operator: str | None = None
    dataset_owner: str | None = None
    operator: str | None = None
    proposed_by: str | None = None   # who proposed a policy change that waits for a second person


Rule = Callable[[object, Subject], bool]


def anyone(_user, _subject: Subject) -> bool:
    return True


def submitted_the_job(user, subject: Subject) -> bool:
    return subject.job_operator == user.name


def did_not_submit_the_job(user, subject: Subject) -> bool:
    return subject.job_operator != user.name


def owns_the_dataset(user, subject: Subject) -> bool:
    return bool(subject.dataset_owner) and subject.dataset_owner == user.name


def owns_the_dataset_or_it_is_new(user, subject: Subject) -> bool:
    return subject.dataset_owner in (None, "") or subject.dataset_owner == user.name


def is_themselves(user, subject: Subject) -> bool:
    return subject.operator == user.name


def did_not_propose_the_change(user, subject: Subject) -> bool:
    return bool(subject.proposed_by) and subject.proposed_by != user.name


# action -> {role: condition on the subject}. A role not listed may not take the action.
PERMISSIONS: dict[str, dict[str, Rule]] = {
    "dataset.read":      {OPERATOR: anyone, OWNER: anyone, COMPLIANCE: anyone},
    "dataset.register":  {OWNER: owns_the_dataset_or_it_is_new, SYSTEM: anyone},
    "dataset.report":    {OWNER: owns_the_dataset, COMPLIANCE: anyone, SYSTEM: anyone},
    "dataset.retire":    {OWNER: owns_the_dataset, SYSTEM: anyone},
    "policy.apply":      {OWNER: owns_the_dataset, SYSTEM: anyone},
    "policy.history":    {OWNER: owns_the_dataset, COMPLIANCE: anyone, SYSTEM: anyone},
    "policy.decide":     {COMPLIANCE: did_not_propose_the_change},
    "job.submit":        {OPERATOR: anyone},
    "job.read":          {OPERATOR: submitted_the_job, OWNER: anyone, COMPLIANCE: anyone},
    "job.cancel":        {OPERATOR: submitted_the_job},
    "job.approve_run":   {OWNER: owns_the_dataset},
    "review.queue":      {COMPLIANCE: anyone},
    "review.open":       {COMPLIANCE: did_not_submit_the_job},
    "review.decide":     {COMPLIANCE: did_not_submit_the_job},
    "release.download":  {OPERATOR: submitted_the_job, OWNER: anyone, COMPLIANCE: anyone},
    "budget.read":       {OPERATOR: is_themselves, OWNER: anyone, COMPLIANCE: anyone},
    "consumption.read":  {OWNER: owns_the_dataset, COMPLIANCE: anyone},
    "metering.read":     {OWNER: anyone, COMPLIANCE: anyone},
    "audit.read":        {OWNER: anyone, COMPLIANCE: anyone, SYSTEM: anyone},
    "user.manage":       {SYSTEM: anyone},
}

# Why a refusal happened, in words the actor can act on.
REFUSALS = {
    "dataset.register": Text("only the owner account of a dataset registers its versions"),
    "dataset.report": Text("registration reports are for the dataset's owner account and compliance"),
    "dataset.retire": Text("only the owner account of a dataset retires its versions"),
    "policy.apply": Text("only the owner account of a dataset applies its policy"),
    "policy.history": Text("a policy's history is for the dataset's owner account and compliance"),
    "policy.decide": Text("a second person approves a policy change: compliance, never who proposed it"),
    "job.submit": Text("only operators submit jobs"),
    "job.cancel": Text("only the operator who submitted a job can cancel it"),
    "job.approve_run": Text("only the owner account of the job's dataset approves its runs"),
    "review.queue": Text("only compliance reviewers see the review queue"),
    "review.open": Text("a reviewer can never review their own job"),
    "review.decide": Text("a reviewer can never review their own job"),
    "budget.read": Text("operators see only their own balance"),
    "consumption.read": Text("budget consumption is for compliance and the dataset's owner account"),
    "metering.read": Text("metering is for data owners and compliance"),
    "audit.read": Text("the audit log is for data owners and compliance"),
    "user.manage": Text("users are managed on the server (sandbox user)"),
}

# Operators are never told that another operator's job exists.
HIDDEN_FROM_OPERATORS = frozenset({"job.read", "job.cancel", "release.download"})


def allowed(user, action: str, subject: Subject = Subject()) -> bool:
    rule = PERMISSIONS[action].get(user.role)
    return rule is not None and rule(user, subject)


def check(user, action: str, subject: Subject = Subject()) -> None:
    """Raise Forbidden (or NotFound where existence must stay hidden) unless allowed."""
    if allowed(user, action, subject):
        return
    if user.role == OPERATOR and action in HIDDEN_FROM_OPERATORS:
        raise NotFound("no such job")
    raise Forbidden(REFUSALS.get(action, Text("not allowed")))

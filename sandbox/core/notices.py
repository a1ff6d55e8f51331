"""Notices (站内信): who is told what, and from when.

Pure rules (`notices_for`, `budget_low`, `licence_notices`) and the two places that gather
what they need in the caller's transaction: `record_transition` (called by
core.lifecycle.transition, so every state change is considered once) and `scan_licences`
(periodic, idempotent).

Privacy. An operator learns a job's outcome only through the job view, and only after the
job's fixed `visible_after` (core/jobview.py). So the notice of an outcome is stored with
`visible_at = max(now, visible_after)`: until then it is not listed, not counted, not mailed,
and its text says no more than the job view says afterwards (the visible state). The max
matters only for a decision taken after visible_after, which the job view shows at once.
Budget-low is decided at admission from reservations alone (data-independent); refunds and
other budget movements never notify an operator.

Compliance reviewers get one notice each (fan-out at the time) rather than a role recipient
resolved at read time: each keeps their own read state and mail address with no second table,
and the review queue, not the inbox, is where a reviewer added later finds older work.
"""
from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from fractions import Fraction

from sandbox.core import states as st
from sandbox.core.amounts import exact
from sandbox.core.errors import Text
from sandbox.core.records import Event, Job, Notice

RELEASED, REJECTED, FAILED = "released", "rejected", "failed"
NEEDS_REVIEW, RUN_APPROVAL = "needs-review", "run-approval-needed"
LICENCE_EXPIRING, BUDGET_LOW = "licence-expiring", "budget-low"
POLICY_PROPOSED = "policy-proposed"
KINDS = (RELEASED, REJECTED, FAILED, NEEDS_REVIEW, RUN_APPROVAL, LICENCE_EXPIRING, BUDGET_LOW, POLICY_PROPOSED)
OUTCOMES = {st.RELEASED: RELEASED, st.REJECTED: REJECTED, st.FAILED: FAILED}

LOW_SHARE = Fraction(1, 5)          # budget-low: under 20% of the period allowance is left
LICENCE_WARNING = timedelta(days=30)


def new_notice(recipient: str, kind: str, subject: str, params: dict, visible_at: datetime, dedup_key: str,
               now: datetime) -> Notice:
    # A random id: a counter would order an outcome's notice among the operator's other
    # notices by when the outcome was really decided.
    return Notice(id=secrets.token_hex(8), recipient=recipient, kind=kind, subject=subject, params=params,
                  visible_at=visible_at, dedup_key=dedup_key, created_at=now)


def notices_for(job: Job, to_state: str, now: datetime, *, owner_account: str = "",
                compliance: tuple[str, ...] = ()) -> list[Notice]:
    """What a change of `job` to `to_state` tells whom (job.visible_after as of the change)."""
    about = {"job": job.id, "dataset": job.dataset}
    if to_state in OUTCOMES:
        kind = OUTCOMES[to_state]
        at = now if job.visible_after is None else max(now, job.visible_after)
        return [new_notice(job.operator, kind, job.id, about, at, f"{kind}:{job.id}", now)]
    if to_state == st.AWAITING_REVIEW:
        return [new_notice(name, NEEDS_REVIEW, job.id, about, now, f"{NEEDS_REVIEW}:{job.id}:{job.attempts}", now)
                for name in compliance]
    if to_state == st.AWAITING_APPROVAL and owner_account:
        return [new_notice(owner_account, RUN_APPROVAL, job.id, {**about, "operator": job.operator}, now,
                           f"{RUN_APPROVAL}:{job.id}", now)]
    return []


def budget_low(job: Job, before: Fraction, after: Fraction, allowance, now: datetime) -> list[Notice]:
    """The operator's available period epsilon on the dataset fell under LOW_SHARE of the
    period allowance with this admission (once per crossing, not on every later job)."""
    allowance = exact(allowance)
    threshold = allowance * LOW_SHARE
    if allowance <= 0 or not after < threshold <= before:
        return []
    params = {"dataset": job.dataset, "available": f"{float(after):g}", "allowance": f"{float(allowance):g}"}
    return [new_notice(job.operator, BUDGET_LOW, job.dataset, params, now, f"{BUDGET_LOW}:{job.id}", now)]


def licence_notices(dataset: str, owner_account: str, licences, today: date, now: datetime) -> list[Notice]:
    """One notice per licence and expiry date, to its operator and the dataset's owner account,
    once the licence expires within LICENCE_WARNING (revoked or expired ones: none)."""
    out = []
    for lic in licences:
        if lic.revoked or not today <= lic.expires <= today + LICENCE_WARNING:
            continue
        params = {"dataset": dataset, "operator": lic.operator, "expires": lic.expires.isoformat()}
        key = f"{LICENCE_EXPIRING}:{dataset}:{lic.operator}:{lic.expires.isoformat()}"
        for name in dict.fromkeys(x for x in (lic.operator, owner_account) if x):
            out.append(new_notice(name, LICENCE_EXPIRING, dataset, params, now, key, now))
    return out


def policy_proposed(dataset: str, version: int, proposer: str, compliance: tuple[str, ...],
                    now: datetime) -> list[Notice]:
    """A proposed policy change (policy_changes: second_approval) waits for a second person:
    every active compliance user but the proposer is told once per version."""
    params = {"dataset": dataset, "version": str(version), "proposer": proposer}
    return [new_notice(name, POLICY_PROPOSED, dataset, params, now, f"{POLICY_PROPOSED}:{dataset}:{version}", now)
            for name in compliance if name != proposer]


def message(n: Notice) -> Text:
    """The notice's text (English; the UI and mail translate the template)."""
    p = n.params
    if n.kind == RELEASED:
        return Text("Job {job} on {dataset}: released. Its results are on the job's page.", **p)
    if n.kind == REJECTED:
        return Text("Job {job} on {dataset}: rejected. The job's page says why.", **p)
    if n.kind == FAILED:
        return Text("Job {job} on {dataset}: failed. The job's page says what you can do.", **p)
    if n.kind == NEEDS_REVIEW:
        return Text("Job {job} on {dataset} is waiting for review.", **p)
    if n.kind == RUN_APPROVAL:
        return Text("Job {job} by {operator} on {dataset} is waiting for your approval to run.", **p)
    if n.kind == POLICY_PROPOSED:
        return Text("{proposer} proposed version {version} of the policy of {dataset}; it waits for your decision.",
                    **p)
    if n.kind == LICENCE_EXPIRING:
        return Text("The licence of {operator} for {dataset} expires on {expires}.", **p)
    return Text("Your privacy budget on {dataset} this period is below a fifth of the allowance: "
                "ε {available} of {allowance} left.", **p)


def view(n: Notice) -> dict:
    """What a recipient is shown: never created_at (for an operator's outcome notice, when
    the outcome was really decided), only the time it became visible."""
    return {"id": n.id, "kind": n.kind, "subject": n.subject, "at": n.visible_at.isoformat(),
            "read": n.read_at is not None, "message": message(n), "params": dict(n.params)}


# ---------------------------------------------------------------- in the caller's transaction
def record_transition(tx, job: Job, from_state: str, now: datetime, event: Event) -> None:
    """The notices of the change core.lifecycle.transition just saved, under its event."""
    compliance, owner = (), ""
    if job.state == st.AWAITING_REVIEW:
        compliance = tuple(u.name for u in tx.users(st.COMPLIANCE) if u.active)
    if job.state == st.AWAITING_APPROVAL:
        ds = tx.dataset(job.dataset)
        owner = ds.owner_account if ds is not None else ""
    found = notices_for(job, job.state, now, owner_account=owner, compliance=compliance)
    if from_state == st.SUBMITTED and job.state in (st.QUEUED, st.AWAITING_APPROVAL) and job.epsilon > 0:
        found += _budget_low_at_admission(tx, job, now)
    for notice in found:
        tx.add_notice(notice, event)


def _budget_low_at_admission(tx, job: Job, now: datetime) -> list[Notice]:
    from sandbox.core import ledger as led
    from sandbox.core import lookups
    if job.policy_version_id is None or tx.policy_version(job.policy_version_id) is None:
        return []
    budget = lookups.job_policy(tx, job).budget
    entries = lookups.ledger_entries(tx, job.dataset, job.operator)
    before = led.balance([e for e in entries if e.job_id != job.id], budget, now).period_available
    after = led.balance(entries, budget, now).period_available
    return budget_low(job, before, after, budget.epsilon_per_period, now)


def scan_licences(tx, now: datetime) -> int:
    """Add the licence-expiring notices due under each dataset's current policy; idempotent
    (dedup_key). Returns how many were new."""
    from sandbox.core import lookups
    added = 0
    for ds in tx.datasets():
        if tx.latest_policy(ds.name) is None:
            continue
        _, policy = lookups.current_policy(tx, ds.name)
        for notice in licence_notices(ds.name, ds.owner_account, policy.licences, now.date(), now):
            event = Event("system", "notice.licence_expiring", ds.name,
                          {"operator": notice.params["operator"], "expires": notice.params["expires"],
                           "recipient": notice.recipient})
            added += bool(tx.add_notice(notice, event))
    return added

"""Admission: may this operator run this job on this dataset now?

`decide` is a pure function of the policy, the job request, the operator's budget
balance and today's date. It returns every reason for a denial at once, so an
operator can fix everything in one round. Reasons quote only the policy, the request
and budget amounts, never anything computed from data, so they are safe to show.
The caller reserves the budget (ledger.LedgerEntry.reserve) only when admitted.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from .ledger import Balance, LedgerError, exact
from .policy import DP_MODES, Policy


@dataclass(frozen=True)
class JobRequest:
    operator: str
    dataset: str
    mode: str            # query | program | reviewed
    purpose: str         # the 授权场景 the operator states for this job
    epsilon: float       # declared privacy cost, fixed before the job runs
    delta: float = 0.0


@dataclass(frozen=True)
class Decision:
    admitted: bool
    reasons: tuple[str, ...]       # empty when admitted
    needs_owner_approval: bool     # run_approval: owner -> wait for the owner before running
    reviewers_required: int        # reviewers before release (0, 1 or 2)

    def to_dict(self) -> dict:
        return {"admitted": self.admitted, "reasons": list(self.reasons),
                "needs_owner_approval": self.needs_owner_approval,
                "reviewers_required": self.reviewers_required}


def decide(policy: Policy, job: JobRequest, balance: Balance, today: date) -> Decision:
    """Admit or deny `job`, listing every reason for a denial."""
    reasons: list[str] = []
    ds = policy.dataset
    if job.dataset != ds:
        reasons.append(f"The job is for dataset '{job.dataset}' but this policy governs '{ds}'.")

    licence = policy.licence(job.operator)
    if licence is None:
        reasons.append(f"Operator '{job.operator}' holds no licence for '{ds}'; "
                       "ask the data owner for one.")
    else:
        if licence.revoked:
            reasons.append(f"The licence of operator '{job.operator}' for '{ds}' has been revoked; "
                           "contact the data owner.")
        if licence.expires < today:
            reasons.append(f"The licence of operator '{job.operator}' for '{ds}' expired on "
                           f"{licence.expires.isoformat()}; ask the data owner to renew it.")
        if job.purpose not in licence.purposes:
            reasons.append(f"Purpose '{job.purpose}' is not licensed for operator '{job.operator}' on "
                           f"'{ds}'; licensed purposes: {', '.join(sorted(licence.purposes))}.")

    if job.mode not in policy.modes:
        reasons.append(f"Mode '{job.mode}' is not allowed on '{ds}'; allowed modes: "
                       f"{', '.join(sorted(policy.modes))}.")

    reasons.extend(_budget_reasons(policy, job, balance))
    return Decision(admitted=not reasons, reasons=tuple(reasons),
                    needs_owner_approval=policy.run_approval == "owner",
                    reviewers_required=policy.reviewers_for(job.mode))


def _budget_reasons(policy: Policy, job: JobRequest, balance: Balance) -> list[str]:
    try:
        eps, delta = exact(job.epsilon), exact(job.delta)
    except LedgerError:
        return ["The privacy cost must be finite numbers: epsilon >= 0 and 0 <= delta < 1."]
    if eps < 0 or not 0 <= delta < 1:
        return ["The privacy cost must be finite numbers: epsilon >= 0 and 0 <= delta < 1."]
    reasons = []
    if job.mode in DP_MODES and eps == 0:
        # A DP release with epsilon 0 would carry no signal; a zero cost is a spec mistake.
        reasons.append(f"Mode '{job.mode}' is differentially private and needs a privacy cost "
                       "epsilon > 0.")
    refresh = policy.budget.refresh
    if refresh == "none":
        period = "the budget (which does not refresh)"
    else:
        until = f"; it refreshes on {balance.period_end.date().isoformat()}" if balance.period_end else ""
        period = f"the current {refresh} period{until}"
    for name, cost, period_left, lifetime_left, lifetime_cap in (
            ("epsilon", eps, balance.period_available, balance.lifetime_available,
             policy.budget.lifetime_epsilon),
            ("delta", delta, balance.period_delta_available, balance.lifetime_delta_available,
             policy.budget.lifetime_delta)):
        if cost > period_left:
            reasons.append(f"Privacy cost {name} {_fmt(cost)} exceeds the {_fmt(period_left)} "
                           f"{name} available in {period}.")
        if cost > lifetime_left:
            reasons.append(f"Privacy cost {name} {_fmt(cost)} exceeds the {_fmt(lifetime_left)} "
                           f"{name} left of the lifetime cap {_fmt(lifetime_cap)}, which never refreshes.")
    return reasons


def _fmt(x) -> str:
    return f"{float(x):.10g}"

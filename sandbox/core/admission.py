"""Admission: may this operator run this job on this dataset now?

`decide` is a pure function of the policy, the job request, the operator's budget
balance and today's date. It returns every reason for a denial at once, so an
operator can fix everything in one round. Reasons quote only the policy, the request
and budget amounts, never anything computed from data, so they are safe to show.
Each reason is an errors.Text: English as a str, translatable by the web UI.
The caller reserves the budget (ledger.LedgerEntry.reserve) only when admitted.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sandbox.core.errors import Text
from sandbox.core.ledger import Balance, LedgerError, exact
from sandbox.core.policy.model import DP_MODES, Policy


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
        reasons.append(Text("The job is for dataset '{job_dataset}' but this policy governs '{dataset}'.",
                            job_dataset=job.dataset, dataset=ds))

    licence = policy.licence(job.operator)
    if licence is None:
        reasons.append(Text("Operator '{operator}' holds no licence for '{dataset}'; ask the data owner for one.",
                            operator=job.operator, dataset=ds))
    else:
        if licence.revoked:
            reasons.append(Text("The licence of operator '{operator}' for '{dataset}' has been revoked; "
                                "contact the data owner.", operator=job.operator, dataset=ds))
        if licence.expires < today:
            reasons.append(Text("The licence of operator '{operator}' for '{dataset}' expired on {date}; "
                                "ask the data owner to renew it.", operator=job.operator, dataset=ds,
                                date=licence.expires.isoformat()))
        if job.purpose not in licence.purposes:
            reasons.append(Text("Purpose '{purpose}' is not licensed for operator '{operator}' on '{dataset}'; "
                                "licensed purposes: {purposes}.", purpose=job.purpose, operator=job.operator,
                                dataset=ds, purposes=", ".join(sorted(licence.purposes))))

    if job.mode not in policy.modes:
        reasons.append(Text("Mode '{mode}' is not allowed on '{dataset}'; allowed modes: {modes}.", mode=job.mode,
                            dataset=ds, modes=", ".join(sorted(policy.modes))))

    reasons.extend(_budget_reasons(policy, job, balance))
    return Decision(admitted=not reasons, reasons=tuple(reasons),
                    needs_owner_approval=policy.run_approval == "owner",
                    reviewers_required=policy.reviewers_for(job.mode))


def _budget_reasons(policy: Policy, job: JobRequest, balance: Balance) -> list[str]:
    try:
        eps, delta = exact(job.epsilon), exact(job.delta)
    except LedgerError:
        return [Text("The privacy cost must be finite numbers: epsilon >= 0 and 0 <= delta < 1.")]
    if eps < 0 or not 0 <= delta < 1:
        return [Text("The privacy cost must be finite numbers: epsilon >= 0 and 0 <= delta < 1.")]
    reasons = []
    if job.mode in DP_MODES and eps == 0:
        # A DP release with epsilon 0 would carry no signal; a zero cost is a spec mistake.
        reasons.append(Text("Mode '{mode}' is differentially private and needs a privacy cost epsilon > 0.",
                            mode=job.mode))
    refresh = policy.budget.refresh
    if refresh == "none":
        period = Text("the budget (which does not refresh)")
    else:
        every = {"daily": Text("daily"), "monthly": Text("monthly"), "quarterly": Text("quarterly"),
                 "yearly": Text("yearly")}.get(refresh, refresh)
        if balance.period_end:
            period = Text("the current {refresh} period; it refreshes on {date}", refresh=every,
                          date=balance.period_end.date().isoformat())
        else:
            period = Text("the current {refresh} period", refresh=every)
    for name, cost, period_left, lifetime_left, lifetime_cap in (
            ("epsilon", eps, balance.period_available, balance.lifetime_available,
             policy.budget.lifetime_epsilon),
            ("delta", delta, balance.period_delta_available, balance.lifetime_delta_available,
             policy.budget.lifetime_delta)):
        if cost > period_left:
            reasons.append(Text("Privacy cost {name} {cost} exceeds the {left} {name} available in {period}.",
                                name=name, cost=_fmt(cost), left=_fmt(period_left), period=period))
        if cost > lifetime_left:
            reasons.append(Text("Privacy cost {name} {cost} exceeds the {left} {name} left of the lifetime cap "
                                "{cap}, which never refreshes.", name=name, cost=_fmt(cost),
                                left=_fmt(lifetime_left), cap=_fmt(lifetime_cap)))
    return reasons


def _fmt(x) -> str:
    return f"{float(x):.10g}"

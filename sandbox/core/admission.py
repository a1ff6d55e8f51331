"""Admission: may this operator run this job on this dataset now?

`decide` is a pure function of the policy, the job request, the operator's budget
balance, the dataset-wide balance (every operator's entries, when the policy caps them)
and today's date. It returns every reason for a denial at once, so an operator can fix
everything in one round. Reasons quote only the policy, the request and the operator's
own budget amounts, never anything computed from data, and never what other operators
spent: a dataset-wide denial says that the cap blocks this job, not how much is left.
Each reason is an errors.Text: English as a str, translatable by the web UI.
The caller reserves the budget (ledger.LedgerEntry.reserve) only when admitted, in the
transaction that holds the dataset's budget lock (Tx.lock_budget), so the checks here
and the reservation are one atomic step for every operator of the dataset.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sandbox.core.errors import Text
from sandbox.core.ledger import Balance, DatasetBalance, LedgerError, exact
from sandbox.core.policy.model import DP_MODES, Policy


@dataclass(frozen=True)
class JobRequest:
    operator: str
    dataset: str
    mode: str            # query | program | reviewed
    purpose: str         # the 授权场景 the operator states for this job
    epsilon: float       # declared privacy cost, fixed before the job runs
    delta: float = 0.0
    # The epsilon of each query (query mode), checked against the policy's floor per
    # query; empty means the job is one query of cost `epsilon` (a program job).
    query_epsilons: tuple[float, ...] = ()


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


def decide(policy: Policy, job: JobRequest, balance: Balance, today: date,
           dataset_balance: DatasetBalance | None = None) -> Decision:
    """Admit or deny `job`, listing every reason for a denial. `dataset_balance` is
    required when the policy sets a dataset-wide cap (ledger.dataset_balance)."""
    if policy.budget.dataset_capped and dataset_balance is None:
        raise ValueError("this policy caps the whole dataset: pass the dataset-wide balance")
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

    reasons.extend(_budget_reasons(policy, job, balance, dataset_balance))
    return Decision(admitted=not reasons, reasons=tuple(reasons),
                    needs_owner_approval=policy.run_approval == "owner",
                    reviewers_required=policy.reviewers_for(job.mode))


def _budget_reasons(policy: Policy, job: JobRequest, balance: Balance,
                    dataset_balance: DatasetBalance | None) -> list[str]:
    period = _period_phrase(policy.budget.refresh, balance)
    reasons = _quota_reasons(policy, job, balance, period)
    try:
        eps, delta = exact(job.epsilon), exact(job.delta)
        parts = [exact(e) for e in job.query_epsilons] or [eps]
    except LedgerError:
        return reasons + [Text("The privacy cost must be finite numbers: epsilon >= 0 and 0 <= delta < 1.")]
    if eps < 0 or not 0 <= delta < 1 or min(parts) < 0:
        return reasons + [Text("The privacy cost must be finite numbers: epsilon >= 0 and 0 <= delta < 1.")]
    if job.mode in DP_MODES and eps == 0:
        # A DP release with epsilon 0 would carry no signal; a zero cost is a spec mistake.
        reasons.append(Text("Mode '{mode}' is differentially private and needs a privacy cost epsilon > 0.",
                            mode=job.mode))
    floor = exact(policy.budget.min_epsilon_per_query)
    below = [e for e in parts if e < floor]
    if job.mode in DP_MODES and below:
        # Many near-free queries would each still carry a bit through any side channel.
        reasons.append(Text("Each query on '{dataset}' must cost at least epsilon {floor} (the policy's floor per "
                            "query; a program job counts as one query); {n} of this job's queries cost less, the "
                            "smallest {cost}.", dataset=policy.dataset, floor=_fmt(floor), n=len(below),
                            cost=_fmt(min(below))))
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
    if dataset_balance is not None:
        reasons.extend(_dataset_reasons(policy, eps, delta, dataset_balance, period))
    return reasons


def _dataset_reasons(policy: Policy, eps, delta, ds: DatasetBalance, period) -> list[str]:
    # No amounts: what is left dataset-wide is a function of other operators' spending.
    reasons = []
    for name, cost, period_left, lifetime_left in (
            ("epsilon", eps, ds.period_available, ds.lifetime_available),
            ("delta", delta, ds.period_delta_available, ds.lifetime_delta_available)):
        if period_left is not None and cost > period_left:
            reasons.append(Text("Privacy cost {name} {cost} does not fit in what is left of the dataset-wide cap on "
                                "'{dataset}', shared by every licensed operator, in {period}.", name=name,
                                cost=_fmt(cost), dataset=policy.dataset, period=period))
        if lifetime_left is not None and cost > lifetime_left:
            reasons.append(Text("Privacy cost {name} {cost} does not fit in what is left of the dataset-wide lifetime "
                                "cap on '{dataset}', shared by every licensed operator, which never refreshes.",
                                name=name, cost=_fmt(cost), dataset=policy.dataset))
    return reasons


def _quota_reasons(policy: Policy, job: JobRequest, balance: Balance, period) -> list[str]:
    quota = policy.budget.jobs_per_period
    if quota is None or balance.period_jobs < quota:
        return []
    return [Text("Operator '{operator}' has had {quota} jobs admitted on '{dataset}', the policy's quota for "
                 "{period}.", operator=job.operator, quota=quota, dataset=policy.dataset, period=period)]


def _period_phrase(refresh: str, balance: Balance):
    if refresh == "none":
        return Text("the budget (which does not refresh)")
    every = {"daily": Text("daily"), "monthly": Text("monthly"), "quarterly": Text("quarterly"),
             "yearly": Text("yearly")}.get(refresh, refresh)
    if balance.period_end:
        return Text("the current {refresh} period; it refreshes on {date}", refresh=every,
                    date=balance.period_end.date().isoformat())
    return Text("the current {refresh} period", refresh=every)


def _fmt(x) -> str:
    return f"{float(x):.10g}"

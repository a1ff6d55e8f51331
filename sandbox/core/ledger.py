"""The privacy-budget ledger: append-only entries; balances are derived, never stored.

Entries, per job:
  reserve  at admission, for the job's full declared cost (epsilon, delta);
  charge   once the job has touched data, even if it then failed: the data was read,
           so the privacy loss happened;
  release  when the job is refused or cancelled before it touched data.
The charged amount is the amount reserved at admission, never something computed
from data, so the ledger itself cannot leak through its numbers.

Composition. Budgets compose by basic (sequential) composition: running mechanisms
that are (eps_i, delta_i)-DP on the same data is (sum eps_i, sum delta_i)-DP. So
spending is plain addition, per period and over the lifetime. Pure-DP (Laplace) jobs
have delta = 0. Basic composition is loose (advanced composition or zCDP would allow
more queries), but it is simple, never under-counts, and an owner can check it by hand.

Periods. The per-period allowance refreshes at UTC calendar boundaries (daily,
monthly, quarterly, yearly; "none" = one period forever). The lifetime cap never
refreshes: with refresh alone, an operator could repeat a query every period and
average the noise away. An entry counts in the period of its job's RESERVATION:
admission checked the reservation against that period's budget, so a job admitted
on 31 January and charged on 1 February spends January's budget, and February's
allowance is not reduced by a decision taken in January.

Invariants (validate_sequence enforces the first three; the tests check all):
  1. a job has at most one reserve;
  2. a job has at most one resolution, charge XOR release, with the reserved amounts,
     never timed before its reserve;
  3. a resolution requires a prior reserve (in log order);
  4. spent + reserved == the sum of reservations not released, per period and lifetime;
     outstanding reservations count against both the period and the lifetime;
  5. if every reserve was admitted only when `can_reserve` held on the balance of the
     entries before it, then no period and not the lifetime is ever overspent.

Arithmetic is exact (fractions.Fraction, from each float's shortest decimal form), so
ten jobs of 0.1 fit exactly in a budget of 1.0. Fixed-point micro-units were rejected
because they round a tiny epsilon to zero, which would make such queries free. A job's
charge made of several parts (queries) is `amounts.sum_rounded_up`: the smallest float
that reads as at least their exact sum, so composition never under-counts by an ulp.

Dataset-wide caps. A person's total privacy loss on a dataset is the sum over every
licensed operator, so a policy may also cap all operators' entries together
(`dataset_balance`), per period and over the lifetime, on the same calendar.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from typing import Iterable

# Reading amounts lives apart (no YAML), so the box code can share it.
from sandbox.core.amounts import LedgerError, exact
from sandbox.core.errors import Text
from sandbox.core.policy.model import REFRESH_RULES, Budget

KINDS = ("reserve", "charge", "release")
ZERO = Fraction(0)


class LedgerCorrupt(Exception):
    """A dataset's stored ledger breaks its invariants (edited in the database): balances
    and admissions on it are refused, never computed from it. `detail` names the entry,
    for administrators' logs; str(e) is what a user of the dataset may read."""

    def __init__(self, dataset: str, detail: str):
        super().__init__(Text("The privacy-budget ledger of dataset {dataset} fails its integrity check; balances "
                              "and submissions on it are refused until an administrator repairs it.", dataset=dataset))
        self.dataset, self.detail = dataset, detail


def as_utc(at: datetime) -> datetime:
    """Aware datetimes are converted to UTC; naive ones are taken to be UTC already
    (the store keeps UTC), so periods never depend on the server's time zone."""
    if not isinstance(at, datetime):
        raise LedgerError(f"time must be a datetime, got {type(at).__name__}")
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


@dataclass(frozen=True)
class LedgerEntry:
    kind: str            # reserve | charge | release
    job_id: str
    epsilon: float
    delta: float
    at: datetime         # normalised to UTC

    def __post_init__(self):
        if self.kind not in KINDS:
            raise LedgerError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not isinstance(self.job_id, str) or not self.job_id:
            raise LedgerError("job_id must be a non-empty string")
        if exact(self.epsilon) < 0:
            raise LedgerError("epsilon must be >= 0")
        if not ZERO <= exact(self.delta) < 1:
            raise LedgerError("delta must be in [0, 1)")
        object.__setattr__(self, "at", as_utc(self.at))

    @classmethod
    def reserve(cls, job_id: str, epsilon: float, delta: float, at: datetime) -> "LedgerEntry":
        return cls("reserve", job_id, epsilon, delta, at)

    def charge(self, at: datetime) -> "LedgerEntry":
        """The charge for this reservation: same job, same amounts."""
        return self._resolve("charge", at)

    def release(self, at: datetime) -> "LedgerEntry":
        """The release of this reservation: same job, same amounts."""
        return self._resolve("release", at)

    def _resolve(self, kind: str, at: datetime) -> "LedgerEntry":
        if self.kind != "reserve":
            raise LedgerError(f"only a reserve entry can be resolved, this is a {self.kind}")
        return LedgerEntry(kind, self.job_id, self.epsilon, self.delta, at)


@dataclass(frozen=True)
class _Job:
    reserve: LedgerEntry
    resolution: str | None = None   # None (outstanding) | charge | release


def _replay(entries: Iterable[LedgerEntry]) -> dict[str, _Job]:
    jobs: dict[str, _Job] = {}
    for i, e in enumerate(entries):
        if not isinstance(e, LedgerEntry):
            raise LedgerError(f"entry {i} is not a LedgerEntry")
        job = jobs.get(e.job_id)
        if e.kind == "reserve":
            if job is not None:
                raise LedgerError(f"entry {i}: job {e.job_id} is reserved twice")
            jobs[e.job_id] = _Job(e)
            continue
        if job is None:
            raise LedgerError(f"entry {i}: {e.kind} of job {e.job_id} without a prior reserve")
        if job.resolution is not None:
            raise LedgerError(f"entry {i}: {e.kind} of job {e.job_id} after its {job.resolution}")
        r = job.reserve
        if exact(e.epsilon) != exact(r.epsilon) or exact(e.delta) != exact(r.delta):
            raise LedgerError(f"entry {i}: {e.kind} of job {e.job_id} differs from the reserved amount")
        if e.at < r.at:
            raise LedgerError(f"entry {i}: {e.kind} of job {e.job_id} is timed before its reserve")
        jobs[e.job_id] = _Job(r, e.kind)
    return jobs


def validate_sequence(entries: Iterable[LedgerEntry]) -> None:
    """Raise LedgerError if the entries, in log order, break invariants 1-3."""
    _replay(entries)


def job_state(entries: Iterable[LedgerEntry], job_id: str) -> str | None:
    """None (no reservation), 'reserved' (outstanding), 'charged' or 'released'."""
    job = _replay(entries).get(job_id)
    if job is None:
        return None
    return {None: "reserved", "charge": "charged", "release": "released"}[job.resolution]


def period_start(refresh: str, at: datetime) -> datetime | None:
    """Start (UTC) of the budget period containing `at`; None for refresh 'none'."""
    if refresh not in REFRESH_RULES:
        raise LedgerError(f"refresh must be one of {', '.join(REFRESH_RULES)}")
    at = as_utc(at)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if refresh == "none":
        return None
    if refresh == "daily":
        return day
    if refresh == "monthly":
        return day.replace(day=1)
    if refresh == "quarterly":
        return day.replace(month=(at.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


def next_period_start(refresh: str, at: datetime) -> datetime | None:
    """When the period containing `at` ends and the allowance refreshes; None if never."""
    start = period_start(refresh, at)
    if start is None:
        return None
    if refresh == "daily":
        return datetime.fromordinal(start.toordinal() + 1).replace(tzinfo=timezone.utc)
    months = {"monthly": 1, "quarterly": 3, "yearly": 12}[refresh]
    index = start.year * 12 + start.month - 1 + months
    return start.replace(year=index // 12, month=index % 12 + 1)


@dataclass(frozen=True)
class Balance:
    """One operator's budget on one dataset at `now`, as exact Fractions. "reserved" is
    outstanding reservations (admitted, neither charged nor released). Available
    amounts are cap - spent - reserved, shown as 0 if an owner lowered a cap below
    what was already spent. `period_jobs` counts this period's jobs that were admitted
    and not released (the policy's job quota); `period_jobs_available` is None without
    a quota."""
    period_start: datetime | None
    period_end: datetime | None
    period_spent: Fraction
    period_reserved: Fraction
    period_available: Fraction
    lifetime_spent: Fraction
    lifetime_reserved: Fraction
    lifetime_available: Fraction
    period_delta_spent: Fraction = ZERO
    period_delta_reserved: Fraction = ZERO
    period_delta_available: Fraction = ZERO
    lifetime_delta_spent: Fraction = ZERO
    lifetime_delta_reserved: Fraction = ZERO
    lifetime_delta_available: Fraction = ZERO
    period_jobs: int = 0
    period_jobs_available: int | None = None

    @property
    def epsilon_available(self) -> Fraction:
        return min(self.period_available, self.lifetime_available)

    @property
    def delta_available(self) -> Fraction:
        return min(self.period_delta_available, self.lifetime_delta_available)

    def to_dict(self) -> dict:
        out = {name: _plain(getattr(self, name)) for name in self.__dataclass_fields__}
        out["epsilon_available"] = float(self.epsilon_available)
        out["delta_available"] = float(self.delta_available)
        return out


@dataclass(frozen=True)
class DatasetBalance:
    """Every operator's entries on one dataset together, against the policy's dataset-wide
    caps. An available amount is None where the policy sets no such cap. Only owners and
    compliance see these numbers: they are a function of other operators' spending."""
    period_start: datetime | None
    period_end: datetime | None
    period_spent: Fraction
    period_reserved: Fraction
    period_available: Fraction | None
    lifetime_spent: Fraction
    lifetime_reserved: Fraction
    lifetime_available: Fraction | None
    period_delta_spent: Fraction = ZERO
    period_delta_reserved: Fraction = ZERO
    period_delta_available: Fraction | None = None
    lifetime_delta_spent: Fraction = ZERO
    lifetime_delta_reserved: Fraction = ZERO
    lifetime_delta_available: Fraction | None = None

    @property
    def capped(self) -> bool:
        return any(v is not None for v in (self.period_available, self.lifetime_available,
                                           self.period_delta_available, self.lifetime_delta_available))

    @property
    def epsilon_available(self) -> Fraction | None:
        return _least(self.period_available, self.lifetime_available)

    @property
    def delta_available(self) -> Fraction | None:
        return _least(self.period_delta_available, self.lifetime_delta_available)

    def fits(self, epsilon, delta=0.0) -> bool:
        """True if (epsilon, delta) fits under every dataset-wide cap; fails closed."""
        amounts = _cost(epsilon, delta)
        if amounts is None:
            return False
        eps, dlt = amounts
        return all(left is None or cost <= left for cost, left in
                   ((eps, self.epsilon_available), (dlt, self.delta_available)))

    def blocks(self, floor=0.0) -> bool:
        """Whether the dataset-wide cap leaves no room for a DP job: less epsilon than the
        policy's floor per query, or none at all. A fixed threshold, so this one bit can be
        shown to an operator without letting them measure what others spent (see
        `for_operator`)."""
        left = self.epsilon_available
        return left is not None and (left <= 0 or left < exact(floor))

    def for_operator(self, floor=0.0) -> "DatasetBalance":
        """What an operator's dry run may be judged against: each cap either blocks every DP
        job (0 left) or is shown as absent; spending is zeroed. Judging a dry run on the true
        remainder would let an operator bisect other operators' spending for free."""
        def coarse(left, threshold):
            return None if left is None or (left > 0 and left >= threshold) else ZERO
        f = exact(floor)
        return DatasetBalance(
            period_start=self.period_start, period_end=self.period_end,
            period_spent=ZERO, period_reserved=ZERO, period_available=coarse(self.period_available, f),
            lifetime_spent=ZERO, lifetime_reserved=ZERO, lifetime_available=coarse(self.lifetime_available, f),
            period_delta_available=coarse(self.period_delta_available, ZERO),
            lifetime_delta_available=coarse(self.lifetime_delta_available, ZERO))

    def to_dict(self) -> dict:
        out = {name: _plain(getattr(self, name)) for name in self.__dataclass_fields__}
        out["epsilon_available"] = _plain(self.epsilon_available)
        out["delta_available"] = _plain(self.delta_available)
        out["capped"] = self.capped
        return out


def _least(*amounts):
    capped = [a for a in amounts if a is not None]
    return min(capped) if capped else None


def _plain(v):
    if isinstance(v, datetime):
        return v.isoformat()
    if v is None or isinstance(v, int):  # job counts stay integers
        return v
    return float(v)


def _sums(entries: Iterable[LedgerEntry], refresh: str, now: datetime) -> dict:
    """Spent ("s") and reserved ("r") epsilon and delta ("d"), in the period of `now`
    ("p") and over the lifetime ("l"), plus "jobs": the period's jobs not released."""
    current = period_start(refresh, now)
    sums = {k: ZERO for k in ("ps", "pr", "ls", "lr", "dps", "dpr", "dls", "dlr")}
    sums["jobs"] = 0
    for job in _replay(entries).values():
        if job.resolution == "release":
            continue
        eps, delta = exact(job.reserve.epsilon), exact(job.reserve.delta)
        kind = "s" if job.resolution == "charge" else "r"
        sums["l" + kind] += eps
        sums["dl" + kind] += delta
        if period_start(refresh, job.reserve.at) == current:
            sums["p" + kind] += eps
            sums["dp" + kind] += delta
            sums["jobs"] += 1
    return sums


def _cost(epsilon, delta) -> tuple[Fraction, Fraction] | None:
    """A cost as exact amounts, or None when it can never fit (negative, infinite, not a number)."""
    try:
        eps, dlt = exact(epsilon), exact(delta)
    except LedgerError:
        return None
    return None if eps < 0 or dlt < 0 else (eps, dlt)


def _left(cap, spent, reserved):
    return None if cap is None else max(ZERO, exact(cap) - spent - reserved)


def _fields(sums: dict, refresh: str, now: datetime, eps_period, eps_life, delta_period, delta_life) -> dict:
    """The fields Balance and DatasetBalance share, against the given caps."""
    return dict(
        period_start=period_start(refresh, now), period_end=next_period_start(refresh, now),
        period_spent=sums["ps"], period_reserved=sums["pr"],
        period_available=_left(eps_period, sums["ps"], sums["pr"]),
        lifetime_spent=sums["ls"], lifetime_reserved=sums["lr"],
        lifetime_available=_left(eps_life, sums["ls"], sums["lr"]),
        period_delta_spent=sums["dps"], period_delta_reserved=sums["dpr"],
        period_delta_available=_left(delta_period, sums["dps"], sums["dpr"]),
        lifetime_delta_spent=sums["dls"], lifetime_delta_reserved=sums["dlr"],
        lifetime_delta_available=_left(delta_life, sums["dls"], sums["dlr"]))


def balance(entries: Iterable[LedgerEntry], budget: Budget, now: datetime) -> Balance:
    """Derive the balance at `now` from all of one operator's entries on one dataset."""
    sums = _sums(entries, budget.refresh, now)
    quota = budget.jobs_per_period
    return Balance(**_fields(sums, budget.refresh, now, budget.epsilon_per_period, budget.lifetime_epsilon,
                             budget.delta_per_period, budget.lifetime_delta),
                   period_jobs=sums["jobs"],
                   period_jobs_available=None if quota is None else max(0, quota - sums["jobs"]))


def dataset_balance(entries: Iterable[LedgerEntry], budget: Budget, now: datetime) -> DatasetBalance:
    """Derive the dataset-wide balance at `now` from every operator's entries on one dataset,
    against the budget's dataset_* caps (None where the policy sets none)."""
    sums = _sums(entries, budget.refresh, now)
    return DatasetBalance(**_fields(sums, budget.refresh, now, budget.dataset_epsilon_per_period,
                                    budget.dataset_lifetime_epsilon, budget.dataset_delta_per_period,
                                    budget.dataset_lifetime_delta))


def can_reserve(balance: Balance, epsilon, delta=0.0, dataset: DatasetBalance | None = None) -> bool:
    """True if (epsilon, delta) fits in both the period and the lifetime allowance, and
    under the dataset-wide caps when `dataset` is given. Fails closed: a negative,
    infinite or non-numeric amount never fits."""
    amounts = _cost(epsilon, delta)
    if amounts is None:
        return False
    eps, dlt = amounts
    if dataset is not None and not dataset.fits(eps, dlt):
        return False
    return eps <= balance.epsilon_available and dlt <= balance.delta_available

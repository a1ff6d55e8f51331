"""Budget ledger: exact arithmetic, periods, lifetime cap, and sequence invariants."""
from datetime import datetime, timedelta, timezone
from fractions import Fraction

import math

import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule

from sandbox.core.amounts import sum_rounded_up
from sandbox.core.ledger import (LedgerEntry, LedgerError, balance, can_reserve, dataset_balance, exact, job_state,
    next_period_start, period_start, validate_sequence)
from sandbox.core.policy.model import Budget

UTC = timezone.utc
JAN = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
MONTHLY = Budget(epsilon_per_period=5.0, refresh="monthly", lifetime_epsilon=12.0)


def at(y, m, d, h=0):
    return datetime(y, m, d, h, tzinfo=UTC)


def admit(entries, budget, job_id, eps, when, delta=0.0):
    """Reserve only if can_reserve holds, as admission does. Returns True if reserved."""
    if not can_reserve(balance(entries, budget, when), eps, delta):
        return False
    entries.append(LedgerEntry.reserve(job_id, eps, delta, when))
    return True


# --- exact arithmetic ------------------------------------------------------------------

def test_budget_of_one_admits_exactly_ten_jobs_of_a_tenth():
    budget = Budget(epsilon_per_period=1.0, refresh="none", lifetime_epsilon=1.0)
    entries = []
    admitted = [admit(entries, budget, f"j{i}", 0.1, JAN) for i in range(11)]
    assert admitted == [True] * 10 + [False]
    b = balance(entries, budget, JAN)
    assert b.period_reserved == 1 and b.period_available == 0


def test_ten_charged_tenths_spend_exactly_one():
    budget = Budget(epsilon_per_period=1.0, refresh="none", lifetime_epsilon=1.0)
    entries = []
    for i in range(10):
        r = LedgerEntry.reserve(f"j{i}", 0.1, 0.0, JAN)
        entries += [r, r.charge(JAN)]
    b = balance(entries, budget, JAN)
    assert b.lifetime_spent == Fraction(1) and b.lifetime_available == 0
    assert not can_reserve(b, 1e-12)


def test_floats_are_read_by_their_shortest_decimal_form():
    assert exact(0.1) == Fraction(1, 10)
    assert exact(1e-6) == Fraction(1, 10**6)
    assert exact(3) == 3
    with pytest.raises(LedgerError):
        exact(float("nan"))
    with pytest.raises(LedgerError):
        exact(True)


def test_a_tiny_epsilon_is_not_rounded_to_free():
    budget = Budget(epsilon_per_period=1e-9, refresh="none", lifetime_epsilon=1e-9)
    entries = [LedgerEntry.reserve("j", 1e-9, 0.0, JAN)]
    assert not can_reserve(balance(entries, budget, JAN), 1e-12)


# --- periods ---------------------------------------------------------------------------

@pytest.mark.parametrize("refresh,when,start,end", [
    ("daily", at(2025, 3, 31, 23), at(2025, 3, 31), at(2025, 4, 1)),
    ("monthly", at(2025, 1, 31, 23), at(2025, 1, 1), at(2025, 2, 1)),
    ("monthly", at(2024, 12, 5), at(2024, 12, 1), at(2025, 1, 1)),
    ("quarterly", at(2025, 5, 20), at(2025, 4, 1), at(2025, 7, 1)),
    ("quarterly", at(2025, 12, 31), at(2025, 10, 1), at(2026, 1, 1)),
    ("yearly", at(2025, 7, 4), at(2025, 1, 1), at(2026, 1, 1)),
])
def test_period_boundaries_are_utc_calendar_boundaries(refresh, when, start, end):
    assert period_start(refresh, when) == start
    assert next_period_start(refresh, when) == end


def test_refresh_none_is_one_period_forever():
    assert period_start("none", JAN) is None and next_period_start("none", JAN) is None


def test_periods_are_computed_in_utc_whatever_the_input_zone():
    beijing = timezone(timedelta(hours=8))
    # 1 Feb 03:00 in Beijing is still 31 Jan in UTC
    assert period_start("monthly", datetime(2025, 2, 1, 3, tzinfo=beijing)) == at(2025, 1, 1)
    assert period_start("monthly", datetime(2025, 2, 1, 3)) == at(2025, 2, 1)  # naive = UTC


def test_allowance_refreshes_at_the_month_boundary():
    entries = []
    assert admit(entries, MONTHLY, "a", 5.0, at(2025, 1, 31, 23))
    assert not admit(entries, MONTHLY, "b", 0.5, at(2025, 1, 31, 23))
    b = balance(entries, MONTHLY, at(2025, 2, 1))
    assert b.period_start == at(2025, 2, 1)
    assert b.period_spent == 0 and b.period_reserved == 0 and b.period_available == 5
    assert admit(entries, MONTHLY, "b", 5.0, at(2025, 2, 1))


def test_lifetime_cap_holds_after_refreshes():
    entries = []
    for month in (1, 2):
        r = LedgerEntry.reserve(f"m{month}", 5.0, 0.0, at(2025, month, 10))
        entries += [r, r.charge(at(2025, month, 10, 1))]
    b = balance(entries, MONTHLY, at(2025, 3, 10))
    assert b.period_available == 5 and b.lifetime_available == 2
    assert b.epsilon_available == 2
    assert not admit(entries, MONTHLY, "m3", 3.0, at(2025, 3, 10))
    assert admit(entries, MONTHLY, "m3", 2.0, at(2025, 3, 10))
    assert not admit(entries, MONTHLY, "m4", 0.1, at(2025, 7, 1))


def test_a_charge_counts_in_the_period_of_its_reservation():
    r = LedgerEntry.reserve("j", 4.0, 0.0, at(2025, 1, 31, 23))
    entries = [r, r.charge(at(2025, 2, 1, 1))]
    jan = balance(entries, MONTHLY, at(2025, 1, 31, 23))
    feb = balance(entries, MONTHLY, at(2025, 2, 2))
    assert jan.period_spent == 4
    assert feb.period_spent == 0 and feb.lifetime_spent == 4


def test_an_outstanding_reservation_from_last_period_still_counts_against_the_lifetime():
    entries = [LedgerEntry.reserve("j", 4.0, 0.0, at(2025, 1, 31))]
    feb = balance(entries, MONTHLY, at(2025, 2, 2))
    assert feb.period_reserved == 0 and feb.lifetime_reserved == 4 and feb.lifetime_available == 8


def test_release_returns_the_reservation_and_charge_keeps_it_spent():
    a, b = LedgerEntry.reserve("a", 1.0, 0.0, JAN), LedgerEntry.reserve("b", 2.0, 0.0, JAN)
    entries = [a, b]
    bal = balance(entries, MONTHLY, JAN)
    assert (bal.period_reserved, bal.period_spent, bal.period_available) == (3, 0, 2)
    entries += [a.release(JAN), b.charge(JAN)]
    bal = balance(entries, MONTHLY, JAN)
    assert (bal.period_reserved, bal.period_spent, bal.period_available) == (0, 2, 3)
    assert (bal.lifetime_reserved, bal.lifetime_spent, bal.lifetime_available) == (0, 2, 10)


def test_delta_composes_by_addition_and_is_capped_like_epsilon():
    budget = Budget(epsilon_per_period=5.0, delta_per_period=1e-6, refresh="monthly",
                    lifetime_epsilon=50.0, lifetime_delta=2e-6)
    entries = []
    assert admit(entries, budget, "a", 1.0, at(2025, 1, 2), delta=5e-7)
    assert admit(entries, budget, "b", 1.0, at(2025, 1, 3), delta=5e-7)
    assert not admit(entries, budget, "c", 1.0, at(2025, 1, 4), delta=1e-9)
    assert admit(entries, budget, "c", 1.0, at(2025, 1, 4), delta=0.0)
    feb = balance(entries, budget, at(2025, 2, 1))
    assert feb.period_delta_available == Fraction(1, 10**6)
    assert feb.lifetime_delta_reserved == Fraction(1, 10**6) and feb.lifetime_delta_available == Fraction(1, 10**6)


def test_can_reserve_fails_closed_on_bad_amounts():
    bal = balance([], MONTHLY, JAN)
    assert can_reserve(bal, 5.0)
    for bad in (-0.1, float("inf"), float("nan"), "1", None):
        assert not can_reserve(bal, bad)
    assert not can_reserve(bal, 0.1, -1e-9)
    assert not can_reserve(bal, 0.1, 1e-9)  # no delta granted by this budget


def test_available_never_shows_negative_after_an_owner_lowers_the_budget():
    r = LedgerEntry.reserve("j", 5.0, 0.0, JAN)
    lowered = Budget(epsilon_per_period=2.0, refresh="monthly", lifetime_epsilon=3.0)
    bal = balance([r, r.charge(JAN)], lowered, JAN)
    assert bal.period_available == 0 and bal.lifetime_available == 0 and bal.period_spent == 5


def test_balance_to_dict_is_plain_numbers():
    d = balance([LedgerEntry.reserve("j", 0.1, 0.0, JAN)], MONTHLY, JAN).to_dict()
    assert d["period_reserved"] == 0.1 and d["period_available"] == 4.9
    assert d["period_start"] == "2025-01-01T00:00:00+00:00"


# --- sequence invariants ---------------------------------------------------------------

def test_a_legal_sequence_validates_and_reports_job_states():
    a, b, c = (LedgerEntry.reserve(j, 1.0, 0.0, JAN) for j in "abc")
    entries = [a, b, c, a.charge(JAN), b.release(JAN)]
    validate_sequence(entries)
    assert [job_state(entries, j) for j in "abcd"] == ["charged", "released", "reserved", None]


@pytest.mark.parametrize("name,entries", [
    ("double reserve", lambda r: [r, r]),
    ("double charge", lambda r: [r, r.charge(JAN), r.charge(JAN)]),
    ("charge without reserve", lambda r: [r.charge(JAN)]),
    ("release without reserve", lambda r: [r.release(JAN)]),
    ("charge after release", lambda r: [r, r.release(JAN), r.charge(JAN)]),
    ("release after charge", lambda r: [r, r.charge(JAN), r.release(JAN)]),
    ("charge before reserve in log order", lambda r: [r.charge(JAN), r]),
    ("charge of a different amount", lambda r: [r, LedgerEntry("charge", "j", 0.5, 0.0, JAN)]),
    ("charge timed before its reserve", lambda r: [r, r.charge(JAN - timedelta(seconds=1))]),
])
def test_illegal_sequences_are_refused(name, entries):
    r = LedgerEntry.reserve("j", 1.0, 0.0, JAN)
    with pytest.raises(LedgerError):
        validate_sequence(entries(r))
    with pytest.raises(LedgerError):
        balance(entries(r), MONTHLY, JAN)


@pytest.mark.parametrize("kwargs", [
    dict(kind="refund", job_id="j", epsilon=1.0, delta=0.0, at=JAN),
    dict(kind="reserve", job_id="", epsilon=1.0, delta=0.0, at=JAN),
    dict(kind="reserve", job_id="j", epsilon=-1.0, delta=0.0, at=JAN),
    dict(kind="reserve", job_id="j", epsilon=float("inf"), delta=0.0, at=JAN),
    dict(kind="reserve", job_id="j", epsilon=1.0, delta=1.0, at=JAN),
    dict(kind="reserve", job_id="j", epsilon=1.0, delta=0.0, at="2025-01-01"),
])
def test_malformed_entries_are_refused(kwargs):
    with pytest.raises(LedgerError):
        LedgerEntry(**kwargs)


def test_only_a_reservation_can_be_charged_or_released():
    charge = LedgerEntry.reserve("j", 1.0, 0.0, JAN).charge(JAN)
    with pytest.raises(LedgerError):
        charge.release(JAN)


# --- property-based: any interleaving keeps the invariants ---------------------------

AMOUNTS = st.sampled_from([0.0, 0.01, 0.1, 0.25, 0.3, 0.5, 1.0, 1.5, 2.5])
DELTAS = st.sampled_from([0.0, 1e-7, 2.5e-7, 5e-7])
BUDGETS = st.builds(
    lambda eps, mult, refresh, d: Budget(epsilon_per_period=eps, refresh=refresh, lifetime_epsilon=eps * mult,
                                         delta_per_period=d, lifetime_delta=d * mult),
    st.sampled_from([0.5, 1.0, 2.0, 3.0]), st.sampled_from([1, 2, 3]),
    st.sampled_from(["none", "daily", "monthly", "quarterly", "yearly"]), st.sampled_from([0.0, 1e-6]))


def check_invariants(entries, budget, now):
    validate_sequence(entries)
    jobs: dict[str, list] = {}
    for e in entries:
        jobs.setdefault(e.job_id, []).append(e)
    for es in jobs.values():  # one reserve first, then at most one resolution
        assert es[0].kind == "reserve" and len(es) <= 2
    active = [es[0] for es in jobs.values() if es[-1].kind != "release"]
    current = period_start(budget.refresh, now)
    bal = balance(entries, budget, now)
    in_period = [r for r in active if period_start(budget.refresh, r.at) == current]
    assert bal.lifetime_spent + bal.lifetime_reserved == sum(exact(r.epsilon) for r in active)
    assert bal.period_spent + bal.period_reserved == sum(exact(r.epsilon) for r in in_period)
    assert bal.lifetime_delta_spent + bal.lifetime_delta_reserved == sum(exact(r.delta) for r in active)
    # never overspent: unclamped arithmetic, every period and the lifetime
    assert bal.lifetime_spent + bal.lifetime_reserved <= exact(budget.lifetime_epsilon)
    assert bal.lifetime_delta_spent + bal.lifetime_delta_reserved <= exact(budget.lifetime_delta)
    periods: dict = {}
    for r in active:
        key = period_start(budget.refresh, r.at)
        periods[key] = periods.get(key, 0) + exact(r.epsilon)
    assert all(total <= exact(budget.epsilon_per_period) for total in periods.values())
    for name in ("period_available", "lifetime_available", "period_delta_available", "lifetime_delta_available"):
        assert getattr(bal, name) >= 0


class LedgerMachine(RuleBasedStateMachine):
    """Reserve (only when can_reserve allows), charge, release and let time pass, in any order."""
    outstanding = Bundle("outstanding")

    def __init__(self):
        super().__init__()
        self.entries: list[LedgerEntry] = []
        self.now = at(2025, 1, 1)
        self.budget = MONTHLY
        self.count = 0
        self.resolved: set[str] = set()

    @initialize(budget=BUDGETS)
    def choose_budget(self, budget):
        self.budget = budget

    @rule(target=outstanding, eps=AMOUNTS, delta=DELTAS)
    def reserve(self, eps, delta):
        self.count += 1
        job = f"job{self.count}"
        bal = balance(self.entries, self.budget, self.now)
        if can_reserve(bal, eps, delta):
            entry = LedgerEntry.reserve(job, eps, delta, self.now)
            self.entries.append(entry)
            after = balance(self.entries, self.budget, self.now)
            assert after.period_reserved == bal.period_reserved + exact(eps)
            return entry
        assert exact(eps) > bal.epsilon_available or exact(delta) > bal.delta_available
        return LedgerEntry.reserve(job, eps, delta, self.now)  # refused: never appended

    @rule(r=consumes(outstanding))
    def charge(self, r):
        if r in self.entries:
            self.entries.append(r.charge(self.now))
            self.resolved.add(r.job_id)

    @rule(r=consumes(outstanding))
    def release(self, r):
        if r in self.entries:
            self.entries.append(r.release(self.now))
            self.resolved.add(r.job_id)

    @rule(days=st.sampled_from([0, 1, 31, 92, 366]), hours=st.integers(0, 23))
    def time_passes(self, days, hours):
        self.now += timedelta(days=days, hours=hours)

    @rule()
    def a_second_resolution_is_refused(self):
        for job in sorted(self.resolved)[:1]:
            reserve = next(e for e in self.entries if e.job_id == job and e.kind == "reserve")
            with pytest.raises(LedgerError):
                validate_sequence(self.entries + [reserve.charge(self.now)])

    @invariant()
    def invariants_hold(self):
        check_invariants(self.entries, self.budget, self.now)


TestLedgerInterleavings = LedgerMachine.TestCase
TestLedgerInterleavings.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@st.composite
def interleavings(draw):
    """A random op list: reserve(eps, delta), charge(i), release(i), advance(hours)."""
    ops = []
    for _ in range(draw(st.integers(0, 60))):
        kind = draw(st.sampled_from(["reserve", "reserve", "charge", "release", "advance"]))
        if kind == "reserve":
            ops.append(("reserve", draw(AMOUNTS), draw(DELTAS)))
        elif kind == "advance":
            ops.append(("advance", draw(st.integers(0, 24 * 45))))
        else:
            ops.append((kind, draw(st.integers(0, 30))))
    return ops


@given(budget=BUDGETS, ops=interleavings())
@settings(max_examples=200, deadline=None)
def test_any_interleaving_of_admitted_reserve_charge_release_keeps_the_invariants(budget, ops):
    entries, now, reserves = [], at(2025, 1, 1), []
    for op in ops:
        if op[0] == "reserve":
            if admit(entries, budget, f"j{len(reserves)}-{len(entries)}", op[1], now, delta=op[2]):
                reserves.append(entries[-1])
        elif op[0] == "advance":
            now += timedelta(hours=op[1])
        elif reserves:
            r = reserves[op[1] % len(reserves)]
            resolution = r.charge(now) if op[0] == "charge" else r.release(now)
            if job_state(entries, r.job_id) == "reserved":
                entries.append(resolution)
            else:  # a second resolution of any kind is refused
                with pytest.raises(LedgerError):
                    validate_sequence(entries + [resolution])
        check_invariants(entries, budget, now)


# --- charges rounded up ----------------------------------------------------------------

def test_a_charge_of_several_parts_is_never_below_their_exact_sum():
    assert 0.1 + 0.1 + 0.7 < 0.9 and math.fsum([0.1, 0.1, 0.7]) < 0.9   # rounded to nearest: short
    assert sum_rounded_up([0.1, 0.1, 0.7]) == 0.9                        # reads exactly 9/10
    assert sum_rounded_up([0.1] * 10) == 1.0                             # ten jobs of 0.1 still fit in 1.0
    assert sum_rounded_up([0.3333333333333333] * 3) == 0.9999999999999999  # exact: 3 x 0.3333333333333333
    assert sum_rounded_up([0.7, 0.1, 0.1, 0.1]) == 1.0
    assert sum_rounded_up([]) == 0.0 and sum_rounded_up([0.0, 0.0]) == 0.0


def test_rounding_up_refuses_what_the_ledger_refuses():
    with pytest.raises(LedgerError):
        sum_rounded_up([-0.5, 0.1])
    with pytest.raises(LedgerError):
        sum_rounded_up([float("nan")])
    with pytest.raises(LedgerError):
        sum_rounded_up([1e308, 1e308])


EPSILONS = st.one_of(st.floats(min_value=1e-9, max_value=10, allow_nan=False),
                     st.sampled_from([0.1, 0.2, 0.3, 0.7, 1 / 3, 0.05, 1e-3]))


@given(st.lists(EPSILONS, min_size=1, max_size=20))
@settings(max_examples=500, deadline=None)
def test_a_charge_is_the_smallest_float_that_reads_at_least_the_exact_sum(parts):
    charge = sum_rounded_up(parts)
    total = sum(exact(p) for p in parts)
    assert exact(charge) >= total
    assert exact(math.nextafter(charge, 0.0)) < total
    assert charge == pytest.approx(math.fsum(parts), rel=1e-15)


# --- dataset-wide: every operator's entries against the dataset's caps ------------------

CAPPED = Budget(epsilon_per_period=5.0, refresh="monthly", lifetime_epsilon=12.0,
                dataset_epsilon_per_period=8.0, dataset_lifetime_epsilon=20.0)


def test_the_dataset_wide_balance_sums_every_operator_and_counts_in_the_reservations_period():
    a, b = LedgerEntry.reserve("a1", 4.0, 0.0, JAN), LedgerEntry.reserve("b1", 3.0, 0.0, JAN)
    c = LedgerEntry.reserve("b2", 2.0, 0.0, at(2024, 12, 31))
    wide = dataset_balance([a, b, b.charge(JAN), c, c.charge(JAN)], CAPPED, JAN)
    assert (wide.period_spent, wide.period_reserved, wide.period_available) == (3, 4, 1)
    assert (wide.lifetime_spent, wide.lifetime_reserved, wide.lifetime_available) == (5, 4, 11)
    assert wide.epsilon_available == 1 and wide.delta_available is None and wide.capped
    assert wide.fits(1.0) and not wide.fits(1.01)
    assert not can_reserve(balance([a], CAPPED, JAN), 1.01, dataset=wide)
    assert can_reserve(balance([a], CAPPED, JAN), 1.0, dataset=wide)


def test_without_dataset_wide_caps_nothing_is_capped():
    wide = dataset_balance([LedgerEntry.reserve("a", 5.0, 0.0, JAN)], MONTHLY, JAN)
    assert not wide.capped and wide.fits(1e9) and not wide.blocks(0.5)
    assert wide.period_reserved == 5 and wide.to_dict()["epsilon_available"] is None


def test_the_operators_view_of_the_dataset_wide_cap_is_one_fixed_threshold():
    def wide(used):
        r = LedgerEntry.reserve("other", used, 0.0, JAN)
        return dataset_balance([r, r.charge(JAN)], CAPPED, JAN)

    # 8.0 per period: an operator learns only whether less than the floor (0.5) is left.
    views = {used: wide(used).for_operator(0.5) for used in (0.0, 3.0, 7.5, 7.6, 8.0)}
    assert views[0.0] == views[3.0] == views[7.5]
    assert views[7.6] == views[8.0] and views[7.6].period_available == 0
    assert all(v.period_spent == 0 and v.lifetime_spent == 0 for v in views.values())
    assert [wide(u).blocks(0.5) for u in (7.5, 7.6)] == [False, True]
    assert wide(8.0).blocks(0.0) and not wide(7.99).blocks(0.0)


def test_dataset_wide_to_dict_is_plain_data():
    import json
    d = dataset_balance([LedgerEntry.reserve("a", 0.1, 0.0, JAN)], CAPPED, JAN).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["period_available"] == 7.9 and d["period_delta_available"] is None and d["capped"] is True


def test_balance_counts_this_periods_jobs_for_the_quota():
    quota = Budget(epsilon_per_period=5.0, refresh="monthly", lifetime_epsilon=12.0, jobs_per_period=2)
    r1, r2 = LedgerEntry.reserve("a", 0.0, 0.0, JAN), LedgerEntry.reserve("b", 0.1, 0.0, JAN)
    old = LedgerEntry.reserve("c", 0.1, 0.0, at(2024, 12, 1))
    bal = balance([r1, r2, r2.release(JAN), old], quota, JAN)
    assert (bal.period_jobs, bal.period_jobs_available) == (1, 1)
    assert balance([], MONTHLY, JAN).period_jobs_available is None
    assert bal.to_dict()["period_jobs"] == 1


OPERATORS = st.sampled_from(["op1", "op2", "op3"])
CAPPED_BUDGETS = st.builds(
    lambda eps, mult, wide, refresh: Budget(epsilon_per_period=eps, refresh=refresh, lifetime_epsilon=eps * mult,
                                            dataset_epsilon_per_period=eps * wide,
                                            dataset_lifetime_epsilon=eps * mult * wide),
    st.sampled_from([0.5, 1.0, 2.0]), st.sampled_from([1, 2, 3]), st.sampled_from([1.0, 1.5, 2.0]),
    st.sampled_from(["none", "daily", "monthly"]))


@given(budget=CAPPED_BUDGETS,
       ops=st.lists(st.tuples(st.sampled_from(["reserve", "reserve", "charge", "release", "advance"]),
                              OPERATORS, AMOUNTS, st.integers(0, 24 * 40)), max_size=60))
@settings(max_examples=200, deadline=None)
def test_admissions_by_several_operators_never_overspend_the_dataset_wide_caps(budget, ops):
    entries: dict[str, list] = {"op1": [], "op2": [], "op3": []}
    now, reserves = at(2025, 1, 1), []
    for kind, who, eps, n in ops:
        every = [e for es in entries.values() for e in es]
        if kind == "reserve":
            if can_reserve(balance(entries[who], budget, now), eps, dataset=dataset_balance(every, budget, now)):
                entries[who].append(LedgerEntry.reserve(f"j{len(every)}", eps, 0.0, now))
                reserves.append((who, entries[who][-1]))
        elif kind == "advance":
            now += timedelta(hours=n)
        elif reserves:
            owner, r = reserves[n % len(reserves)]
            if job_state(entries[owner], r.job_id) == "reserved":
                entries[owner].append(r.charge(now) if kind == "charge" else r.release(now))
        every = [e for es in entries.values() for e in es]
        wide = dataset_balance(every, budget, now)
        active = {e.job_id: e for e in every if e.kind == "reserve"}
        for e in every:
            if e.kind == "release":
                active.pop(e.job_id)
        per_period: dict = {}
        for r in active.values():
            key = period_start(budget.refresh, r.at)
            per_period[key] = per_period.get(key, 0) + exact(r.epsilon)
        assert all(total <= exact(budget.dataset_epsilon_per_period) for total in per_period.values())
        assert wide.lifetime_spent + wide.lifetime_reserved == sum(exact(r.epsilon) for r in active.values())
        assert wide.lifetime_spent + wide.lifetime_reserved <= exact(budget.dataset_lifetime_epsilon)
        for who, es in entries.items():
            check_invariants(es, budget, now)

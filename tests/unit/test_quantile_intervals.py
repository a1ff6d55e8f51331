"""A released quantile carries a 95% value interval: two more noisy selections (a quarter of
the query's epsilon each) aimed a public number of rows below and above the quantile's rank.
Checked here: the ends follow OpenDP's noisy-min distribution over the shifted scores at
their planned scale, and the interval covers the true quantile at least 95% of the time."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sandbox.core import dp as acc
from sandbox.core.manifest import parse_manifest
from sandbox.core.specs.query import parse_query_spec
from sandbox.runner.query import quantile_end_scores, quantile_scores, release_cells
from tests.unit.test_runner_query import MANIFEST, _noisy_min_probabilities, _spec


def _query(column: str, q: float, epsilon: float, group_by=()):
    manifest = parse_manifest(MANIFEST)
    query = parse_query_spec(_spec([{"name": "q", "statistic": "quantile", "column": column, "q": q,
                                     "group_by": list(group_by), "epsilon": epsilon}]), manifest).queries[0]
    return manifest, query, acc.plan_query(query, manifest)


def _exact(plan, index: np.ndarray) -> tuple[list[int], list[int]]:
    """(hist_by_rank, eq_counts) of values on the candidate grid (index i = candidate i), as
    frames.exact_cells gives them: hist[r] counts rows with exactly r candidates <= x."""
    m = len(plan.candidates)
    eqs = np.bincount(index, minlength=m)
    hist = np.bincount(index + 1, minlength=m + 1)
    return [int(v) for v in hist], [int(v) for v in eqs]


def test_the_plan_states_the_interval_method_and_its_public_shift():
    _, _, plan = _query("amount", 0.5, 1.0)
    assert plan.interval["halfwidth"] is None and "approximate" in plan.interval["method"]
    assert [p.name for p in plan.parts] == ["selection", "lower", "upper"]
    assert sum(p.epsilon for p in plan.parts) == plan.epsilon
    # score units are den (2) per row; the shift is b_end ln(m / 0.025), rounded up
    shift = acc.quantile_bound_shift(plan.parts[1].scale, len(plan.candidates))
    assert shift == pytest.approx(plan.parts[1].scale * np.log(1001 / 0.025), abs=1)
    assert plan.interval["bound_shift_rows"] == 2 * shift / 2


def test_each_end_is_the_noisy_min_of_the_shifted_scores_at_its_planned_scale():
    manifest, query, plan = _query("age", 0.5, 2.0)
    m = len(plan.candidates)  # 0..10
    hist, eqs = _exact(plan, np.array([2, 3, 4, 4, 5, 5, 5, 6, 6, 7, 8] * 3))
    num, den = plan.alpha
    shift = acc.quantile_bound_shift(plan.parts[1].scale, m)
    p_value = np.array(_noisy_min_probabilities(quantile_scores(hist, eqs, num, den), plan.parts[0].scale))
    low_scores = quantile_end_scores(hist, eqs, num, den, shift, "lower")
    high_scores = quantile_end_scores(hist, eqs, num, den, shift, "upper")
    p_low = np.array(_noisy_min_probabilities(low_scores, plan.parts[1].scale))
    p_high = np.array(_noisy_min_probabilities(high_scores, plan.parts[2].scale))
    p_value, p_low, p_high = (p / p.sum() for p in (p_value, p_low, p_high))
    # Released ends are min(lower, value) and max(upper, value) of independent selections.
    ge = lambda p: np.cumsum(p[::-1])[::-1]  # noqa: E731 - P(X >= c)
    le = np.cumsum
    low_ge = ge(p_low) * ge(p_value)
    want_low = low_ge - np.append(low_ge[1:], 0.0)
    high_le = le(p_high) * le(p_value)
    want_high = high_le - np.insert(high_le[:-1], 0, 0.0)
    draws = 3000
    got_low, got_high = np.zeros(m), np.zeros(m)
    for _ in range(draws):
        _, lo, hi = release_cells(query, plan, [(hist, eqs)], manifest)["rows"][0]
        got_low[int(lo)] += 1
        got_high[int(hi)] += 1
    for got, want in ((got_low, want_low), (got_high, want_high)):
        keep = want * draws >= 5  # chi-square needs expected counts of a few per bin
        expected = np.append(want[keep], want[~keep].sum()) * draws
        observed = np.append(got[keep], got[~keep].sum())
        expected *= observed.sum() / expected.sum()
        assert stats.chisquare(observed, expected).pvalue > 1e-4
    # the same ends at the value's (sharper) scale would be told apart
    sharp = np.array(_noisy_min_probabilities(low_scores, plan.parts[0].scale))
    sharp_ge = ge(sharp / sharp.sum()) * ge(p_value)
    sharp_low = sharp_ge - np.append(sharp_ge[1:], 0.0)
    keep = sharp_low * draws >= 5
    expected = np.append(sharp_low[keep], sharp_low[~keep].sum()) * draws
    observed = np.append(got_low[keep], got_low[~keep].sum())
    assert stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue < 1e-4


def _coverage(column, q, epsilon, index_of_cell, draws):
    manifest, query, plan = _query(column, q, epsilon, group_by=["region"])
    cands = np.array(plan.candidates)
    exact = [_exact(plan, idx) for idx in index_of_cell]
    truth = [np.quantile(cands[idx], q, method="inverted_cdf") for idx in index_of_cell]
    hits = total = 0
    widths = np.zeros(len(index_of_cell))
    for _ in range(draws):
        for i, (row, t) in enumerate(zip(release_cells(query, plan, exact, manifest)["rows"], truth)):
            value, lo, hi = row[1:]
            assert lo <= value <= hi
            hits += lo <= t <= hi
            total += 1
            widths[i] += (hi - lo) / draws
    return hits / total, widths, plan


@pytest.mark.parametrize("q", [0.5, 0.9])
@pytest.mark.parametrize("epsilon", [0.3, 1.0])
def test_quantile_intervals_cover_the_true_quantile_at_least_95_percent_of_the_time(q, epsilon):
    rng = np.random.default_rng(7)
    cells = [rng.integers(0, 1001, 5000),                                   # uniform over [0, 100]
             np.minimum(rng.exponential(80, 5000).astype(int), 1000),       # skewed, a pile at the top
             np.repeat([100, 420, 421, 900], [30, 10, 10, 30])]             # few rows, ties, a gap
    rate, widths, plan = _coverage("amount", q, epsilon, cells, draws=150)
    assert rate >= 0.95
    # not the trivial [L, U]: on 5000 uniform rows the interval is well inside the range
    assert widths[0] < 50


def test_a_large_cell_gets_a_narrow_interval():
    rng = np.random.default_rng(11)
    cells = [rng.integers(0, 1001, 200_000)] * 3
    rate, widths, plan = _coverage("amount", 0.5, 1.0, cells, draws=40)
    # 200k rows uniform over 100 units: the public shift (170 rows at k = 2, eps = 1) is ~0.1 units
    assert rate >= 0.95 and max(widths) < 1.0

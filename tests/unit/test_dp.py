"""Closed-form DP accounting, cross-checked against OpenDP's own privacy maps."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from sandbox.core import dp as acc
from sandbox.core.manifest import parse_manifest
from sandbox.core.specs.query import parse_query_spec

REPO = Path(__file__).resolve().parents[2]


def _manifest(k=5):
    data = yaml.safe_load((REPO / "datasets" / "health_visits.yaml").read_text(encoding="utf-8"))
    data["max_rows_per_unit"] = k
    return parse_manifest(data)


def _spec(manifest):
    return parse_query_spec(json.loads((REPO / "jobs" / "health_query.json").read_text(encoding="utf-8")), manifest)


@pytest.mark.parametrize("k,lo,hi,sum_sens,shifted_sens", [
    (1, 0, 100, 100, 50),
    (5, 0, 10000, 50000, 25000),
    (3, -20, 5, 60, 37.5),
    (2, -7, -3, 14, 4),
    (10, 0.5, 1.5, 15, 5),
])
def test_sum_and_shifted_sum_sensitivity(k, lo, hi, sum_sens, shifted_sens):
    assert acc.sum_sensitivity(k, lo, hi) == sum_sens
    assert acc.shifted_sum_sensitivity(k, lo, hi) == shifted_sens
    # the shift never makes the sum more sensitive, and halves it when L = 0
    assert acc.shifted_sum_sensitivity(k, lo, hi) <= acc.sum_sensitivity(k, lo, hi)


@pytest.mark.parametrize("k", [1, 2, 5, 17])
def test_count_and_histogram_sensitivity_is_rows_per_unit(k):
    assert acc.count_sensitivity(k) == k
    assert acc.histogram_sensitivity(k) == k


@pytest.mark.parametrize("q,frac,sens_k3", [(0.5, (1, 2), 3), (0.25, (1, 4), 9), (0.3, (3, 10), 21),
                                            (0.9, (9, 10), 27), (0.0001, (1, 10000), 29997)])
def test_quantile_alpha_and_score_sensitivity(q, frac, sens_k3):
    assert acc.quantile_alpha(q) == frac
    assert acc.quantile_score_sensitivity(3, *frac) == sens_k3


def test_plan_of_the_example_job_matches_the_closed_form():
    m = _manifest(k=5)
    plans = {p.name: p for p in acc.plan(_spec(m), m)}
    count = plans["visits_by_district"]
    assert (count.sensitivity, count.mechanism, count.cells) == (5, "discrete_laplace", 14)
    assert count.noise_scale == pytest.approx(5 / 0.3)

    mean = plans["mean_cost_by_district"]
    s, c = mean.parts
    assert (s.name, s.mechanism, s.epsilon, s.sensitivity) == ("shifted_sum", "laplace", 0.15, 25000)
    assert s.scale == pytest.approx(25000 / 0.15)
    assert (c.name, c.mechanism, c.epsilon, c.sensitivity) == ("count", "discrete_laplace", 0.15, 5)
    assert c.scale == pytest.approx(5 / 0.15)
    assert s.epsilon + c.epsilon == mean.epsilon
    assert mean.expected_abs_error is None

    total = plans["cost_by_district_sex"]
    assert (total.sensitivity, total.cells) == (50000, 28)
    assert total.noise_scale == pytest.approx(250000) and total.expected_abs_error == total.noise_scale

    hist = plans["age_histogram"]
    assert (hist.sensitivity, hist.cells) == (5, 4)
    assert hist.noise_scale == pytest.approx(50)

    med = plans["median_cost"]
    assert med.alpha == (1, 2) and med.sensitivity == 5
    # half of epsilon selects the value, a quarter each the interval's ends
    assert med.noise_scale == pytest.approx(2 * 5 / 0.05)
    assert [(p.name, p.epsilon) for p in med.parts] == [("selection", 0.05), ("lower", 0.025), ("upper", 0.025)]
    assert [p.scale for p in med.parts[1:]] == [pytest.approx(2 * 5 / 0.025)] * 2
    assert med.interval["bound_shift_rows"] == pytest.approx(2 * 400 * math.log(1001 / 0.025) / 2, abs=1)
    assert len(med.candidates) == 1001 and med.candidates[0] == 0 and med.candidates[-1] == 10000


def test_plan_scales_with_rows_per_unit():
    p1 = {p.name: p for p in acc.plan(_spec(_manifest(1)), _manifest(1))}
    p4 = {p.name: p for p in acc.plan(_spec(_manifest(4)), _manifest(4))}
    for name in p1:
        assert p4[name].sensitivity == 4 * p1[name].sensitivity
        assert p4[name].noise_scale == pytest.approx(4 * p1[name].noise_scale)


def test_integer_column_quantile_uses_every_integer_as_candidate():
    assert acc.quantile_candidates(0, 100, "int64") == tuple(float(i) for i in range(101))
    grid = acc.quantile_candidates(0, 5000, "int64")
    assert len(grid) == 1001 and grid[-1] == 5000.0
    assert all(b > a for a, b in zip(grid, grid[1:]))


def test_discrete_laplace_error_formulas_match_the_distribution():
    for b in (0.3, 1.0, 4.0, 25.0):
        p = math.exp(-1 / b)
        pmf = {x: (1 - p) / (1 + p) * p ** abs(x) for x in range(-2000, 2001)}
        assert sum(pmf.values()) == pytest.approx(1)
        assert acc.discrete_laplace_expected_abs_error(b) == pytest.approx(sum(abs(x) * w for x, w in pmf.items()))
        assert acc.discrete_laplace_variance(b) == pytest.approx(sum(x * x * w for x, w in pmf.items()))
    # large scales approach the continuous Laplace's E|X| = b
    assert acc.discrete_laplace_expected_abs_error(1000.0) == pytest.approx(1000.0, rel=1e-6)


SCALE_CASES = [(1, 0.3), (5, 0.1), (3, 1e-3), (7, 9.99), (50000.0, 0.2), (25000.0, 0.15), (37.5, 0.7)]


@pytest.mark.parametrize("sens,eps", SCALE_CASES)
def test_opendp_laplace_map_confirms_the_closed_form(sens, eps):
    from sandbox.privacy.measurements import float_laplace, integer_laplace

    b = acc.laplace_scale(sens, eps)
    assert b == pytest.approx(sens / eps, rel=1e-12)
    meas = float_laplace(b, sens, eps)
    assert meas.map(float(sens)) <= eps
    assert meas.map(float(sens)) == pytest.approx(eps, rel=1e-12)  # tight, not merely bounded
    if float(sens).is_integer():
        imeas = integer_laplace(b, int(sens), eps)
        assert imeas.map(int(sens)) <= eps
        assert imeas.map(int(sens)) == pytest.approx(eps, rel=1e-12)


@pytest.mark.parametrize("k,q,eps", [(1, 0.5, 1.0), (5, 0.5, 0.1), (3, 0.3, 0.7), (2, 0.9, 2.0)])
def test_opendp_noisy_max_map_confirms_the_quantile_accounting(k, q, eps):
    from sandbox.privacy.measurements import exponential_selection

    num, den = acc.quantile_alpha(q)
    sens = acc.quantile_score_sensitivity(k, num, den)
    b = acc.exponential_scale(sens, eps)
    assert b == pytest.approx(2 * sens / eps)
    meas = exponential_selection(b, sens, eps)
    assert meas.map(sens) == pytest.approx(eps, rel=1e-12) and meas.map(sens) <= eps


def test_quantile_accounting_matches_opendps_own_quantile_measurement():
    # OpenDP's make_private_quantile with the same scale (normalized by den) charges the same epsilon.
    import opendp.prelude as dp

    dp.enable_features("contrib")
    for q, k, eps in [(0.5, 3, 0.4), (0.25, 2, 1.0)]:
        num, den = acc.quantile_alpha(q)
        b = acc.exponential_scale(acc.quantile_score_sensitivity(k, num, den), eps)
        meas = dp.m.make_private_quantile(dp.vector_domain(dp.atom_domain(T=float, nan=False)),
                                          dp.symmetric_distance(), dp.max_divergence(),
                                          [0.0, 1.0, 2.0], q, scale=b / den)
        assert meas.map(k) == pytest.approx(eps, rel=1e-9)


def test_a_scale_too_small_for_the_claimed_epsilon_is_caught():
    from sandbox.privacy.measurements import PrivacyAccountingError, integer_laplace

    with pytest.raises(PrivacyAccountingError):
        integer_laplace(acc.laplace_scale(5, 0.3) * 0.99, 5, 0.3)


def test_dp_module_imports_no_third_party_package():
    import ast

    import sandbox.core.dp as mod

    tree = ast.parse(Path(mod.__file__).read_text(encoding="utf-8"))
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module}
    assert {m.split(".")[0] for m in mods if not m.startswith("sandbox.core.")} <= {
        "__future__", "math", "dataclasses", "fractions"}

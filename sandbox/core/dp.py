"""Closed-form DP accounting for query-mode statistics.

Neighbouring datasets differ by adding or removing one privacy unit, which owns
at most k = manifest.max_rows_per_unit rows; values are clamped to the manifest's
public bounds [L, U]. Everything here uses public information only (spec and
manifest), so a plan can be shown to the operator before anything touches data.
The runner builds OpenDP measurements with these scales and checks each one with
OpenDP's own privacy map.

Statistics (b = noise scale, eps = the query's epsilon):
- count / histogram: a vector of cell counts. One unit's k rows add at most k to
  the vector in total (spread over cells), so L1 sensitivity = k. Discrete
  Laplace (OpenDP's make_laplace on integers), b = k / eps.
- sum: L1 sensitivity = k * max(|L|, |U|). Laplace, b = sens / eps.
- mean: mid = (L+U)/2; release mid + noisy sum(x - mid) / max(noisy count, 1),
  clamped to [L, U]. Shifting by mid halves the sum's sensitivity to
  k * (U - L) / 2 (as Tumult does). eps is split in half between the shifted sum
  (Laplace) and the count (discrete Laplace); the halves add up to eps exactly.
- quantile: the exponential mechanism over a public grid of candidates spanning
  [L, U] (OpenDP's quantile score and make_noisy_max). With alpha = num/den the
  score of candidate c is |den * #(x < c) - num * (n - #(x = c))|; one row moves
  each score by at most max(num, den - num), so the score vector's L-inf
  sensitivity is k * max(num, den - num). The scores are not monotonic in the
  data, so the Gumbel noisy max costs eps = 2 * sens / b, i.e. b = 2 * sens / eps.
  Grouped quantiles run one selection per cell; a unit's k rows split as k_1 +
  ... over cells, and the loss is linear in d_in, so the total is still eps.
  eps is split: half selects the released value, a quarter each selects the lower
  and upper ends of its interval (the same scores shifted by a public number of
  rows, so the same sensitivity); the parts add up to eps exactly.

Intervals (every released value carries one, sandbox.core.intervals): the
central 95% interval of the noise, from the public scale, around the released number. A
count below zero is released as 0 and its interval clipped at 0 (post-processing: the
true count is never negative). A mean's interval takes each noisy component's 97.5%
interval and the extremes of the ratio over them (a union bound, so >= 95% up to the
clamping; approximate). A quantile's value error depends on the data's spread, which no
public number gives, so its interval is released by DP too: two more noisy selections aim
at the ranks a public number of rows below and above the quantile's (quantile_bound_shift),
far enough that each lands on its side of the true quantile with >= 97.5% (approximate: the
quantile as OpenDP's score defines it, on the candidate grid, so a tie or a grid step apart).

Row filters (a query's `where`, SQL WHERE) run before contribution bounding and keep a
subset of each unit's rows, so a unit still moves at most k rows: every sensitivity holds.

With group_by, cells partition the rows, so all the above hold for the whole
vector of cells; every public cell is released, which makes the output shape
independent of the data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

from sandbox.core.intervals import ERROR_BAR_LEVEL, noise_halfwidth
from sandbox.core.manifest import Manifest
from sandbox.core.specs.query import Q_DENOMINATOR, Query, QuerySpec

MAX_INTEGER_CANDIDATES = 1001
FLOAT_CANDIDATES = 1001


# ------------------------------------------------------------- sensitivities

def count_sensitivity(k: int) -> int:
    return k


def histogram_sensitivity(k: int) -> int:
    return k


def sum_sensitivity(k: int, lower: float, upper: float) -> float:
    return k * max(abs(lower), abs(upper))


def shifted_sum_sensitivity(k: int, lower: float, upper: float) -> float:
    return k * (upper - lower) / 2


def quantile_alpha(q: float) -> tuple[int, int]:
    """q as a reduced fraction num/den on the spec's 1/10000 grid."""
    num = round(q * Q_DENOMINATOR)
    g = math.gcd(num, Q_DENOMINATOR)
    return num // g, Q_DENOMINATOR // g


def quantile_score_sensitivity(k: int, num: int, den: int) -> int:
    return k * max(num, den - num)


# -------------------------------------------------------------------- scales

def _scale(sensitivity: float, epsilon: float, factor: int = 1) -> float:
    """factor * sensitivity / epsilon, nudged up by ulps until the exact rational
    factor * sensitivity / scale is <= epsilon: OpenDP's privacy maps round up, and a
    scale rounded down would make its map exceed epsilon by one ulp."""
    scale = factor * sensitivity / epsilon
    target = Fraction(epsilon)
    while Fraction(factor) * Fraction(sensitivity) / Fraction(scale) > target:
        scale = math.nextafter(scale, math.inf)
    return scale


def laplace_scale(sensitivity: float, epsilon: float) -> float:
    """Scale b of a Laplace / discrete Laplace release of L1 sensitivity at epsilon."""
    return _scale(sensitivity, epsilon)


def exponential_scale(score_sensitivity: float, epsilon: float) -> float:
    """Gumbel scale of a noisy-max selection over non-monotonic scores."""
    return _scale(score_sensitivity, epsilon, factor=2)


def laplace_expected_abs_error(scale: float) -> float:
    """E|X| for X ~ Laplace(0, b) is b."""
    return scale


def discrete_laplace_expected_abs_error(scale: float) -> float:
    """E|X| for the discrete Laplace P(x) ~ exp(-|x|/b): 2p / (1 - p^2), p = e^(-1/b).
    It tends to b for large b and is below b for small b."""
    p = math.exp(-1.0 / scale)
    return 2 * p / (1 - p * p)


def discrete_laplace_variance(scale: float) -> float:
    p = math.exp(-1.0 / scale)
    return 2 * p / (1 - p) ** 2


def quantile_candidates(lower: float, upper: float, column_type: str) -> tuple[float, ...]:
    """Public candidate grid: every integer for narrow integer columns, else 1001
    evenly spaced points from lower to upper inclusive."""
    if (column_type == "int64" and float(lower).is_integer() and float(upper).is_integer()
            and upper - lower + 1 <= MAX_INTEGER_CANDIDATES):
        return tuple(float(v) for v in range(int(lower), int(upper) + 1))
    n = FLOAT_CANDIDATES
    step = (upper - lower) / (n - 1)
    grid = [lower + i * step for i in range(n - 1)] + [float(upper)]
    return tuple(float(v) for v in grid)


# ---------------------------------------------------------------- intervals

def count_cell(noisy: int, scale: float) -> list[int]:
    """[value, lower, upper] of a released count: negative noisy counts become 0 and the
    interval is clipped at 0 (post-processing of the released number; no privacy cost)."""
    t = int(noise_halfwidth("discrete_laplace", scale) or 0)
    return [max(0, noisy), max(0, noisy - t), max(0, noisy + t)]


def sum_cell(noisy: float, scale: float) -> list[float]:
    t = noise_halfwidth("laplace", scale) or 0.0
    return [noisy, noisy - t, noisy + t]


def mean_cell(noisy_shifted_sum: float, noisy_count: int, plan: "QueryPlan") -> list[float]:
    """[value, lower, upper] of a released mean: mid + S/max(N, 1) clamped to the bounds,
    and the extremes of mid + s/n over the 97.5% intervals of S and N (union bound: >= 95%,
    approximate because of the clamping and the floor of 1 on n)."""
    sum_part, count_part = plan.parts
    lo, hi = plan.bounds
    mid = (lo + hi) / 2
    level = 1 - (1 - ERROR_BAR_LEVEL) / 2
    ts = noise_halfwidth("laplace", sum_part.scale, level) or 0.0
    tc = noise_halfwidth("discrete_laplace", count_part.scale, level) or 0.0
    ratios = [s / n for s in (noisy_shifted_sum - ts, noisy_shifted_sum + ts)
              for n in (max(noisy_count - tc, 1), max(noisy_count + tc, 1))]

    def clamp(v: float) -> float:
        return min(hi, max(lo, v))
    return [clamp(mid + noisy_shifted_sum / max(noisy_count, 1)), clamp(mid + min(ratios)), clamp(mid + max(ratios))]


def quantile_rank_error(scale: float, candidates: int, den: int) -> float:
    """Rows by which the selected candidate's rank may miss the best candidate's, at 95%:
    the noisy min picks a score at most b ln(m / 0.05) above the best (union bound over the
    m candidates' noise), and a score counts rank differences times den."""
    return scale * math.log(candidates / (1 - ERROR_BAR_LEVEL)) / den


def quantile_bound_shift(scale: float, candidates: int) -> int:
    """D = b ln(m / 0.025) in score units (den per row), rounded up: a candidate whose score is
    D above another's is picked by the noisy min with probability <= e^(-D/b), so all m of
    them together with <= 2.5%. An interval end aims 2D below (above) the quantile, with the
    outermost candidate pinned at score D (runner.query.quantile_end_scores): it lands on its
    side with >= 97.5%, both ends >= 95% (union bound). Public: the scale and grid size only."""
    level = (1 - ERROR_BAR_LEVEL) / 2
    return math.ceil(scale * math.log(candidates / level))


def quantile_cell(value: float, lower: float, upper: float) -> list[float]:
    """[value, lower, upper] of a released quantile: the interval's ends are separate noisy
    selections, widened to contain the value (post-processing) when one lands past it."""
    return [value, min(lower, value), max(upper, value)]


# ---------------------------------------------------------------------- plan

@dataclass(frozen=True)
class NoisePart:
    """One noisy release inside a query."""
    name: str              # "count", "sum", "shifted_sum", "selection"
    mechanism: str         # "discrete_laplace" | "laplace" | "exponential"
    epsilon: float
    sensitivity: float     # L1 for Laplace; L-inf of the score vector for exponential
    scale: float
    expected_abs_error: float | None

    def to_dict(self) -> dict:
        return {"name": self.name, "mechanism": self.mechanism, "epsilon": self.epsilon,
                "sensitivity": self.sensitivity, "noise_scale": self.scale,
                "expected_abs_error": self.expected_abs_error}


@dataclass(frozen=True)
class QueryPlan:
    """Public accounting of one query. `expected_abs_error` is per released cell;
    None where it depends on the data (mean: divided by the unknown count;
    quantile: depends on the distribution)."""
    name: str
    statistic: str
    column: str | None
    group_by: tuple[str, ...]
    epsilon: float
    mechanism: str
    sensitivity: float
    noise_scale: float
    expected_abs_error: float | None
    parts: tuple[NoisePart, ...]
    cells: int
    bounds: tuple[float, float] | None = None
    candidates: tuple[float, ...] | None = None
    alpha: tuple[int, int] | None = None
    # The 95% interval of every released cell (interval_of); a field, so the cost preview
    # (which serializes the plan's fields) states the same measure as the release.
    interval: dict | None = None

    def interval_of(self) -> dict:
        """The 95% interval every released cell carries, as the preview and the release state it."""
        out = {"level": ERROR_BAR_LEVEL, "halfwidth": noise_halfwidth(self.mechanism, self.noise_scale)}
        if self.statistic in ("count", "histogram"):
            out["method"] = ("released count +/- halfwidth (discrete Laplace noise quantile); negative counts "
                             "are released as 0 and the interval clipped at 0 (post-processing)")
        elif self.statistic == "sum":
            out["method"] = "released sum +/- halfwidth (Laplace noise quantile)"
        elif self.statistic == "mean":
            out["method"] = ("approximate, per cell: extremes of the ratio over the 97.5% intervals of the noisy "
                             "sum and count (union bound), clamped to the bounds")
        else:
            bound = self.parts[1].scale
            out["method"] = ("approximate, per cell: the ends are two more noisy selections (a quarter of epsilon "
                             "each) aimed bound_shift_rows below and above the quantile's rank, each on its side "
                             "with >= 97.5% (up to the candidate grid and ties), widened to contain the value; "
                             "the value's rank is within rank_error_rows of the best candidate's, at 95%")
            out["rank_error_rows"] = quantile_rank_error(self.noise_scale, len(self.candidates), self.alpha[1])
            out["bound_shift_rows"] = 2 * quantile_bound_shift(bound, len(self.candidates)) / self.alpha[1]
        return out

    def to_dict(self) -> dict:
        d = {"name": self.name, "statistic": self.statistic, "column": self.column,
             "group_by": list(self.group_by), "epsilon": self.epsilon, "mechanism": self.mechanism,
             "sensitivity": self.sensitivity, "noise_scale": self.noise_scale,
             "expected_abs_error": self.expected_abs_error, "interval": self.interval, "cells": self.cells,
             "parts": [p.to_dict() for p in self.parts]}
        if self.bounds is not None:
            d["bounds"] = list(self.bounds)
        if self.candidates is not None:
            d["candidates"] = {"count": len(self.candidates), "lower": self.candidates[0],
                               "upper": self.candidates[-1]}
        return d


def plan(spec: QuerySpec, manifest: Manifest) -> list[QueryPlan]:
    """The accounting of every query in the spec, from public information only."""
    return [plan_query(q, manifest) for q in spec.queries]


def plan_query(query: Query, manifest: Manifest) -> QueryPlan:
    p = _plan_query(query, manifest)
    return replace(p, interval=p.interval_of())


def _plan_query(query: Query, manifest: Manifest) -> QueryPlan:
    k = manifest.max_rows_per_unit
    eps = query.epsilon
    cells = 1
    for g in query.group_by:
        cells *= len(manifest.column(g).categories)
    common = {"name": query.name, "statistic": query.statistic, "column": query.column,
              "group_by": tuple(query.group_by), "epsilon": eps}

    if query.statistic in ("count", "histogram"):
        sens = count_sensitivity(k) if query.statistic == "count" else histogram_sensitivity(k)
        b = laplace_scale(sens, eps)
        part = NoisePart("count", "discrete_laplace", eps, sens, b, discrete_laplace_expected_abs_error(b))
        if query.bins is not None:
            cells *= len(query.bins) - 1
        bounds = manifest.column(query.column).bounds if query.column else None
        return QueryPlan(**common, mechanism="discrete_laplace", sensitivity=sens, noise_scale=b,
                         expected_abs_error=part.expected_abs_error, parts=(part,), cells=cells,
                         bounds=tuple(float(v) for v in bounds) if bounds else None)

    lo, hi = (float(v) for v in manifest.column(query.column).bounds)
    if query.statistic == "sum":
        sens = sum_sensitivity(k, lo, hi)
        b = laplace_scale(sens, eps)
        part = NoisePart("sum", "laplace", eps, sens, b, laplace_expected_abs_error(b))
        return QueryPlan(**common, mechanism="laplace", sensitivity=sens, noise_scale=b,
                         expected_abs_error=b, parts=(part,), cells=cells, bounds=(lo, hi))

    if query.statistic == "mean":
        half = eps / 2  # exact in binary floating point; half + half == eps
        s_sens = shifted_sum_sensitivity(k, lo, hi)
        s_b = laplace_scale(s_sens, half)
        c_sens = count_sensitivity(k)
        c_b = laplace_scale(c_sens, half)
        parts = (NoisePart("shifted_sum", "laplace", half, s_sens, s_b, laplace_expected_abs_error(s_b)),
                 NoisePart("count", "discrete_laplace", half, c_sens, c_b,
                           discrete_laplace_expected_abs_error(c_b)))
        return QueryPlan(**common, mechanism="laplace+discrete_laplace", sensitivity=s_sens, noise_scale=s_b,
                         expected_abs_error=None, parts=parts, cells=cells, bounds=(lo, hi))

    if query.statistic == "quantile":
        num, den = quantile_alpha(query.q)
        sens = quantile_score_sensitivity(k, num, den)
        # Half for the value, a quarter for each interval end: exact in binary, so they add up to eps.
        half, quarter = eps / 2, eps / 4
        b = exponential_scale(sens, half)
        b_end = exponential_scale(sens, quarter)
        cands = quantile_candidates(lo, hi, manifest.column(query.column).type)
        parts = (NoisePart("selection", "exponential", half, sens, b, None),
                 NoisePart("lower", "exponential", quarter, sens, b_end, None),
                 NoisePart("upper", "exponential", quarter, sens, b_end, None))
        return QueryPlan(**common, mechanism="exponential", sensitivity=sens, noise_scale=b,
                         expected_abs_error=None, parts=parts, cells=cells, bounds=(lo, hi),
                         candidates=cands, alpha=(num, den))

    raise ValueError(f"unknown statistic {query.statistic!r}")

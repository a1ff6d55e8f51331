"""Program mode's DP accounting: sample-and-aggregate (GUPT, Mohan et al. SIGMOD 2012)
over k blocks, all public arithmetic on the contract and the manifest.

Accounting (m outputs, epsilon split evenly, eps_j = epsilon / m; basic composition)
    mean:   (1/k) * sum of k clamped values. Replacing one value moves it by at most
            (U - L) / k, so Laplace noise of scale b = (U - L) / (k * eps_j) gives eps_j.
            OpenDP's make_mean adds a tiny allowance for floating-point rounding, so the
            released scale can exceed this closed form by about 1e-12 relative.
            E|noise| = b; 95% of draws lie within b * ln(20) ~ 3b.
    median: OpenDP's make_private_quantile (alpha = 1/2) over a public grid of 1001
            candidates spanning [L, U], on the vector of known size k. Its privacy map
            gives eps = 2 / b for one replaced value, so b = 2 / eps_j. The score of a
            candidate is about twice its rank distance from the median, and the
            selection misses the best score by more than b * (ln 1001 + t) with
            probability at most e^-t, so with 95% probability the released value lies
            within r = b * (ln 1001 + ln 20) / 2 ranks of the median of the k block
            values (rank_error_95). It does not depend on the range, but it is useless
            unless r is well below k / 2.

How k, the ranges and epsilon trade accuracy (shown in the dry run)
    - Noise on a mean falls as 1 / (k * epsilon) and grows with the range width: halve
      the range or double k and the noise halves. With m outputs each gets epsilon / m,
      so every output's noise grows in proportion to m: ask only for what you need.
    - Larger k means smaller blocks. For averages of per-person quantities the estimate
      barely changes, but statistics computed on few rows (regression slopes, ratios,
      rare categories) become noisier or biased per block, and more blocks fail and
      contribute the default. GUPT's advice applies: pick blocks large enough that the
      statistic is stable on one block, then as many blocks as that allows.
    - Ranges too narrow clamp real block outputs (bias towards the bound); too wide add
      noise. Failing blocks pull the release towards the default vector.
    - The expected error covers the DP noise only, not the estimator's own error.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING

from sandbox.core.amounts import exact
from sandbox.core.manifest import Manifest

if TYPE_CHECKING:  # program.py imports this module; the spec is only a type here
    from sandbox.core.specs.program import ProgramSpec

MIN_K, MAX_K = 2, 1000
# 'auto': blocks of at least this many privacy units on the public size estimate, and
# DEFAULT_AUTO_K when there is no public estimate at all.
MIN_UNITS_PER_BLOCK = 100
DEFAULT_AUTO_K = 100
MEDIAN_CANDIDATES = 1001


# ------------------------------------------------------------------ choosing k

def public_unit_estimate(manifest: Manifest) -> int | None:
    """A public lower bound on the number of privacy units: the manifest's published row
    count over the rows a unit may own. Never the real count (see choose_k)."""
    rows = manifest.default_rows
    if isinstance(rows, bool) or not isinstance(rows, int) or rows <= 0:
        return None
    return rows // manifest.max_rows_per_unit


def choose_k(n_units_public_estimate: int | None, *, policy_k: int | None = None,
             min_units_per_block: int = MIN_UNITS_PER_BLOCK) -> int:
    """k for blocks: "auto", from public information only.

    The real number of units must not be used: it changes when one person is added or
    removed, and a k that changes would reshuffle every block, voiding the sensitivity
    bound. A data owner's policy value wins; else blocks of at least min_units_per_block
    units on the public estimate, within [MIN_K, MAX_K]."""
    if policy_k is not None:
        if isinstance(policy_k, bool) or not isinstance(policy_k, int) or not MIN_K <= policy_k <= MAX_K:
            raise ValueError(f"policy k must be an integer from {MIN_K} to {MAX_K}")
        return policy_k
    if n_units_public_estimate is None:
        return DEFAULT_AUTO_K
    return max(MIN_K, min(MAX_K, int(n_units_public_estimate) // min_units_per_block))


# ------------------------------------------------------------------ accounting

def split_epsilon(epsilon: float, parts: int) -> float:
    """epsilon / parts, rounded down until `parts` copies add up to at most epsilon
    exactly (basic composition must never overspend by an ulp), both as binary floats (what
    the mechanisms are built with) and as the ledger reads them (ledger.exact, the charge)."""
    e = epsilon / parts
    bound = min(Fraction(epsilon), exact(epsilon))
    while max(Fraction(e), exact(e)) * parts > bound:
        e = math.nextafter(e, 0.0)
    return e


def scale_at_least(numerator: float, epsilon: float) -> float:
    # numerator / epsilon, nudged up until numerator / scale <= epsilon exactly.
    scale = numerator / epsilon
    while Fraction(numerator) / Fraction(scale) > Fraction(epsilon):
        scale = math.nextafter(scale, math.inf)
    return scale


def mean_sensitivity(lower: float, upper: float, k: int) -> float:
    """Of the mean of k clamped block values when one block is replaced."""
    return (upper - lower) / k


def mean_noise_scale(lower: float, upper: float, k: int, epsilon: float) -> float:
    return scale_at_least(mean_sensitivity(lower, upper, k), epsilon)


def median_noise_scale(epsilon: float) -> float:
    """OpenDP's quantile on a vector of known size costs 2 / scale per replaced value."""
    return scale_at_least(2.0, epsilon)


def median_rank_error_95(scale: float, candidates: int = MEDIAN_CANDIDATES) -> float:
    return scale * (math.log(candidates) + math.log(20)) / 2


def median_candidates(lower: float, upper: float, n: int = MEDIAN_CANDIDATES,
                      include: tuple[float, ...] = ()) -> tuple[float, ...]:
    """Public, evenly spaced grid from lower to upper inclusive, plus `include` (the
    output's default): when many blocks return the default, it must be a candidate, or
    the scores of the grid points around it tie and the selection turns uniform."""
    step = (upper - lower) / (n - 1)
    grid = {lower + i * step for i in range(n - 1)} | {upper}
    grid |= {float(v) for v in include if lower <= v <= upper}
    return tuple(sorted(grid))


def expected_error(spec: ProgramSpec) -> dict:
    """The dry-run view: per output, mechanism, noise scale and expected error, from
    the contract alone. Shown before submission; nothing here depends on data."""
    eps_j = spec.epsilon_per_output
    outputs = []
    for o in spec.outputs:
        if o.aggregate == "mean":
            b = mean_noise_scale(o.lower, o.upper, spec.k, eps_j)
            outputs.append({"name": o.name, "aggregate": "mean", "mechanism": "laplace", "epsilon": eps_j,
                            "range": [o.lower, o.upper], "sensitivity": mean_sensitivity(o.lower, o.upper, spec.k),
                            "noise_scale": b, "expected_abs_error": b, "error_95": b * math.log(20)})
        else:
            b = median_noise_scale(eps_j)
            r = median_rank_error_95(b)
            outputs.append({"name": o.name, "aggregate": "median", "mechanism": "exponential", "epsilon": eps_j,
                            "range": [o.lower, o.upper], "sensitivity": None, "noise_scale": b,
                            "expected_abs_error": None, "rank_error_95": r,
                            "quantile_band_95": [max(0.0, 0.5 - r / spec.k), min(1.0, 0.5 + r / spec.k)]})
    return {"k": spec.k, "epsilon": spec.epsilon, "epsilon_per_output": eps_j, "composition": "basic",
            "outputs": outputs,
            "notes": ["Noise only: the estimator's own error on blocks of about 1/k of the data comes on top.",
                      "Mean noise falls as (upper - lower) / (k * epsilon per output); epsilon is split evenly "
                      "across outputs.",
                      "Blocks that fail, time out or return a wrong shape contribute the default vector, pulling "
                      "the release towards it.",
                      "A median is within rank_error_95 ranks (of k block values) of the blocks' median with 95% "
                      "probability."]}

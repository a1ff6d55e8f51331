"""The measurements of program mode's sample-and-aggregate: the mean or median of k
block values, one output at a time (sandbox.agent.aggregation validates and clamps the
vectors first). Each scale is the smallest, from the closed form nudged up, whose OpenDP
privacy map at d_in = 2 (one block replaced) is within epsilon.

Accounting and the reasoning behind it: sandbox.core.specs.program_accounting.
"""
from __future__ import annotations

import math
from fractions import Fraction

from sandbox.core.specs import program_accounting as prog
from sandbox.privacy.measurements import PrivacyAccountingError, load_opendp

MAX_SCALE_NUDGES = 200


def _within(loss, epsilon: float) -> bool:
    return Fraction(float(loss)) <= Fraction(epsilon)


def mean_measurement(lower: float, upper: float, k: int, epsilon: float):
    """clamp >> mean >> Laplace on a vector of exactly k floats, with the smallest scale
    (from the closed form, nudged up) whose OpenDP privacy map at d_in = 2 (one block
    replaced) is within epsilon. Returns (measurement, scale, sensitivity)."""
    dp = load_opendp()
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False), size=k)
    mean = dp.t.make_clamp(domain, dp.symmetric_distance(), (lower, upper)) >> dp.t.then_mean()
    # OpenDP's own sensitivity includes a floating-point rounding allowance above (U - L) / k.
    scale = prog.scale_at_least(float(mean.map(2)), epsilon)
    for _ in range(MAX_SCALE_NUDGES):
        meas = mean >> dp.m.then_laplace(scale)
        if _within(meas.map(2), epsilon):
            return meas, scale, float(mean.map(2))
        scale = math.nextafter(scale, math.inf)
    raise PrivacyAccountingError(f"no Laplace scale near {scale} meets epsilon {epsilon}")


def median_measurement(lower: float, upper: float, k: int, epsilon: float, default: float):
    """clamp >> OpenDP quantile (alpha 1/2) over the public candidate grid, vector of k.
    Returns (measurement, scale)."""
    dp = load_opendp()
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False), size=k)
    clamped = dp.t.make_clamp(domain, dp.symmetric_distance(), (lower, upper))
    scale = prog.median_noise_scale(epsilon)
    candidates = list(prog.median_candidates(lower, upper, include=(default,)))
    for _ in range(MAX_SCALE_NUDGES):
        meas = clamped >> dp.m.then_private_quantile(dp.max_divergence(), candidates=candidates, alpha=0.5,
                                                     scale=scale)
        if _within(meas.map(2), epsilon):
            return meas, scale
        scale = math.nextafter(scale, math.inf)
    raise PrivacyAccountingError(f"no quantile scale near {scale} meets epsilon {epsilon}")

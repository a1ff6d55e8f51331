"""The measurements of query mode: Laplace noise on counts and sums, exponential
selection of a quantile candidate. Each is checked with OpenDP's privacy map against
the closed-form accounting of sandbox.core.dp before it is returned."""
from __future__ import annotations

import functools


class PrivacyAccountingError(RuntimeError):
    """OpenDP's privacy map disagrees with the closed-form accounting or the budget:
    release nothing."""


def load_opendp():
    """opendp.prelude with the contrib features on. Imported on first use: the runner's
    other job kinds and the host's imports need none of it."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


@functools.cache
def _input_space(atom: str) -> tuple:
    """(input domain, input metric) of the measurements below. These are type descriptors
    only (no data, no scale): built once per process, since each costs ~0.3 ms in OpenDP's
    Python bindings, a third of an ungrouped count's release. The measurement itself,
    and its privacy-map check, is still built for every query."""
    dp = load_opendp()
    if atom == "i64":  # integer counts
        return dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64")
    if atom == "f64":  # sums of clamped values
        return dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float)
    if atom == "u64":  # quantile scores
        return dp.vector_domain(dp.atom_domain(T="u64")), dp.linf_distance(T="u64", monotonic=False)
    raise ValueError(f"no input space for {atom!r}")


def _checked(meas, d_in, epsilon: float):
    """OpenDP's own privacy map must confirm the closed-form accounting."""
    loss = meas.map(d_in)
    if not loss <= epsilon:
        raise PrivacyAccountingError(f"privacy map gives {loss} > epsilon {epsilon} at d_in={d_in}")
    return meas


def integer_laplace(scale: float, sensitivity: int, epsilon: float):
    """Discrete Laplace on a vector of integer counts (OpenDP make_laplace, i64)."""
    dp = load_opendp()
    meas = dp.m.make_laplace(*_input_space("i64"), scale=scale)
    return _checked(meas, int(sensitivity), epsilon)


def float_laplace(scale: float, sensitivity: float, epsilon: float):
    """Laplace on a vector of float sums (OpenDP make_laplace, f64)."""
    dp = load_opendp()
    meas = dp.m.make_laplace(*_input_space("f64"), scale=scale)
    return _checked(meas, float(sensitivity), epsilon)


def exponential_selection(scale: float, score_sensitivity: int, epsilon: float):
    """Noisy min over non-negative integer scores (OpenDP make_noisy_max, negate): for pure DP
    OpenDP adds exponential noise (permute-and-flip), at least as accurate as Gumbel noise."""
    dp = load_opendp()
    meas = dp.m.make_noisy_max(*_input_space("u64"), dp.max_divergence(), scale=scale, negate=True)
    return _checked(meas, int(score_sensitivity), epsilon)

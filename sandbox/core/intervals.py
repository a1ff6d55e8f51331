"""Noise intervals for released statistics: how far the added noise strays, from public facts only.

An interval depends on the mechanism and its noise scale, both printed in the release, never on
the data; so the UI can draw error bars on an operator's results without reading anything more.
"""
from __future__ import annotations

import math

# Two-sided 95% interval: the error bars on released statistics.
ERROR_BAR_LEVEL = 0.95


def noise_halfwidth(mechanism: str, scale: float, level: float = ERROR_BAR_LEVEL) -> float | None:
    """Half-width of the central `level` interval of the added noise, or None where the error
    depends on the data (mean, quantile), so no bar can be drawn from the scale alone.

    Laplace(b): P(|X| > t) = exp(-t/b), so t = b*ln(1/(1-level)). Discrete Laplace with
    P(x) ~ exp(-|x|/b), p = exp(-1/b): P(|X| > t) = 2p^(t+1)/(1+p); the smallest integer t with
    that at most 1-level."""
    if not scale or scale <= 0:
        return None
    tail = 1 - level
    if mechanism == "laplace":
        return scale * math.log(1 / tail)
    if mechanism == "discrete_laplace":
        p = math.exp(-1 / scale)
        t = math.log(tail * (1 + p) / 2) / math.log(p) - 1
        return float(max(0, math.ceil(t)))
    return None

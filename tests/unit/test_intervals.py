"""Error bars on released statistics come from the mechanism's public noise scale."""
from __future__ import annotations

import math

import pytest

from sandbox.core.intervals import noise_halfwidth


def test_laplace_error_bar_is_the_central_95_percent_interval():
    # P(|X| > t) = exp(-t/b) for Laplace(b): 5 % at t = b ln 20.
    assert noise_halfwidth("laplace", 2.0) == pytest.approx(2.0 * math.log(20))


@pytest.mark.parametrize("scale", [0.3, 1.0, 16.67, 250.0])
def test_discrete_laplace_error_bar_is_the_smallest_integer_covering_95_percent(scale):
    p = math.exp(-1 / scale)
    t = noise_halfwidth("discrete_laplace", scale)
    tail = lambda k: 2 * p ** (k + 1) / (1 + p)  # noqa: E731 - P(|X| > k)
    assert t == int(t) and tail(t) <= 0.05 + 1e-12
    assert t == 0 or tail(t - 1) > 0.05


def test_no_error_bar_where_the_error_depends_on_the_data():
    assert noise_halfwidth("exponential", 3.0) is None
    assert noise_halfwidth("laplace+discrete_laplace", 3.0) is None


def test_no_error_bar_without_a_positive_scale():
    assert noise_halfwidth("laplace", 0.0) is None
    assert noise_halfwidth("discrete_laplace", -1.0) is None

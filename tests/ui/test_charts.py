"""Chart geometry: round axis ticks, and error bars that span the noise interval around each value."""
from __future__ import annotations

import pytest

from sandbox.controller.web.ui.charts import bar_chart, consumption_chart, nice_ticks, release_chart
from sandbox.core.intervals import noise_halfwidth


def test_axis_ticks_are_round_and_inside_the_range():
    assert nice_ticks(0, 4160) == [0, 1000, 2000, 3000, 4000]
    assert nice_ticks(-651784.5, 4889470.5) == [0, 2000000, 4000000]


def test_a_released_count_gets_an_error_bar_of_the_noise_halfwidth_around_its_value():
    table = {"name": "visits", "statistic": "count", "group_by": ["region"], "columns": ["region", "count"],
             "mechanism": "discrete_laplace", "noise_scale": 2.0, "rows": [["north", 120], ["south", 80]]}
    out = release_chart(table)
    half = noise_halfwidth("discrete_laplace", 2.0)
    assert out["halfwidth"] == half and [b["label"] for b in out["bars"]] == ["north", "south"]
    north = out["chart"]["rows"][0]
    # The bar's end is the value; the error bar is centred on it.
    assert north["x"] + north["w"] == pytest.approx((north["ex0"] + north["ex1"]) / 2)
    assert north["ex0"] < north["x"] + north["w"] < north["ex1"]


def test_a_quantile_error_bar_spans_its_released_interval_not_a_symmetric_one():
    table = {"name": "median_cost", "statistic": "quantile", "group_by": [], "mechanism": "exponential",
             "noise_scale": 3.0, "columns": ["quantile", "quantile_lower", "quantile_upper"],
             "rows": [[300.0, 0.0, 8200.0]]}
    out = release_chart(table)
    row = out["chart"]["rows"][0]
    # from the released lower end (0, where the axis starts) to the upper one, never below 0
    assert row["ex0"] == pytest.approx(out["chart"]["zero"]) and row["ex1"] > row["x"] + row["w"]
    assert out["bars"][0]["lo"] == 0.0 and out["bars"][0]["hi"] == 8200.0


def test_no_error_bar_is_drawn_where_the_error_depends_on_the_data():
    table = {"name": "median_age", "statistic": "quantile", "mechanism": "exponential", "noise_scale": 3.0,
             "rows": [[41.0]]}
    row = release_chart(table)["chart"]["rows"][0]
    assert "ex0" not in row and row["label"] == "median_age"
    assert bar_chart([]) == {"height": 0, "rows": []}


def test_consumption_chart_stacks_reserved_on_charged_under_the_per_period_line():
    periods = [{"period_start": "all", "operator": "op", "epsilon_charged": 1.0, "epsilon_reserved": 0.5}]
    chart = consumption_chart(periods, per_period=2.0, all_time_label="全部")
    bar = chart["rows"][0]
    assert chart["labels"][0]["text"] == "全部"
    assert bar["ry"] + bar["rh"] == pytest.approx(bar["y"])      # reserved sits on top of charged
    assert chart["limit_y"] < bar["ry"] < chart["base"]           # both below the allowance line

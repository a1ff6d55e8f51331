"""The utility preview (issue 17): each query's 95% interval next to a typical cell, assumed
from the public manifest alone, with a warning where the noise may swamp the signal."""
from __future__ import annotations

import json
import math

import pytest
import yaml

from sandbox import datagen
from sandbox.config import REPO_ROOT
from sandbox.core import dp, utility
from sandbox.core.manifest import parse_manifest
from sandbox.core.specs.query import parse_query_spec
from tests.unit.test_budget_sharing import services

HEALTH = REPO_ROOT / "datasets" / "health_visits.yaml"


def manifest(**changes):
    raw = yaml.safe_load(HEALTH.read_text(encoding="utf-8"))
    raw.update(changes)
    return parse_manifest({k: v for k, v in raw.items() if v is not None})


def preview(query: dict, m=None) -> dict:
    m = m or manifest()
    spec = parse_query_spec({"mode": "query", "dataset": "health_visits", "purpose": "public_health_planning",
                             "queries": [{"name": "q", **query}]}, m)
    return utility.preview(dp.plan(spec, m)[0], m)


def test_a_count_is_set_against_the_public_rows_spread_over_its_cells():
    u = preview({"statistic": "count", "group_by": ["district"], "epsilon": 0.3})
    assert u["assumed_rows"] == 1_000_000 and u["reference"] == "count"
    assert u["typical_cell_rows"] == pytest.approx(1_000_000 / 14)
    assert u["relative"] == pytest.approx(50.0 / (1_000_000 / 14))   # 95% half-width 50 (k=5, ε 0.3)
    assert u["level"] == "ok" and u["advice"] == []


def test_a_smaller_published_row_count_gives_a_larger_relative_error():
    big = preview({"statistic": "count", "group_by": ["district"], "epsilon": 0.3})
    small = preview({"statistic": "count", "group_by": ["district"], "epsilon": 0.3}, manifest(default_rows=10_000))
    assert small["assumed_rows"] == 10_000 and small["relative"] == pytest.approx(100 * big["relative"])


def test_without_default_rows_the_preview_assumes_the_manifest_default():
    u = preview({"statistic": "count", "epsilon": 0.3}, manifest(default_rows=None))
    assert u["assumed_rows"] == utility.DEFAULT_ROWS == 1_000_000


def test_a_sum_is_set_against_the_typical_count_times_the_bounds_midpoint():
    u = preview({"statistic": "sum", "column": "cost", "group_by": ["district", "sex"], "epsilon": 0.2})
    typical = 1_000_000 / 28 * 5_000          # cost bounds [0, 10000]
    assert u["reference"] == "sum" and u["reference_value"] == pytest.approx(typical)
    assert u["relative"] == pytest.approx(250_000 * math.log(20) / typical)
    assert utility.typical_value(-100, 100) == 50   # midpoint 0: a quarter of the width


def test_a_mean_and_a_quantile_are_set_against_the_range_of_their_bounds():
    mean = preview({"statistic": "mean", "column": "cost", "group_by": ["district"], "epsilon": 0.3})
    median = preview({"statistic": "quantile", "column": "cost", "q": 0.5, "epsilon": 0.1})
    for u in (mean, median):
        assert u["reference"] == "range" and u["reference_value"] == 10_000
        assert 0 < u["relative"] < 0.01 and u["level"] == "ok"
    # A mean over cells of a few rows: the count's noise dominates and the interval covers the range.
    tiny = preview({"statistic": "mean", "column": "cost", "group_by": ["district"], "epsilon": 0.3},
                   manifest(default_rows=140))
    assert tiny["relative"] == 1.0 and tiny["level"] == "swamped"


def test_many_cells_at_a_small_epsilon_warn_and_say_what_to_do():
    # 20 diagnosis groups x 50 age bins = 1,000 cells at ε 0.05: ± 300 rows on about 1,000.
    hist = preview({"statistic": "histogram", "column": "age", "bins": list(range(0, 101, 2)),
                    "group_by": ["diagnosis_group"], "epsilon": 0.05})
    assert hist["typical_cell_rows"] == 1000 and hist["relative"] == pytest.approx(0.3)
    assert hist["level"] == "noticeable"
    assert hist["advice"] == ["fewer_groups", "coarser_categories", "fewer_bins", "more_epsilon"]
    means = preview({"statistic": "mean", "column": "cost", "group_by": ["district", "sex", "diagnosis_group"],
                     "epsilon": 0.05})
    assert means["relative"] > utility.SWAMPED and means["level"] == "swamped"
    assert "fewer_groups" in means["advice"] and "more_epsilon" in means["advice"]
    # The same query with few cells and more ε is fine.
    assert preview({"statistic": "mean", "column": "cost", "epsilon": 1})["level"] == "ok"


@pytest.mark.parametrize("relative, level", [(None, "ok"), (0.1, "ok"), (0.11, "noticeable"), (0.5, "noticeable"),
                                             (0.51, "swamped"), (30.0, "swamped")])
def test_levels(relative, level):
    assert utility.level_of(relative) == level


def test_the_dry_run_never_depends_on_the_registered_row_count(tmp_path):
    """Two sandboxes holding 237 and 761 real rows give the same dry run, utility and all."""
    spec = json.loads((REPO_ROOT / "jobs" / "health_query.json").read_text(encoding="utf-8"))
    docs = []
    for rows in (237, 761):
        data = tmp_path / f"data{rows}" / "health_visits"
        datagen.generate(datagen.load_manifest(HEALTH), rows, data, seed=3)
        svc = services(tmp_path / f"svc{rows}", data)
        with svc.parts.repo.transaction() as tx:
            assert tx.dataset("health_visits").rows == rows    # the real count differs...
        doc = svc.operator.submit(svc.accounts.user("operator"), spec, dry_run=True)
        assert all(q["utility"]["assumed_rows"] == 1_000_000 for q in doc["queries"])
        docs.append(doc["queries"])
    assert docs[0] == docs[1]                                   # ...the preview does not
    for q in docs[0]:
        assert not {237, 761} & {v for v in q["utility"].values() if isinstance(v, (int, float))}

"""The release gate accepts a query table only in the shape its spec implies: keys, value and
the value's 95% interval around it; counts non-negative integers."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from sandbox.core.manifest import parse_manifest
from sandbox.core.release.gate import FAIL, PASS, check_query_result, expected_columns

REPO = Path(__file__).resolve().parents[2]

SPEC = {"mode": "query", "dataset": "health_visits", "purpose": "p", "queries": [
    {"name": "n", "statistic": "count", "column": None, "group_by": ["sex"], "epsilon": 0.5},
    {"name": "h", "statistic": "histogram", "column": "age", "group_by": [], "epsilon": 0.5, "bins": [0, 50, 100]},
    {"name": "m", "statistic": "mean", "column": "cost", "group_by": [], "epsilon": 0.5},
    {"name": "q", "statistic": "quantile", "column": "cost", "group_by": [], "epsilon": 0.5, "q": 0.5}]}

GOOD = {"tables": [
    {"name": "n", "columns": ["sex", "count", "count_lower", "count_upper"], "rows": [["F", 10, 4, 16], ["M", 0, 0, 5]]},
    {"name": "h", "columns": ["bin_lower", "bin_upper", "count", "count_lower", "count_upper"],
     "rows": [[0, 50, 3, 0, 9], [50, 100, 7, 1, 13]]},
    {"name": "m", "columns": ["mean", "mean_lower", "mean_upper"], "rows": [[120.5, 80.0, 200.25]]},
    {"name": "q", "columns": ["quantile", "quantile_lower", "quantile_upper"], "rows": [[95.0, 60.0, 130.0]]}]}


@pytest.fixture(scope="module")
def manifest():
    return parse_manifest(yaml.safe_load((REPO / "datasets" / "health_visits.yaml").read_text(encoding="utf-8")))


def test_expected_columns_put_the_interval_next_to_the_value():
    assert expected_columns(SPEC["queries"][0]) == ["sex", "count", "count_lower", "count_upper"]
    assert expected_columns(SPEC["queries"][3]) == ["quantile", "quantile_lower", "quantile_upper"]


def test_a_well_formed_release_passes(manifest):
    checks, parsed = check_query_result(json.dumps(GOOD).encode(), SPEC, manifest)
    assert parsed is not None and all(c.status == PASS for c in checks)


def _mutated(path, value):
    out = copy.deepcopy(GOOD)
    t = out["tables"][path[0]]
    if path[1] == "columns":
        t["columns"] = value
    else:
        t["rows"][path[1]][path[2]] = value
    return out


@pytest.mark.parametrize("bad", [
    _mutated((0, "columns"), ["sex", "count"]),                                  # interval dropped
    _mutated((0, "columns"), ["sex", "count", "count_lower", "count_upper", "x"]),  # extra column
    _mutated((0, "columns"), ["sex", "count", "lo", "hi"]),                      # renamed
    _mutated((0, 0, 1), -1),                                                      # negative count
    _mutated((0, 0, 1), 10.5),                                                    # count not an integer
    _mutated((0, 0, 2), 11),                                                      # value below its interval
    _mutated((1, 1, 4), float("nan")),                                            # not finite
    _mutated((2, 0, 2), "wide"),                                                  # text in a number column
    _mutated((2, 0, 1), 500.0),                                                   # mean above its upper bound
    _mutated((3, "columns"), ["quantile"]),                                       # quantile interval dropped
    _mutated((3, 0, 1), 100.0),                                                   # quantile above its lower end
    _mutated((0, 0, 0), "X"),                                                     # not a public key
])
def test_anything_else_is_refused(manifest, bad):
    raw = json.dumps(bad, allow_nan=True).encode()
    checks, parsed = check_query_result(raw, SPEC, manifest)
    assert parsed is None and checks[-1].status == FAIL

"""Reviewed mode's trusted tables and models: the spec's refusals name the field, and each
disclosure rule decides from the statistics trusted code computed (sandbox.core.release.trusted)."""
from __future__ import annotations

import copy
import csv
import io

import pytest

from sandbox.core.errors import InvalidInput
from sandbox.core.manifest import parse_manifest
from sandbox.core.release.checks import FAIL, NEEDS_REVIEW, PASS
from sandbox.core.release.differencing import ReleasedAggregate
from sandbox.core.release.trusted import Rules, judge_model, judge_table, released_aggregate
from sandbox.core.specs.reviewed import parse_reviewed_spec

MANIFEST = parse_manifest({
    "name": "firms", "classification": "L2", "privacy_unit": "firm_id", "max_rows_per_unit": 3,
    "columns": [
        {"name": "firm_id", "type": "int64", "kind": "identifier"},
        {"name": "region", "type": "string", "kind": "categorical", "categories": ["north", "south"]},
        {"name": "size", "type": "string", "kind": "categorical", "categories": ["small", "large"]},
        {"name": "year", "type": "int64", "kind": "categorical", "categories": [2023, 2024]},
        {"name": "turnover", "type": "float64", "kind": "numeric", "bounds": [-1000, 100000]},
        {"name": "exporter", "type": "bool", "kind": "categorical", "categories": [False, True]},
        {"name": "opened", "type": "date", "kind": "date", "bounds": ["1990-01-01", "2024-12-31"]},
        {"name": "name", "type": "string", "kind": "text"},
    ]})

TABLES_ONLY = {"mode": "reviewed", "dataset": "firms", "purpose": "regional statistics",
               "tables": [{"name": "by_region", "group_by": ["region"], "aggregates": [{"statistic": "count"}]}],
               "models": [{"name": "m", "family": "ols", "dependent": "turnover", "regressors": ["region", "year"]}]}


def spec(**changes):
    data = copy.deepcopy(TABLES_ONLY)
    data.update(changes)
    return parse_reviewed_spec(data, MANIFEST, code=None)


# --- the spec --------------------------------------------------------------------------------

def test_a_job_of_tables_and_models_needs_no_program_and_round_trips():
    s = spec()
    assert not s.has_program and s.has_computations
    assert [t.file_name for t in s.tables] == ["by_region.csv"] and s.models[0].file_name == "m.json"
    assert parse_reviewed_spec(s.to_dict(), MANIFEST, code="") == s
    assert s.tables[0].kind == "frequency"
    assert spec(tables=[{"name": "t", "aggregates": [{"statistic": "sum", "column": "turnover"}]}]).tables[0].kind \
        == "magnitude"


BAD_SPECS = [
    ({"tables": None, "models": None}, "tables", "declare the tables"),
    ({"tables": [{"name": "t", "group_by": ["turnover"], "aggregates": [{"statistic": "count"}]}]},
     "tables[0].group_by", "not a categorical column"),
    ({"tables": [{"name": "t", "group_by": ["region", "region"], "aggregates": [{"statistic": "count"}]}]},
     "tables[0].group_by", "listed twice"),
    ({"tables": [{"name": "t", "aggregates": [{"statistic": "max", "column": "turnover"}]}]},
     "tables[0].aggregates[0].statistic", "not supported"),
    ({"tables": [{"name": "t", "aggregates": [{"statistic": "sum"}]}]},
     "tables[0].aggregates[0].column", "not a numeric column"),
    ({"tables": [{"name": "t", "aggregates": [{"statistic": "mean", "column": "region"}]}]},
     "tables[0].aggregates[0].column", "not a numeric column"),
    ({"tables": [{"name": "t", "aggregates": [{"statistic": "count", "column": "turnover"}]}]},
     "tables[0].aggregates[0].column", "count takes no column"),
    ({"tables": [{"name": "t", "aggregates": []}]}, "tables[0].aggregates", "1 to 8 aggregates"),
    ({"tables": [{"name": "t", "aggregates": [{"statistic": "count"}], "colour": "red"}]},
     "tables[0].colour", "unknown key"),
    ({"tables": [{"name": "t", "aggregates": [{"statistic": "count"}],
                  "where": [{"column": "firm_id", "op": "==", "value": 7}]}]},
     "tables[0].where[0].column", "not a column you may filter on"),
    ({"tables": [{"name": "t", "aggregates": [{"statistic": "count"}],
                  "where": [{"column": "name", "op": "==", "value": "ACME"}]}]},
     "tables[0].where[0].column", "not a column you may filter on"),
    ({"tables": [{"name": "t", "aggregates": [{"statistic": "count"}],
                  "where": [{"column": "region", "op": "in", "value": ["east"]}]}]},
     "tables[0].where[0].value", "categories of 'region'"),
    ({"tables": [{"name": "t", "aggregates": [{"statistic": "count"}],
                  "where": [{"column": "region", "op": "<", "value": "north"}]}]},
     "tables[0].where[0].op", "not an operator"),
    ({"tables": [{"name": "t", "aggregates": [{"statistic": "count"}],
                  "where": [{"column": "turnover", "op": ">", "value": "big"}]}]},
     "tables[0].where[0].value", "finite number"),
    ({"tables": [{"name": "t", "aggregates": [{"statistic": "count"}],
                  "where": [{"column": "opened", "op": ">", "value": "yesterday"}]}]},
     "tables[0].where[0].value", "YYYY-MM-DD"),
    ({"tables": [{"name": "t", "aggregates": [{"statistic": "count"}], "mitigation": "blur"}]},
     "tables[0].mitigation", "suppress"),
    ({"tables": [{"name": "t", "aggregates": [{"statistic": "count"}], "round_base": 5}]},
     "tables[0].round_base", "with mitigation round"),
    ({"tables": [{"name": "t", "aggregates": [{"statistic": "count"}]},
                 {"name": "t", "aggregates": [{"statistic": "count"}]}]}, "tables[1].name", "unique"),
    ({"tables": [{"name": "bad name", "aggregates": [{"statistic": "count"}]}]}, "tables[0].name", "letters"),
    ({"models": [{"name": "m", "family": "tobit", "dependent": "turnover", "regressors": ["region"]}]},
     "models[0].family", "ols, logit, probit"),
    ({"models": [{"name": "m", "family": "logit", "dependent": "turnover", "regressors": ["region"]}]},
     "models[0].dependent", "not a 0/1 column"),
    ({"models": [{"name": "m", "family": "ols", "dependent": "region", "regressors": ["year"]}]},
     "models[0].dependent", "not a numeric column"),
    ({"models": [{"name": "m", "family": "ols", "dependent": "turnover", "regressors": ["firm_id"]}]},
     "models[0].regressors[0]", "not a numeric or categorical column"),
    ({"models": [{"name": "m", "family": "ols", "dependent": "turnover", "regressors": ["turnover"]}]},
     "models[0].regressors[0]", "other than the dependent"),
    ({"models": [{"name": "m", "family": "ols", "dependent": "turnover", "regressors": []}]},
     "models[0].regressors", "1 to 20 columns"),
    ({"models": [{"name": "by_region", "family": "ols", "dependent": "turnover", "regressors": ["year"]}],
      "outputs": [{"name": "by_region.csv", "type": "csv", "table_kind": "other"}]}, "tables", "produced twice"),
]


@pytest.mark.parametrize("changes, field, words", BAD_SPECS, ids=[b[1] + ":" + b[2] for b in BAD_SPECS])
def test_bad_tables_and_models_are_refused_naming_the_field(changes, field, words):
    data = copy.deepcopy(TABLES_ONLY)
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not None}
    code = "def analyse(df, out):\n    pass\n" if "outputs" in data else None
    with pytest.raises(InvalidInput) as e:
        parse_reviewed_spec(data, MANIFEST, code=code)
    assert e.value.field == field and words in str(e.value), (e.value.field, str(e.value))


def test_code_without_declared_outputs_is_refused():
    with pytest.raises(InvalidInput) as e:
        parse_reviewed_spec(TABLES_ONLY, MANIFEST, code="def analyse(df, out):\n    pass\n")
    assert e.value.field == "outputs"


def test_logit_takes_a_bool_dependent_and_filters_take_public_values():
    s = spec(models=[{"name": "m", "family": "logit", "dependent": "exporter", "regressors": ["turnover", "size"],
                      "where": [{"column": "year", "op": "==", "value": 2024},
                                {"column": "opened", "op": ">=", "value": "2000-01-01"}]}])
    assert s.models[0].dependent == "exporter" and len(s.models[0].where) == 2


# --- the rules on trusted statistics ----------------------------------------------------------

def cell(key, rows, units=None, values=None, **magnitude):
    units = rows if units is None else units
    return {"key": list(key), "rows": rows, "units": units, "values": values if values is not None else [rows],
            "magnitude": {col: {"n": m[0], "total": m[1], "top1": m[2], "top2": m[3],
                                "n_negative": m[4] if len(m) > 4 else 0, "all_same": m[5] if len(m) > 5 else False}
                          for col, m in magnitude.items()}}


def table_spec(aggregates=None, group_by=("region",), **extra):
    t = {"name": "t", "group_by": list(group_by), "aggregates": aggregates or [{"statistic": "count"}], **extra}
    return spec(tables=[t]).tables[0]


def judged(cells, aggregates=None, group_by=("region",), rules=Rules(), previous=(), **extra):
    t = table_spec(aggregates, group_by, **extra)
    result = {"name": "t", "group_by": list(group_by),
              "columns": list(group_by) + [a.label for a in t.aggregates], "cells": cells}
    return judge_table(t, result, rules, version="v1", previous=list(previous))


def status(j, rule):
    return next(c for c in j.checks if c.name == f"{rule}:t.csv").status


def test_threshold_counts_units_not_rows_and_ten_passes():
    # 30 rows from 9 firms is a cell of 9 contributors: it fails though its visible count is 30.
    j = judged([cell(["north"], 30, units=9), cell(["south"], 10)])
    check = next(c for c in j.checks if c.name == "min_cell_count:t.csv")
    assert check.status == FAIL and "(north)" in check.explanation and "(south)" not in check.explanation
    assert status(judged([cell(["north"], 10), cell(["south"], 11)]), "min_cell_count") == PASS
    assert status(judged([cell(["north"], 5), cell(["south"], 11)], rules=Rules(threshold=5)), "min_cell_count") \
        == PASS


def test_threshold_counts_the_units_behind_each_magnitude_column():
    # 40 firms in the cell, but only 4 of them have a turnover: its sum stands for 4 firms.
    few = cell(["north"], 40, values=[40, 100.0], turnover=(4, 100.0, 30.0, 30.0))
    many = cell(["south"], 40, values=[40, 400.0], turnover=(40, 400.0, 30.0, 30.0))
    check = next(c for c in judged([few, many], SUM).checks if c.name == "min_cell_count:t.csv")
    assert check.status == FAIL and "(north)" in check.explanation and "(south)" not in check.explanation


def test_zero_cells_are_disclosive_unless_the_rules_say_otherwise():
    cells = [cell(["north"], 0), cell(["south"], 20)]
    assert status(judged(cells), "zero_cells") == FAIL
    assert status(judged(cells, rules=Rules(zeros_are_disclosive=False)), "zero_cells") == PASS


SUM = [{"statistic": "count"}, {"statistic": "sum", "column": "turnover"}]


def test_nk_dominance_two_units_at_ninety_percent():
    # total 1000: the two largest 899 (< 90%) pass, 900 (= 90%) fail, as ACRO's >= k.
    ok = cell(["north"], 12, values=[12, 1000.0], turnover=(12, 1000.0, 800.0, 99.0))
    bad = cell(["south"], 12, values=[12, 1000.0], turnover=(12, 1000.0, 800.0, 100.0))
    j = judged([ok, bad], SUM)
    check = next(c for c in j.checks if c.name == "dominance_nk:t.csv")
    assert check.status == FAIL and "(south)" in check.explanation and "(north)" not in check.explanation


def test_p_percent_rule_at_ten_percent():
    # (total - top1 - top2) / top1: 9/100 < 10% fails, 10/100 passes.
    bad = cell(["north"], 12, values=[12, 139.0], turnover=(12, 139.0, 100.0, 30.0))
    ok = cell(["south"], 12, values=[12, 140.0], turnover=(12, 140.0, 100.0, 30.0))
    check = next(c for c in judged([bad, ok], SUM).checks if c.name == "dominance_p:t.csv")
    assert check.status == FAIL and "(north)" in check.explanation and "(south)" not in check.explanation


def test_negative_contributions_go_to_review_and_identical_values_fail():
    neg = cell(["north"], 12, values=[12, 10.0], turnover=(12, 10.0, 50.0, 40.0, 3))
    same = cell(["south"], 12, values=[12, 120.0], turnover=(12, 120.0, 10.0, 10.0, 0, True))
    j = judged([neg, same], SUM)
    assert status(j, "negative_values") == NEEDS_REVIEW
    assert status(j, "dominance_nk") == PASS        # not assessed where negative, as ACRO
    assert status(j, "values_same") == FAIL


def test_suppression_empties_failing_cells_and_asks_a_person():
    cells = [cell(["north"], 3), cell(["south"], 40)]
    j = judged(cells, mitigation="suppress")
    assert status(j, "min_cell_count") == PASS and status(j, "suppression") == NEEDS_REVIEW
    rows = list(csv.reader(io.StringIO(j.content)))
    assert rows == [["region", "count"], ["north", ""], ["south", "40"]]
    assert j.released.cells == {("south",): 40.0}
    assert [c["suppressed"] for c in j.statistics["cells"]] == [True, False]
    assert status(judged(cells), "min_cell_count") == FAIL


def test_rounding_sends_small_counts_to_review_but_not_dominance():
    small = cell(["north"], 3, values=[3, 52.0], turnover=(3, 52.0, 30.0, 12.0))
    dominated = cell(["south"], 40, values=[40, 1000.0], turnover=(40, 1000.0, 990.0, 1.0))
    j = judged([small, dominated], SUM, mitigation="round", round_base=5)
    assert status(j, "min_cell_count") == NEEDS_REVIEW and status(j, "rounding") == NEEDS_REVIEW
    assert status(j, "dominance_nk") == FAIL
    assert list(csv.reader(io.StringIO(j.content)))[1:] == [["north", "5", "50"], ["south", "40", "1000"]]


def test_forbidden_columns_of_the_policy_fail():
    j = judged([cell(["north"], 20), cell(["south"], 20)], rules=Rules(forbidden_columns=frozenset({"Region"})))
    assert status(j, "forbidden_columns") == FAIL


def test_differencing_uses_the_trusted_keys_against_earlier_releases():
    earlier = ReleasedAggregate("v1", ("region",), {("north",): 40.0, ("south",): 55.0}, label="job A")
    j = judged([cell(["north"], 37), cell(["south"], 55)], previous=[earlier])
    check = next(c for c in j.checks if c.name == "differencing:t.csv")
    assert check.status == FAIL and "(north)" in check.explanation and "job A" in check.explanation
    other_version = ReleasedAggregate("v0", ("region",), {("north",): 40.0}, label="old")
    assert status(judged([cell(["north"], 37), cell(["south"], 55)], previous=[other_version]), "differencing") == PASS


def test_the_released_counts_read_back_for_recording():
    s = spec(tables=[{"name": "t", "group_by": ["region", "year"], "aggregates": [{"statistic": "count"}],
                      "mitigation": "suppress"}])
    cells = [cell(["north", 2023], 12), cell(["north", 2024], 2), cell(["south", 2023], 0), cell(["south", 2024], 30)]
    result = {"name": "t", "group_by": ["region", "year"], "columns": ["region", "year", "count"], "cells": cells}
    j = judge_table(s.tables[0], result, Rules(), version="v1", previous=[])
    agg = released_aggregate(s, "t.csv", j.content, "v1")
    assert agg.grouping == ("region", "year") and agg.cells == {("north", "2023"): 12.0, ("south", "2024"): 30.0}
    assert released_aggregate(s, "other.csv", j.content, "v1") is None


def test_a_table_trusted_code_could_not_compute_fails():
    t = table_spec()
    j = judge_table(t, {"name": "t", "error": "MemoryError"}, Rules(), version="v1", previous=[])
    assert j.content is None and j.checks[0].status == FAIL and "MemoryError" in j.checks[0].explanation


def model_result(df_resid, levels=None, **extra):
    return {"name": "m", "family": "ols", "dependent": "turnover", "regressors": ["region", "year"], "nobs": 40,
            "units": 40, "df_model": 2.0, "df_resid": df_resid,
            "coefficients": [{"term": "const", "coef": 1.0, "std_err": 0.1, "statistic": 10.0, "p_value": 0.0,
                              "ci_lower": 0.8, "ci_upper": 1.2}],
            "fit": {"r_squared": 0.5}, "levels": levels or {"region": {"north": 20, "south": 20}}, **extra}


@pytest.mark.parametrize("df_resid, expected", [(9.0, FAIL), (10.0, PASS), (500.0, PASS)])
def test_model_degrees_of_freedom_come_from_trusted_code(df_resid, expected):
    j = judge_model(spec().models[0], model_result(df_resid), Rules())
    assert next(c for c in j.checks if c.name == "degrees_of_freedom:m.json").status == expected
    assert '"df_resid"' in j.content and "levels" not in j.content   # level sizes stay with compliance


def test_a_dummy_of_few_units_fails_and_fit_warnings_need_review():
    j = judge_model(spec().models[0], model_result(500.0, levels={"region": {"north": 3, "south": 37}},
                                                   warnings=["ConvergenceWarning"]), Rules())
    by = {c.name.split(":")[0]: c for c in j.checks}
    assert by["regressor_levels"].status == FAIL and "(region, north)" in by["regressor_levels"].explanation
    assert by["fit_warnings"].status == NEEDS_REVIEW

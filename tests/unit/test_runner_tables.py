"""The trusted computations of reviewed mode (sandbox.runner.tables) on real data shipped with
statsmodels: Longley (NIST's certified OLS results) and Spector & Mazzeo (Greene's logit and
probit), plus the per-cell statistics on a small crafted frame and on Parquet with null units."""
from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sandbox.core.manifest import parse_manifest
from sandbox.core.specs.computations import parse_computations
from sandbox.runner.tables import model_result, run_trusted_tables, table_result


def numeric(name, lo=-1e9, hi=1e9):
    return {"name": name, "type": "float64", "kind": "numeric", "bounds": [lo, hi]}


def manifest_of(name, columns):
    return {"name": name, "classification": "L2", "privacy_unit": "unit", "max_rows_per_unit": 1,
            "columns": [{"name": "unit", "type": "int64", "kind": "identifier"}, *columns]}


def with_units(df):
    return df.reset_index(drop=True).assign(unit=range(len(df)))


def models(manifest, *specs):
    return parse_computations({"models": list(specs)}, parse_manifest(manifest))[1]


def test_ols_on_longley_matches_nist_certified_values_and_reports_df_resid_nine():
    from statsmodels.datasets import longley
    df = with_units(longley.load_pandas().data)
    regs = ["GNPDEFL", "GNP", "UNEMP", "ARMED", "POP", "YEAR"]
    man = manifest_of("longley", [numeric(c) for c in ["TOTEMP", *regs]])
    (m,) = models(man, {"name": "longley", "family": "ols", "dependent": "TOTEMP", "regressors": regs})
    r = model_result(df, m, parse_manifest(man))
    coef = {c["term"]: c for c in r["coefficients"]}
    # NIST StRD Longley certified values.
    assert coef["const"]["coef"] == pytest.approx(-3482258.63459582, rel=1e-8)
    assert coef["YEAR"]["coef"] == pytest.approx(1829.15146461355, rel=1e-8)
    assert coef["GNPDEFL"]["coef"] == pytest.approx(15.0618722713733, rel=1e-7)
    assert coef["const"]["std_err"] == pytest.approx(890420.383607373, rel=1e-7)
    assert r["fit"]["r_squared"] == pytest.approx(0.995479004577296, rel=1e-10)
    # 16 years, 7 parameters: 9 residual degrees of freedom, under ACRO's threshold of 10.
    assert (r["nobs"], r["df_resid"]) == (16, 9.0)


@pytest.mark.parametrize("family, expected", [
    ("logit", {"const": -13.0213, "GPA": 2.8261, "TUCE": 0.0952, "PSI": 2.3787}),
    ("probit", {"const": -7.4523, "GPA": 1.6258, "TUCE": 0.0517, "PSI": 1.4263})])
def test_logit_and_probit_on_spector_match_greene(family, expected):
    from statsmodels.datasets import spector
    df = with_units(spector.load_pandas().data)
    man = manifest_of("spector", [numeric("GPA", 0, 4), numeric("TUCE", 0, 30), numeric("PSI", 0, 1),
                                  numeric("GRADE", 0, 1)])
    (m,) = models(man, {"name": "grade", "family": family, "dependent": "GRADE", "regressors": ["GPA", "TUCE", "PSI"]})
    r = model_result(df, m, parse_manifest(man))
    assert {c["term"]: round(c["coef"], 4) for c in r["coefficients"]} == pytest.approx(expected, abs=1e-4)
    assert r["df_resid"] == 28.0 and "pseudo_r_squared" in r["fit"] and r["warnings"] == []


def test_categorical_regressors_become_dummies_with_units_per_level():
    from statsmodels.datasets import spector
    df = with_units(spector.load_pandas().data)
    man = manifest_of("spector", [numeric("GPA", 0, 4), numeric("GRADE", 0, 1),
                                  {"name": "PSI", "type": "float64", "kind": "categorical", "categories": [0.0, 1.0]}])
    (m,) = models(man, {"name": "gpa", "family": "ols", "dependent": "GPA", "regressors": ["PSI"]})
    r = model_result(df, m, parse_manifest(man))
    assert [c["term"] for c in r["coefficients"]] == ["const", "PSI_1.0"]
    assert r["levels"] == {"PSI": {"0.0": 18, "1.0": 14}}
    # The dummy's coefficient is the difference of the two groups' means.
    means = df.groupby("PSI")["GPA"].mean()
    assert r["coefficients"][1]["coef"] == pytest.approx(means[1.0] - means[0.0])


FIRMS = manifest_of("firms", [
    {"name": "region", "type": "string", "kind": "categorical", "categories": ["north", "south", "east"]},
    {"name": "year", "type": "int64", "kind": "categorical", "categories": [2023, 2024]},
    numeric("turnover")])


def firms_frame():
    # Unit 1 has two rows in north/2023 (its contributions are summed); unit 5 is negative.
    return pd.DataFrame({"unit": [1, 1, 2, 3, 4, 5, 6],
                         "region": ["north", "north", "north", "north", "south", "south", "west"],
                         "year": [2023, 2023, 2023, 2024, 2023, 2023, 2023],
                         "turnover": [50.0, 30.0, 15.0, 7.0, 5.0, -2.0, 9.0]})


def test_every_public_cell_with_units_and_the_two_largest_unit_contributions():
    man = parse_manifest(FIRMS)
    (t,), _ = parse_computations({"tables": [{"name": "t", "group_by": ["region", "year"], "aggregates": [
        {"statistic": "count"}, {"statistic": "sum", "column": "turnover"},
        {"statistic": "mean", "column": "turnover"}]}]}, man)
    r = table_result(firms_frame(), t, man)
    cells = {tuple(c["key"]): c for c in r["cells"]}
    # 3 x 2 public cells in manifest order, zeros included; "west" is no public category.
    assert list(cells) == [("north", 2023), ("north", 2024), ("south", 2023), ("south", 2024), ("east", 2023),
                           ("east", 2024)]
    north = cells[("north", 2023)]
    assert (north["rows"], north["units"], north["values"]) == (3, 2, [3, 95.0, 95.0 / 3])
    assert north["magnitude"]["turnover"] == {"n": 2, "total": 95.0, "top1": 80.0, "top2": 15.0, "n_negative": 0,
                                              "all_same": False}
    assert cells[("south", 2023)]["magnitude"]["turnover"]["n_negative"] == 1
    assert cells[("north", 2024)]["magnitude"]["turnover"]["all_same"] is True
    assert cells[("east", 2023)] == {"key": ["east", 2023], "rows": 0, "units": 0, "values": [0, None, None],
                                     "magnitude": {"turnover": {"n": 0, "total": 0.0, "top1": 0.0, "top2": 0.0,
                                                                "n_negative": 0, "all_same": False}}}


def test_filters_and_an_ungrouped_total():
    man = parse_manifest(FIRMS)
    (t,), _ = parse_computations({"tables": [{"name": "t", "aggregates": [{"statistic": "count"}], "where": [
        {"column": "region", "op": "not_in", "value": ["south"]}, {"column": "turnover", "op": ">=", "value": 9}]}]},
        man)
    assert table_result(firms_frame(), t, man)["cells"] == [
        {"key": [], "rows": 4, "units": 3, "values": [4], "magnitude": {}}]


def test_the_box_entry_drops_rows_without_a_unit_and_keeps_one_error_to_its_table(tmp_path):
    frame = firms_frame().astype({"unit": "Int64"})
    frame.loc[6, "unit"] = None
    frame.loc[6, "region"] = "north"
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), data / "part-0.parquet")
    spec = {"tables": [{"name": "t", "group_by": ["region"], "aggregates": [{"statistic": "count"}]}],
            "models": [{"name": "m", "family": "ols", "dependent": "turnover", "regressors": ["year"],
                        "where": [{"column": "region", "op": "==", "value": "east"}]}]}
    out = tmp_path / "out"
    out.mkdir()
    run_trusted_tables({"kind": "reviewed_tables", "manifest": FIRMS, "computations": spec, "data_dir": str(data),
                        "out_dir": str(out)})
    result = json.loads((out / "trusted.json").read_text())
    assert result["rows_without_unit"] == 1
    assert result["tables"][0]["cells"][0]["rows"] == 4      # the null-unit north row is not counted
    assert result["models"] == [{"name": "m", "error": result["models"][0]["error"]}]   # no rows to fit


def test_the_trusted_box_holds_no_operator_code_and_the_program_runs_in_another(tmp_path):
    """agent.modes.reviewed.run: one box of the runner alone (no program.py in its /job), then
    the operator's program in its own; what the program writes never reaches trusted.json."""
    from sandbox.agent.backends import Limits
    from sandbox.agent.backends.fake import FakeBackend
    from sandbox.agent.modes import reviewed

    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.Table.from_pandas(firms_frame(), preserve_index=False), data / "part-0.parquet")
    code = ("import os\n"
            "def analyse(df, out):\n"
            "    for name, text in (('trusted.json', '{\"tables\": []}'), ('notes.txt', 'hello')):\n"
            "        with open(os.path.join(out, name), 'w') as f:\n"
            "            f.write(text)\n")
    spec = {"mode": "reviewed", "dataset": "firms", "purpose": "p", "program": "p.py",
            "outputs": [{"name": "notes.txt", "type": "text"}],
            "tables": [{"name": "t", "group_by": ["region"], "aggregates": [{"statistic": "count"}]}]}
    backend = FakeBackend()
    facts = reviewed.run({"manifest": FIRMS, "spec": spec, "code": code, "data_dir": str(data), "job_id": "j",
                          "attempt": 1, "limits": Limits(wall_seconds=60)}, tmp_path / "attempt", backend)
    trusted_box, program_box = backend.requests
    assert sorted(p.name for p in trusted_box.job_dir.iterdir()) == ["job.json"]
    assert (program_box.job_dir / "program.py").read_text() == code
    assert trusted_box.out_dir != program_box.out_dir and facts.ok
    _spec, accepted, _bytes, trusted = facts.payload
    assert [c["rows"] for c in trusted["tables"][0]["cells"]] == [4, 2, 0]
    # The program's own trusted.json is an undeclared file of the program: dropped, never read.
    assert "trusted.json" in {d[0] for d in facts.compliance["dropped_files"]}

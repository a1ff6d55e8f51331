"""Reviewed mode's trusted tables and models on real runs (bubblewrap): computed from the raw
data by trusted code in a box without operator code, judged on their trusted statistics, and
the crafted outputs of issue 13 that target them (a free-form 'model' of records with a
declared df, counts hiding values in their decimals, a magnitude table at the finest grouping)."""
from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest

from sandbox.config import REPO_ROOT
from sandbox.core.errors import Conflict
from tests.conftest import make_services, need_backend

POLICY = (REPO_ROOT / "policies" / "enterprise_registry.yaml").read_text(encoding="utf-8")


def start(tmp_path, datasets_dir, backend):
    need_backend(backend)
    return make_services(tmp_path, datasets_dir, dataset="enterprise_registry", policy=POLICY, backend=backend,
                         users=[("operator", "operator", "operator-token"), ("rev", "compliance", "rev-token")])


@pytest.fixture
def services(demo_datasets_dir, tmp_path):
    svc = start(tmp_path, demo_datasets_dir, "bwrap")
    yield svc
    svc.dispose()


@pytest.fixture(params=[pytest.param("bwrap", marks=pytest.mark.bwrap),
                        pytest.param("docker", marks=pytest.mark.docker)])
def any_backend(request, demo_datasets_dir, tmp_path):
    svc = start(tmp_path, demo_datasets_dir, request.param)
    yield svc
    svc.dispose()


@pytest.fixture
def raw(demo_datasets_dir):
    """The registered data, read here only to compute what trusted code should have released."""
    return pd.read_parquet(demo_datasets_dir / "enterprise_registry")


def people(services):
    return services.accounts.authenticate("operator-token"), services.accounts.authenticate("rev-token")


def spec(**parts) -> dict:
    return {"spec": {"mode": "reviewed", "dataset": "enterprise_registry", "purpose": "business_environment_analysis",
                     **parts}, "code": parts.pop("code", "")}


def free_form(code: str, outputs: list) -> dict:
    job = spec(program="p.py", outputs=outputs)
    job["code"] = code
    return job


def run(services, job) -> tuple[str, dict]:
    op, rev = people(services)
    job_id = services.operator.submit(op, job)["job"]["id"]
    assert services.agent.execute(job_id) == "awaiting_review"
    return job_id, services.compliance.review_detail(rev, job_id)


def output(detail, name) -> dict:
    return next(o for o in detail["outputs"] if o["name"] == name)


def checks(detail, name) -> dict:
    return {c["name"].split(":")[0]: c for c in output(detail, name)["checks"]}


def approve(services, job_id):
    _, rev = people(services)
    detail = services.compliance.review_detail(rev, job_id)
    signoffs = [{"output": o["name"], "check": c["name"], "note": "looked"} for o in detail["outputs"]
                for c in o["checks"] if c["status"] == "needs_review"]
    return services.compliance.review(rev, job_id, "approve", signoffs=signoffs)


def test_the_example_tables_and_ols_model_are_the_exact_values_of_the_raw_data(any_backend, raw):
    services = any_backend
    op, rev = people(services)
    example = json.loads((REPO_ROOT / "jobs" / "reviewed_enterprise.json").read_text(encoding="utf-8"))
    code = (REPO_ROOT / "jobs" / example["program"]).read_text(encoding="utf-8")
    job_id, detail = run(services, {"spec": example, "code": code})

    active = raw[raw["status"].isin(["存续", "在业"])]
    table = list(csv.DictReader(io.StringIO(output(detail, "active_by_district.csv")["content"])))
    assert {r["district"]: int(r["count"]) for r in table} == active.groupby("district").size().to_dict()
    by_type = list(csv.DictReader(io.StringIO(output(detail, "employees_by_type.csv")["content"])))
    assert {r["entity_type"]: int(r["sum_employees"]) for r in by_type} == \
        active.groupby("entity_type")["employees"].sum().to_dict()

    model = json.loads(output(detail, "capital_model.json")["content"])
    assert model["nobs"] == len(raw) and model["df_resid"] == len(raw) - 7   # const, employees, 5 dummies
    import statsmodels.api as sm
    x = sm.add_constant(pd.concat([raw[["employees"]].astype(float), pd.get_dummies(
        pd.Categorical(raw["entity_type"], categories=["有限责任公司", "股份有限公司", "个人独资企业", "合伙企业",
                                                        "个体工商户", "农民专业合作社"]),
        prefix="entity_type", drop_first=True, dtype=float).set_index(raw.index)], axis=1))
    fit = sm.OLS(raw["registered_capital"].astype(float), x).fit()
    assert [c["coef"] for c in model["coefficients"]] == pytest.approx(fit.params.tolist(), rel=1e-9)
    assert [c["std_err"] for c in model["coefficients"]] == pytest.approx(fit.bse.tolist(), rel=1e-9)

    # The trusted per-cell statistics stay with compliance, in the output's checks.
    stats = checks(detail, "active_by_district.csv")["cell_statistics"]["details"]
    assert stats["source"] == "trusted" and stats["rows_without_unit"] == 0
    assert sum(c["units"] for c in stats["cells"]) == len(active)
    assert "--- trusted tables and models ---" in detail["run_logs"][-1]["stderr"]
    seen = json.dumps(services.views.get_job(op, job_id), ensure_ascii=False)
    assert "cell_statistics" not in seen and "rows_without_unit" not in seen

    approve(services, job_id)
    assert set(services.views.release(rev, job_id)["files"]) == {
        "active_by_district.csv", "employees_by_type.csv", "capital_model.json", "notes.txt"}


@pytest.mark.bwrap
def test_a_magnitude_table_at_the_finest_grouping_fails_its_threshold_or_is_suppressed(services, raw):
    finest = {"name": "capital", "group_by": ["district", "industry", "entity_type", "status"],
              "aggregates": [{"statistic": "sum", "column": "registered_capital"}]}
    sizes = raw.groupby(finest["group_by"]).size()
    assert sizes.median() <= 2          # the crafted case: most non-empty cells hold one or two enterprises
    job_id, detail = run(services, spec(tables=[finest]))
    found = checks(detail, "capital.csv")
    assert found["min_cell_count"]["status"] == "fail" and found["zero_cells"]["status"] == "fail"
    with pytest.raises(Conflict):
        approve(services, job_id)

    _, detail = run(services, spec(tables=[dict(finest, mitigation="suppress")]))
    found = checks(detail, "capital.csv")
    assert found["min_cell_count"]["status"] == "pass" and found["suppression"]["status"] == "needs_review"
    assert "fail" not in {c["status"] for c in found.values()}
    rows = list(csv.DictReader(io.StringIO(output(detail, "capital.csv")["content"])))
    released = [tuple(r[g] for g in finest["group_by"]) for r in rows if r["sum_registered_capital"] != ""]
    assert len(rows) == 14 * 19 * 6 * 4 and len(released) < len(sizes)
    assert all(sizes.get(key, 0) >= 10 for key in released)


@pytest.mark.bwrap
def test_a_free_form_model_of_records_with_a_declared_df_is_not_trusted(services):
    # 2,000 records shaped as a "model", declaring model_df = 500.
    code = ("import os\n"
            "def analyse(df, out):\n"
            "    t = df[['registered_capital', 'employees']].head(2000).reset_index(drop=True)\n"
            "    t.insert(0, 'term', ['x%d' % i for i in range(len(t))])\n"
            "    t.columns = ['term', 'coef', 'std_err']\n"
            "    t.to_csv(os.path.join(out, 'model.csv'), index=False)\n")
    job_id, detail = run(services, free_form(code, [{"name": "model.csv", "type": "csv", "table_kind": "model",
                                                     "model_df": 500}]))
    found = checks(detail, "model.csv")
    assert found["degrees_of_freedom"]["status"] == "needs_review"
    assert "model_df=500 is not trusted" in found["degrees_of_freedom"]["explanation"]
    assert found["model_size"]["status"] == "fail" and "2000 rows" in found["model_size"]["explanation"]
    with pytest.raises(Conflict):
        approve(services, job_id)


@pytest.mark.bwrap
def test_counts_hiding_values_in_their_decimals_are_blocked(services):
    # One cell per enterprise, each count written as 10.00xxxx with part of its capital in the decimals.
    code = ("import os\n"
            "def analyse(df, out):\n"
            "    t = df[['district', 'industry', 'registered_capital']].head(2000).copy()\n"
            "    t['n'] = 10 + (t['registered_capital'] % 1000) / 1e7\n"
            "    t[['district', 'industry', 'n']].to_csv(os.path.join(out, 'f.csv'), index=False)\n")
    job_id, detail = run(services, free_form(code, [{"name": "f.csv", "type": "csv", "table_kind": "frequency"}]))
    found = checks(detail, "f.csv")
    assert found["integer_counts"]["status"] == "fail" and "not whole numbers" in found["integer_counts"]["explanation"]
    with pytest.raises(Conflict):
        approve(services, job_id)


@pytest.mark.bwrap
def test_differencing_uses_the_trusted_key_sets_against_earlier_releases_and_the_same_job(services, raw):
    # An earlier release: enterprises by district. Then, by district without one industry: the
    # difference is that industry's enterprises per district, small somewhere.
    total = ("import os\n"
             "def analyse(df, out):\n"
             "    df.groupby('district').size().reset_index(name='n').to_csv(os.path.join(out, 'd.csv'), index=False)\n")
    first, _ = run(services, free_form(total, [{"name": "d.csv", "type": "csv", "table_kind": "frequency"}]))
    approve(services, first)
    per_industry = raw.groupby(["industry", "district"]).size()
    industry = next(i for i in per_industry.index.get_level_values(0).unique()
                    if ((per_industry[i] > 0) & (per_industry[i] < 10)).any())
    without = {"name": "without", "group_by": ["district"], "aggregates": [{"statistic": "count"}],
               "where": [{"column": "industry", "op": "!=", "value": industry}]}
    _, detail = run(services, spec(tables=[without]))
    found = checks(detail, "without.csv")["differencing"]
    assert found["status"] == "fail" and f"job {first}" in found["explanation"]

    # Within one job: a total and the same total filtered, both trusted tables.
    everyone = {"name": "all", "group_by": ["district"], "aggregates": [{"statistic": "count"}]}
    _, detail = run(services, spec(tables=[everyone, without]))
    assert checks(detail, "without.csv")["differencing"]["status"] == "fail"
    assert "all.csv" in checks(detail, "without.csv")["differencing"]["explanation"]

    # A trusted table, once released, is kept for later jobs (recorded at approval).
    released, _ = run(services, spec(tables=[dict(everyone, name="everyone")]))
    approve(services, released)
    _, detail = run(services, spec(tables=[without]))
    found = checks(detail, "without.csv")["differencing"]
    assert found["status"] == "fail" and f"job {released}" in found["explanation"]


@pytest.mark.bwrap
def test_a_model_with_too_few_residual_degrees_of_freedom_fails(services, raw):
    # A filter leaving 3 to 11 enterprises: OLS on one regressor has n - 2 < 10 residual df.
    sizes = raw.groupby(["district", "industry"]).size()
    district, industry = sizes[(sizes >= 3) & (sizes <= 11)].index[0]
    few = {"name": "few", "family": "ols", "dependent": "registered_capital", "regressors": ["employees"],
           "where": [{"column": "district", "op": "==", "value": district},
                     {"column": "industry", "op": "==", "value": industry}]}
    job_id, detail = run(services, spec(models=[few]))
    found = checks(detail, "few.json")
    assert json.loads(output(detail, "few.json")["content"])["df_resid"] == sizes[(district, industry)] - 2
    assert found["degrees_of_freedom"]["status"] == "fail"
    with pytest.raises(Conflict):
        approve(services, job_id)

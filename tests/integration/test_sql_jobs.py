"""SQL query jobs end to end (bwrap backend): the CLI's `sandbox query`, the client's
`Sandbox.sql`, the API's refusals, `run --mock`, and the example SQL jobs of both demo datasets,
each released with every value's 95% interval in result.json and in the CSVs."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from sandbox.client import ApiError, released_frames
from sandbox.config import REPO_ROOT
from tests.conftest import DEMO_ROWS, make_env, need_backend
from tests.integration.harness import load_job, running

ENTERPRISE_SQL = ("SELECT entity_type, COUNT(*) AS n, AVG(employees) AS mean_employees FROM enterprise_registry "
                  "GROUP BY entity_type")


def cli(h, user: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **h.env, "SANDBOX_URL": h.url, "SANDBOX_TOKEN": h.tokens[user]}
    return subprocess.run([sys.executable, "-m", "sandbox.controller.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=300)


def _csv_header(release: dict, name: str) -> list[str]:
    return next(csv.reader(io.StringIO(release["files"][f"{name}.csv"])))


@pytest.mark.bwrap
def test_sql_jobs_from_cli_client_and_api(demo_datasets_dir, tmp_path):
    need_backend("bwrap")
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'sandbox.db'}", demo_datasets_dir, "bwrap")
    with running(env, DEMO_ROWS) as h:
        h.apply_policy("health_visits", wall_seconds=5)
        h.apply_policy("enterprise_registry", wall_seconds=5)
        op = h.client("operator")

        # CLI dry run: the cost preview states the interval the release will carry.
        r = cli(h, "operator", "query", "enterprise_registry", ENTERPRISE_SQL, "--epsilon", "0.4",
                "--purpose", "business_environment_analysis", "--dry-run", "--json")
        assert r.returncode == 0, r.stderr
        preview = json.loads(r.stdout)
        assert preview["cost"]["epsilon"] == pytest.approx(0.4)
        n_plan = next(q for q in preview["queries"] if q["name"] == "n")
        assert n_plan["interval"]["level"] == 0.95 and n_plan["interval"]["halfwidth"] > 0

        # CLI refusals: exit 2, the part to change named, no traceback.
        for sql, fragment in [("SELECT * FROM enterprise_registry", "SELECT *"),
                              ("SELECT enterprise_id, COUNT(*) FROM enterprise_registry GROUP BY enterprise_id",
                               "identifier"),
                              ("SELECT COUNT(* FROM enterprise_registry", "not valid SQL")]:
            r = cli(h, "operator", "query", "enterprise_registry", sql, "--epsilon", "0.1",
                    "--purpose", "business_environment_analysis")
            assert r.returncode == 2 and fragment in r.stderr and "Traceback" not in r.stderr, r.stderr

        # CLI --wait on an auto-release dataset prints the released table with its intervals.
        r = cli(h, "operator", "query", "enterprise_registry", ENTERPRISE_SQL, "--epsilon", "0.4",
                "--purpose", "business_environment_analysis", "--wait")
        assert r.returncode == 0, r.stderr
        assert "mean_employees_lower" in r.stdout and "n_upper" in r.stdout and "有限责任公司" in r.stdout

        # The Python client: a DataFrame of keys, values and intervals.
        df = op.sql("enterprise_registry", ENTERPRISE_SQL, epsilon=0.4, purpose="business_environment_analysis")
        assert list(df.columns) == ["entity_type", "n", "n_lower", "n_upper", "mean_employees",
                                    "mean_employees_lower", "mean_employees_upper"]
        assert len(df) == 6 and (df["n"] >= 0).all() and (df["n_lower"] <= df["n"]).all()
        assert ((df["mean_employees_lower"] <= df["mean_employees"])
                & (df["mean_employees"] <= df["mean_employees_upper"])).all()

        # WHERE: row filters before contribution bounding, released like any other table.
        df = op.sql("enterprise_registry", "SELECT district, COUNT(*) AS active FROM enterprise_registry "
                    "WHERE status IN ('存续', '在业') AND employees >= 10 GROUP BY district", epsilon=0.3,
                    purpose="business_environment_analysis")
        assert list(df.columns) == ["district", "active", "active_lower", "active_upper"] and len(df) == 14

        # The API refuses SQL outside the subset with HTTP 400, never a 5xx.
        with pytest.raises(ApiError) as e:
            op.submit({"mode": "query", "dataset": "enterprise_registry", "purpose": "business_environment_analysis",
                       "sql": "SELECT COUNT(*) FROM enterprise_registry a JOIN x b ON a.district = b.district",
                       "epsilon": 0.1})
        assert e.value.status == 400 and "JOIN" in str(e.value)

        # The example SQL jobs, as files: run on mock data, then for real.
        r = cli(h, "operator", "run", "--mock", "jobs/enterprise_sql.json")
        assert r.returncode == 0, r.stderr
        assert {t["name"] for t in json.loads(r.stdout)["result"]["tables"]} == {
            "enterprises_by_district_industry", "mean_employees_by_type"}
        r = cli(h, "operator", "submit", "jobs/enterprise_sql.json", "--wait", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["state"] == "released", r.stderr

        job = op.submit(load_job("health_sql.json"))["job"]
        h.wait_state(job["id"], {"awaiting_review"})
        h.client("reviewer").review(job["id"], "approve")
        assert op.wait(job["id"])["state"] == "released"
        release = op.release(job["id"])
        assert _csv_header(release, "visits_by_district") == ["district", "count", "count_lower", "count_upper"]
        assert _csv_header(release, "age_histogram") == ["bin_lower", "bin_upper", "count", "count_lower",
                                                         "count_upper"]
        assert _csv_header(release, "median_cost") == ["quantile", "quantile_lower", "quantile_upper"]
        tables = {t["name"]: t for t in json.loads(release["files"]["result.json"])["tables"]}
        assert tables["median_cost"]["interval"]["rank_error_rows"] > 0
        assert all(r[1] <= r[0] <= r[2] for r in tables["median_cost"]["rows"])
        assert all(row[1] >= 0 and isinstance(row[1], int) for row in tables["visits_by_district"]["rows"])
        frames = released_frames(release, op.job(job["id"]).get("spec") or {})
        assert isinstance(frames, list) and any("visits_by_district_lower" in f.columns for f in frames)

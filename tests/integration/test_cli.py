"""The operator -> reviewer -> operator flow from the `sandbox` command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sandbox.config import REPO_ROOT
from tests.conftest import DEMO_ROWS, make_env, need_backend
from tests.integration.harness import running


def cli(h, user: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **h.env, "SANDBOX_URL": h.url, "SANDBOX_TOKEN": h.tokens[user]}
    return subprocess.run([sys.executable, "-m", "sandbox.controller.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=300)


@pytest.mark.bwrap
def test_cli_flow_for_the_three_roles(demo_datasets_dir, tmp_path):
    need_backend("bwrap")
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'sandbox.db'}", demo_datasets_dir, "bwrap")
    with running(env, DEMO_ROWS) as h:
        h.apply_policy("health_visits", wall_seconds=5)
        r = cli(h, "operator", "datasets")
        assert r.returncode == 0 and "health_visits" in r.stdout
        r = cli(h, "operator", "mock", "health_visits", "-o", str(tmp_path / "mock.csv"), "--rows", "20")
        assert r.returncode == 0
        header = (tmp_path / "mock.csv").read_text(encoding="utf-8").splitlines()[0].replace('"', "")
        assert header.startswith("person_id,age,sex,district")

        # Develop on mock data: everything is shown, including the runner's output.
        r = cli(h, "operator", "run", "--mock", "jobs/health_query.json")
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["mock"] and {t["name"] for t in report["result"]["tables"]} >= {"visits_by_district"}

        r = cli(h, "operator", "submit", "jobs/health_query.json", "--dry-run", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["cost"]["epsilon"] == pytest.approx(1.0)
        r = cli(h, "operator", "submit", "jobs/health_query.json", "--json")
        job_id = json.loads(r.stdout)["job"]["id"]
        h.wait_state(job_id, {"awaiting_review"})

        assert cli(h, "operator", "review", "list").returncode == 1          # 403 for operators
        r = cli(h, "reviewer", "review", "list")
        assert job_id in r.stdout
        assert cli(h, "reviewer", "review", "reject", job_id).returncode == 2  # a reason is required
        r = cli(h, "reviewer", "review", "reject", job_id, "--reason", "cells too small", "--note", "n")
        assert r.returncode == 2 and "disclosure_risk" in r.stderr          # ... a code from the fixed list
        r = cli(h, "reviewer", "review", "reasons", "--json")
        assert r.returncode == 0 and "run_failed" in [x["code"] for x in json.loads(r.stdout)]
        assert cli(h, "reviewer", "review", "approve", job_id).returncode == 0

        r = cli(h, "operator", "status", job_id, "--wait", "--json")
        assert json.loads(r.stdout)["state"] == "released"
        out = tmp_path / "result"
        assert cli(h, "operator", "download", job_id, "-o", str(out)).returncode == 0
        r = cli(h, "operator", "verify-release", str(out / "certificate.json"),
                "--public-key", str(out / "release_public_key.pem"), "--files-dir", str(out))
        assert r.returncode == 0 and "OK" in r.stdout
        assert cli(h, "reviewer", "audit", "verify").returncode == 0

        # Bad input: exit code 2 and a message saying what to fix, never a traceback.
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"mode": "query", "dataset": "health_visits", "purpose": "public_health_planning",
                                   "queries": [{"name": "a", "statistic": "count", "epsilon": float("nan")}]}))
        r = cli(h, "operator", "submit", str(bad))
        assert r.returncode == 2 and "epsilon" in r.stderr and "Traceback" not in r.stderr
        r = cli(h, "operator", "submit", str(tmp_path / "missing.json"))
        assert r.returncode == 2 and "cannot read" in r.stderr
        r = cli(h, "owner", "policy", "validate", "policies/health_visits.yaml", "policies/enterprise_registry.yaml")
        assert r.returncode == 0

"""A real public dataset registered the way an owner would, through the `sandbox` CLI:
palmerpenguins (the CSV the PyPI package ships inside itself, converted to Parquet here; a
`penguin_id` column is ADDED, one per row, as the privacy unit: the data has no identifier).
The owner drafts a manifest, is refused for values outside its bounds, enforces, reads the
report, diffs and applies a first policy; an operator's query job on it is released; the
owner retires it and no new job is admitted."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml

from sandbox.config import REPO_ROOT
from tests.conftest import make_env, need_backend
from tests.integration.harness import running

POLICY = """\
dataset: penguins
classification: L2
modes: [query]
release: one_reviewer
run_approval: auto
licences:
  - operator: operator
    expires: 2027-12-31
    purposes: [ecology_research]
budget:
  epsilon_per_period: 5.0
  delta_per_period: 1.0e-6
  refresh: monthly
  lifetime_epsilon: 50.0
  lifetime_delta: 1.0e-5
  min_epsilon_per_query: 0.05
  jobs_per_period: 100
  dataset_epsilon_per_period: 8.0
  dataset_lifetime_epsilon: 80.0
  dataset_delta_per_period: 1.5e-6
  dataset_lifetime_delta: 1.5e-5
min_group_size: 10
forbidden_columns: [penguin_id]
limits:
  memory_mb: 2048
  cpus: 1
  wall_seconds: 5
  output_bytes: 1048576
"""

JOB = {"mode": "query", "dataset": "penguins", "purpose": "ecology_research",
       "queries": [{"name": "penguins_by_species", "statistic": "count", "group_by": ["species"], "epsilon": 0.5},
                   {"name": "mass_by_species", "statistic": "mean", "column": "body_mass_g",
                    "group_by": ["species"], "epsilon": 0.5}]}


def penguins_parquet(folder: Path) -> Path:
    import palmerpenguins
    csv = Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"
    penguins = pacsv.read_csv(csv, convert_options=pacsv.ConvertOptions(null_values=["NA"], strings_can_be_null=True))
    ids = pa.array([f"penguin-{i:04d}" for i in range(penguins.num_rows)])
    # The unit is one penguin: the package's rows have no identifier, so one is added.
    penguins = penguins.add_column(0, "penguin_id", ids)
    out = folder / "penguins.parquet"
    pq.write_table(penguins, out)
    return out


def cli(h, user: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **h.env, "SANDBOX_URL": h.url, "SANDBOX_TOKEN": h.tokens[user]}
    return subprocess.run([sys.executable, "-m", "sandbox.controller.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=300)


@pytest.mark.parametrize("backend", [pytest.param("bwrap", marks=pytest.mark.bwrap),
                                     pytest.param("docker", marks=pytest.mark.docker)])
def test_an_owner_publishes_palmerpenguins_and_an_operator_gets_a_release(tmp_path, backend):
    need_backend(backend)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    data = penguins_parquet(incoming)
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'sandbox.db'}", tmp_path / "demo", backend)
    env["SANDBOX_INGEST_ROOTS"] = str(incoming)
    with running(env, {}) as h:
        # 1. A draft from the data, for the owner: edited into the public manifest.
        r = cli(h, "owner", "dataset", "draft", str(data), "--name", "penguins", "--unit", "penguin_id")
        assert r.returncode == 0, r.stderr
        assert "rows: 344" in r.stdout and "rows per unit if the privacy unit is penguin_id" in r.stdout
        manifest = yaml.safe_load(r.stdout)
        cols = {c["name"]: c for c in manifest["columns"]}
        assert cols["species"]["categories"] == ["Adelie", "Chinstrap", "Gentoo"]
        assert manifest["privacy_unit"] == "penguin_id" and manifest["max_rows_per_unit"] == 1
        # The owner replaces data-derived bounds by public ones (too tight for body mass on purpose).
        for name, bounds in (("bill_length_mm", [30, 60]), ("bill_depth_mm", [13, 22]),
                             ("flipper_length_mm", [170, 235]), ("body_mass_g", [3000, 6000]),
                             ("year", [2007, 2009])):
            cols[name]["bounds"] = bounds
        manifest.update(title="Palmer penguins", classification="L2", owner="palmer_station_lter")
        path = tmp_path / "penguins.yaml"
        path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")

        # 2. Refused (values outside the bounds), with the report; then enforced.
        r = cli(h, "owner", "dataset", "register", "penguins", "--manifest", str(path), "--data", str(data))
        assert r.returncode == 2 and "--enforce" in r.stderr and "Traceback" not in r.stderr
        assert re.search(r"column body_mass_g: 2 null; \d+ below / \d+ above bounds", r.stdout), r.stdout
        assert cli(h, "operator", "datasets", "penguins").returncode == 1  # nothing half-registered
        r = cli(h, "owner", "dataset", "register", "penguins", "--manifest", str(path), "--data", str(data),
                "--enforce")
        assert r.returncode == 0, r.stderr
        assert "rows: 344" in r.stdout and "enforced: kept 344 of 344 rows" in r.stdout, r.stdout
        r = cli(h, "owner", "dataset", "report", "penguins")
        assert r.returncode == 0 and "bound verified: yes" in r.stdout
        print(r.stdout)  # the sample report in the helper's note
        assert cli(h, "operator", "dataset", "report", "penguins").returncode == 1   # owner/compliance only

        # 3. The first policy: the diff shows the whole file as new, then it is applied.
        (tmp_path / "policies").mkdir()
        policy = tmp_path / "policies" / "penguins.yaml"
        policy.write_text(POLICY, encoding="utf-8")
        r = cli(h, "owner", "policy", "diff", str(policy))
        assert r.returncode == 0, r.stderr
        assert "--- /dev/null" in r.stdout and "new policy for penguins" in r.stdout
        assert cli(h, "owner", "policy", "apply", str(policy), "--reason", "first policy for penguins").returncode == 0

        # 3b. The owner asks for a second approval of later changes; the next change (a second
        # purpose) is then a proposal, shown in the history, that compliance (not the owner) decides.
        policy.write_text(POLICY + "policy_changes: second_approval\n", encoding="utf-8")
        r = cli(h, "owner", "policy", "apply", str(policy), "--reason", "changes need a second person", "--base", "1")
        assert r.returncode == 0, r.stderr
        policy.write_text(POLICY.replace("[ecology_research]", "[ecology_research, teaching]")
                          + "policy_changes: second_approval\n", encoding="utf-8")
        r = cli(h, "owner", "policy", "apply", str(policy), "--reason", "a course uses the data", "--base", "2")
        assert r.returncode == 0 and json.loads(r.stdout)["state"] == "proposed", r.stdout + r.stderr
        r = cli(h, "owner", "policy", "versions", "penguins")
        assert r.returncode == 0 and "proposed" in r.stdout and "a course uses the data" in r.stdout, r.stdout
        assert cli(h, "owner", "policy", "decide", "penguins", "3", "approve", "--reason", "mine").returncode == 1
        assert cli(h, "reviewer", "policy", "decide", "penguins", "3", "approve").returncode == 2   # no reason
        r = cli(h, "reviewer", "policy", "decide", "penguins", "3", "approve", "--reason", "purpose fits the licence")
        assert r.returncode == 0 and "v3: applied" in r.stdout, r.stdout + r.stderr
        versions = json.loads(cli(h, "reviewer", "policy", "versions", "penguins", "--json").stdout)["versions"]
        assert [(v["version"], v["state"]) for v in versions] == [(3, "current"), (2, "superseded"), (1, "superseded")]

        # 4. An operator's query job on it, reviewed and released.
        job = tmp_path / "penguins_query.json"
        job.write_text(json.dumps(JOB), encoding="utf-8")
        r = cli(h, "operator", "submit", str(job), "--json")
        assert r.returncode == 0, r.stderr
        job_id = json.loads(r.stdout)["job"]["id"]
        h.wait_state(job_id, {"awaiting_review"})
        r = cli(h, "reviewer", "review", "approve", job_id)
        assert r.returncode == 0, r.stdout + r.stderr
        r = cli(h, "operator", "status", job_id, "--wait", "--json")
        assert json.loads(r.stdout)["state"] == "released"
        out = tmp_path / "result"
        assert cli(h, "operator", "download", job_id, "-o", str(out)).returncode == 0
        released = sorted(p.name for p in out.iterdir())
        assert any(n.startswith("penguins_by_species") for n in released), released
        print("released files:", released)

        # 5. Retired: no new job is admitted, the audit trail stays.
        assert cli(h, "owner", "dataset", "retire", "penguins").returncode == 0
        r = cli(h, "operator", "submit", str(job))
        assert r.returncode == 1 and "retired" in r.stderr
        assert cli(h, "reviewer", "audit", "verify").returncode == 0

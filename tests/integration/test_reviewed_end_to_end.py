"""A reviewed job written the new way on real boxes: trusted tables alone and models alone run
in the trusted box (bubblewrap and Docker), `sandbox run --mock` re-encodes free-form files as
a real run does, and the command line submits a job of trusted tables with no code (exit 0) and
names what to add to a spec with nothing to compute (exit 2)."""
from __future__ import annotations

import json

import pytest
import yaml

from sandbox.agent.backends.select import get_backend
from sandbox.config import REPO_ROOT, load
from sandbox.core.manifest import parse_manifest
from tests.conftest import DEMO_ROWS, make_env, make_services, need_backend
from tests.integration.harness import running
from tests.integration.test_cli import cli

POLICY = (REPO_ROOT / "policies" / "enterprise_registry.yaml").read_text(encoding="utf-8")
BY_DISTRICT = {"name": "by_district", "group_by": ["district"], "aggregates": [{"statistic": "count"}]}
MODEL = {"name": "capital_model", "family": "ols", "dependent": "registered_capital",
         "regressors": ["employees", "entity_type"]}


def spec(**parts) -> dict:
    return {"mode": "reviewed", "dataset": "enterprise_registry", "purpose": "business_environment_analysis",
            **parts}


@pytest.fixture(params=[pytest.param("bwrap", marks=pytest.mark.bwrap),
                        pytest.param("docker", marks=pytest.mark.docker)])
def services(request, demo_datasets_dir, tmp_path):
    need_backend(request.param)
    svc = make_services(tmp_path, demo_datasets_dir, dataset="enterprise_registry", policy=POLICY,
                        backend=request.param, users=[("operator", "operator", "operator-token"),
                                                      ("rev", "compliance", "rev-token")])
    yield svc
    svc.dispose()


@pytest.mark.parametrize("parts, files", [({"tables": [BY_DISTRICT]}, {"by_district.csv"}),
                                          ({"models": [MODEL]}, {"capital_model.json"})],
                         ids=["tables without models", "models without tables"])
def test_trusted_tables_alone_and_models_alone_run_in_the_trusted_box(services, parts, files):
    op, rev = services.accounts.authenticate("operator-token"), services.accounts.authenticate("rev-token")
    job_id = services.operator.submit(op, spec(**parts))["job"]["id"]     # a bare spec: no code
    assert services.agent.execute(job_id) == "awaiting_review"
    detail = services.compliance.review_detail(rev, job_id)
    stderr = detail["run_logs"][-1]["stderr"]
    assert "a list of" not in stderr and {o["name"] for o in detail["outputs"]} == files, stderr[-2000:]
    for o in detail["outputs"]:
        computed = next(c for c in o["checks"] if c["name"] == f"computed:{o['name']}")
        assert computed["status"] == "pass" and o["content"]


MOCK_PROGRAM = ("import os\n"
                "def analyse(df, out):\n"
                "    with open(os.path.join(out, 'chart.svg'), 'w') as f:\n"
                "        f.write('<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>')\n"
                "    with open(os.path.join(out, 'formula.csv'), 'w') as f:\n"
                "        f.write('district,n\\n=HYPERLINK(1),12\\n')\n"
                "    with open(os.path.join(out, 'notes.txt'), 'w') as f:\n"
                "        f.write('notes  \\n')\n")


@pytest.mark.bwrap
def test_a_mock_run_reencodes_free_form_files_and_shows_refusals(tmp_path):
    from sandbox.agent.mockrun import run_on_mock
    need_backend("bwrap")
    manifest = parse_manifest(yaml.safe_load((REPO_ROOT / "datasets" / "enterprise_registry.yaml")
                                             .read_text(encoding="utf-8")))
    outputs = [{"name": "chart.svg", "type": "svg"}, {"name": "formula.csv", "type": "csv", "table_kind": "other"},
               {"name": "notes.txt", "type": "text"}]
    backend = get_backend(load(make_env(tmp_path, f"sqlite:///{tmp_path / 'db'}", tmp_path, "bwrap")))
    report = run_on_mock(spec(tables=[BY_DISTRICT], program="p.py", outputs=outputs), manifest, backend,
                         rows=500, code=MOCK_PROGRAM)
    assert report["exit_code"] == 0, report["stderr"][-2000:]
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["reencode:chart.svg"]["status"] == "fail" and "png" in checks["reencode:chart.svg"]["explanation"]
    assert checks["reencode:formula.csv"]["status"] == "fail"
    assert "formulas" in checks["reencode:formula.csv"]["explanation"]
    assert checks["reencode:notes.txt"]["status"] == "pass" and checks["free_form:notes.txt"]["status"] == "needs_review"
    # Only what trusted code re-wrote is listed as a file (notes.txt without its trailing blanks).
    assert report["files"] == {"by_district.csv": report["files"]["by_district.csv"], "notes.txt": len(b"notes\n")}
    assert any(c["name"] == "min_cell_count:by_district.csv" for c in report["checks"])


@pytest.mark.bwrap
def test_the_cli_submits_trusted_tables_without_code_and_names_what_a_spec_lacks(demo_datasets_dir, tmp_path):
    need_backend("bwrap")
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'sandbox.db'}", demo_datasets_dir, "bwrap")
    tables_only, empty, no_program = tmp_path / "tables.json", tmp_path / "empty.json", tmp_path / "noprog.json"
    tables_only.write_text(json.dumps(spec(tables=[BY_DISTRICT], models=[MODEL])), encoding="utf-8")
    empty.write_text(json.dumps(spec()), encoding="utf-8")
    no_program.write_text(json.dumps(spec(outputs=[{"name": "n.txt", "type": "text"}])), encoding="utf-8")
    with running(env, DEMO_ROWS) as h:
        h.apply_policy("enterprise_registry", wall_seconds=60)
        r = cli(h, "operator", "submit", str(empty))
        assert r.returncode == 2 and "tables" in r.stderr and "program" in r.stderr, r.stderr
        r = cli(h, "operator", "submit", str(no_program))
        assert r.returncode == 2 and '"program"' in r.stderr, r.stderr
        r = cli(h, "operator", "submit", str(tables_only), "--dry-run", "--json")
        assert r.returncode == 0, r.stderr
        assert [o["name"] for o in json.loads(r.stdout)["queries"]["outputs"]] == ["by_district.csv",
                                                                                   "capital_model.json"]
        r = cli(h, "operator", "submit", str(tables_only), "--json")
        assert r.returncode == 0, r.stderr
        job_id = json.loads(r.stdout)["job"]["id"]
        h.wait_state(job_id, {"awaiting_review"})
        detail = json.loads(cli(h, "reviewer", "review", "show", job_id, "--json").stdout)
        assert {o["name"] for o in detail["outputs"]} == {"by_district.csv", "capital_model.json"}

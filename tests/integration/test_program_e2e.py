"""Program mode end to end: HTTP -> Celery (one task per block) -> real box per block ->
OpenDP aggregate -> review -> release, on Docker and bubblewrap."""
from __future__ import annotations

import csv
import io

import pytest

from sandbox.client import ApiError
from sandbox.config import REPO_ROOT
from tests.conftest import DEMO_ROWS, flush_redis, make_env, need_backend
from tests.integration.harness import load_job, running

BACKENDS = [pytest.param("docker", marks=pytest.mark.docker), pytest.param("bwrap", marks=pytest.mark.bwrap)]


def program(name: str, k: int = 8) -> dict:
    spec = load_job("program_mean_cost.json")
    spec["blocks"] = k
    return {"spec": spec, "code": (REPO_ROOT / "jobs" / name).read_text()}


@pytest.mark.parametrize("backend", BACKENDS)
def test_program_job_flow(backend, database_url, demo_datasets_dir, tmp_path):
    need_backend(backend)
    env = make_env(tmp_path, database_url, demo_datasets_dir, backend)
    if not database_url.startswith("sqlite"):
        flush_redis()
    with running(env, DEMO_ROWS, workers=2) as h:
        h.apply_policy("health_visits", wall_seconds=25)
        op, rev = h.client("operator"), h.client("reviewer")

        dry = op.submit(program("program_mean_cost.py"), dry_run=True)
        assert dry["admitted"] and dry["cost"]["epsilon"] == pytest.approx(1.0)
        assert len(dry["queries"]["outputs"]) == 3

        job_id = op.submit(program("program_mean_cost.py"))["job"]["id"]
        job = h.wait_state(job_id, {"awaiting_review", "failed"}, timeout=240)
        assert job["state"] == "awaiting_review"

        detail = rev.review_detail(job_id)
        assert "def analyse" in detail["code"]
        # The reviewer decides on the code, the spec and the DP output: no per-block facts.
        assert "blocks" not in detail and "run_logs" not in detail and "blocks" not in detail["compliance"]
        with pytest.raises(ApiError) as e:
            rev.review_diagnostics(job_id)                                   # open once decided
        assert e.value.status == 409
        assert all(c["status"] == "pass" for c in detail["outputs"][0]["checks"])
        # The operator sees none of the per-block facts.
        assert "compliance" not in op.job(job_id) and "defaults_used" not in str(op.job(job_id))
        rev.review(job_id, "approve")
        diagnostics = rev.review_diagnostics(job_id)
        assert diagnostics["compliance"]["blocks"]["blocks"] == 8
        assert diagnostics["compliance"]["blocks"]["defaults_used"] == 0

        # Program outcomes show only after every block could have run one after another
        # (k x (timeout + start-up)); the test moves that time instead of waiting for it.
        assert op.job(job_id)["state"] == "in_progress"
        with h.services.store.transaction() as s:
            from sandbox.adapters.store.models import Job
            s.get(Job, job_id).visible_after = None
        rows = list(csv.DictReader(io.StringIO(op.release(job_id)["files"]["program_output.csv"])))
        assert [r["output"] for r in rows] == ["mean_cost", "cost_per_year_of_age", "share_visits_over_1000"]


@pytest.mark.bwrap
def test_programs_that_fail_on_mock_data_or_do_not_parse_are_refused(demo_datasets_dir, tmp_path):
    need_backend("bwrap")
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", demo_datasets_dir, "bwrap")
    with running(env, DEMO_ROWS) as h:
        op = h.client("operator")
        # The notebook client runs the same pipeline on mock data and shows everything.
        good = program("program_mean_cost.py", k=4)
        report = op.run_mock(good["spec"], good["code"], rows=400)
        assert report["contract"] == "ok" and len(report["vector"]) == 3
        noisy = op.run_mock(good["spec"], "def analyse(df):\n    print('hello from mock')\n    return [1, 2]\n", rows=50)
        assert noisy["contract"].startswith("violated") and "hello from mock" in noisy["stderr"]
        bad = program("program_mean_cost.py")
        bad["code"] = "def analyse(df):\n    return [df['no_such_column'].mean(), 0, 0]\n"
        with pytest.raises(ApiError) as e:
            op.submit(bad)
        assert e.value.status == 400 and "mock data" in e.value.body["message"]
        # The refusal quotes the mock run's own error: mock data is public, and this is the fix's clue.
        assert "no_such_column" in e.value.body["message"]
        bad["code"] = "def analyse(df)\n    return [1]\n"
        with pytest.raises(ApiError) as e:
            op.submit(bad)
        assert e.value.status == 400 and e.value.body["field"].startswith("code")
        assert op.jobs() == []

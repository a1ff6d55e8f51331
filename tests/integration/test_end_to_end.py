"""HTTP -> Celery -> real isolation backend -> release gate -> review -> download,
on both backends and both databases."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from sandbox.client import ApiError
from sandbox.adapters.signing import verify_certificate
from tests.conftest import DEMO_ROWS, flush_redis, make_env, need_backend
from tests.integration.harness import load_job, running

GANSU = 14
VISIBLE_AFTER = 15  # seconds: the test policies' wall-time limit (runs take ~1-3 s)

def _csv(path) -> list[dict]:
    # Released CSVs start with a byte order mark (for Excel): read them as utf-8-sig.
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


BACKENDS = [pytest.param("docker", marks=pytest.mark.docker), pytest.param("bwrap", marks=pytest.mark.bwrap)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_operator_reviewer_operator_flow(backend, database_url, demo_datasets_dir, tmp_path):
    need_backend(backend)
    env = make_env(tmp_path, database_url, demo_datasets_dir, backend)
    if not database_url.startswith("sqlite"):
        flush_redis()
    with running(env, DEMO_ROWS) as h:
        h.apply_policy("health_visits", wall_seconds=VISIBLE_AFTER)
        op, rev, op2 = h.client("operator"), h.client("reviewer"), h.client("operator2")

        # Catalog: public metadata and schema, never row counts or paths.
        names = {d["name"] for d in op.datasets()}
        assert {"health_visits", "enterprise_registry"} <= names
        detail = op.dataset("health_visits")
        assert detail["privacy_unit"] == "person_id" and detail["max_rows_per_unit"] == 5
        assert "data_dir" not in json.dumps(detail) and "rows" not in detail
        mock = op.mock("health_visits", rows=50).decode()
        header = next(csv.reader(io.StringIO(mock)))
        assert header == [c["name"] for c in detail["columns"]]

        # Dry run: cost and balance after, nothing reserved.
        spec = load_job("health_query.json")
        dry = op.submit(spec, dry_run=True)
        assert dry["admitted"] and dry["cost"]["epsilon"] == pytest.approx(1.0)
        assert op.jobs() == []

        submitted = op.submit(spec)
        job_id = submitted["job"]["id"]
        assert submitted["job"]["state"] == "queued"

        job = h.wait_state(job_id, {"awaiting_review", "failed"})
        # A failed run reaches review too, marked failed for compliance only.
        assert job["state"] == "awaiting_review" and "failed" not in rev.review_detail(job_id)["compliance"]
        assert job["backend"].startswith(backend)

        # Before release the operator sees a coarse state and nothing computed from data.
        seen = op.job(job_id)
        assert seen["state"] == "in_progress"
        assert "updated_at" not in seen and "attempts" not in seen
        with pytest.raises(ApiError) as e:
            op.release(job_id)
        assert e.value.status == 409
        with pytest.raises(ApiError) as e:
            op2.job(job_id)
        assert e.value.status == 404
        with pytest.raises(ApiError) as e:
            op.review_queue()
        assert e.value.status == 403

        queue = rev.review_queue()
        assert [j["id"] for j in queue] == [job_id]
        review = rev.review_detail(job_id)
        result_out = next(o for o in review["outputs"] if o["name"] == "result.json")
        assert all(c["status"] == "pass" for c in result_out["checks"])
        rev.review(job_id, "approve")

        # The outcome shows only at the time fixed when the run started (start + wall limit).
        seen = op.job(job_id)
        visible_after = datetime.fromisoformat(seen["outcome_visible_after"])
        if datetime.now(timezone.utc) < visible_after - timedelta(seconds=0.5):
            assert seen["state"] == "in_progress"
            with pytest.raises(ApiError):
                op.release(job_id)
        assert op.wait(job_id, timeout=VISIBLE_AFTER + 30)["state"] == "released"
        assert datetime.now(timezone.utc) >= visible_after
        out = tmp_path / "download"
        op.download(job_id, out)
        rows = _csv(out / "visits_by_district.csv")
        assert len(rows) == GANSU and {r["district"] for r in rows} == set(detail["columns"][3]["categories"])
        assert len(_csv(out / "cost_by_district_sex.csv")) == GANSU * 2
        cert = json.loads((out / "certificate.json").read_text())
        assert verify_certificate(cert, (out / "release_public_key.pem").read_text())
        assert cert["certificate"]["dataset_version"] == review["dataset_version"]
        if backend == "docker":  # the runner image is named by its content digest
            assert cert["certificate"]["runner_image"].startswith("sha256:")
        # The certificate verifies offline with the CLI, and a changed byte is detected.
        cli = [sys.executable, "-m", "sandbox.controller.cli", "verify-release", str(out / "certificate.json"),
               "--public-key", str(out / "release_public_key.pem"), "--files-dir", str(out)]
        assert subprocess.run(cli, capture_output=True).returncode == 0
        cert["certificate"]["privacy"]["epsilon"] = 0.01
        (out / "certificate.json").write_text(json.dumps(cert))
        assert subprocess.run(cli, capture_output=True).returncode == 1

        assert rev.audit_verify()["ok"]
        head = rev.audit_head()
        assert head["seq"] > 10 and len(head["hash"]) == 64

        # Owners watch consumption and metering; operators cannot.
        owner = h.client("owner")
        periods = owner.consumption("health_visits")["periods"]
        assert [(p["operator"], p["epsilon_charged"]) for p in periods] == [("operator", pytest.approx(1.0))]
        meter = owner.metering()
        assert meter[0]["jobs"] == 1 and meter[0]["runs"] == 1 and meter[0]["releases"] == 1
        assert meter[0]["rows_scanned"] == DEMO_ROWS["health_visits"]
        assert owner.metering("csv").startswith("period,operator,dataset,jobs")
        with pytest.raises(ApiError) as e:
            op.metering()
        assert e.value.status == 403


@pytest.mark.bwrap
def test_policy_auto_release_and_refusals(database_url, demo_datasets_dir, tmp_path):
    need_backend("bwrap")
    env = make_env(tmp_path, database_url, demo_datasets_dir, "bwrap")
    if not database_url.startswith("sqlite"):
        flush_redis()
    with running(env, DEMO_ROWS) as h:
        h.apply_policy("enterprise_registry", wall_seconds=VISIBLE_AFTER)
        op, op2 = h.client("operator"), h.client("operator2")
        # enterprise_registry's policy releases DP query results automatically,
        # visible to the operator at start + wall limit, whatever the run took.
        job_id = op.submit(load_job("enterprise_query.json"))["job"]["id"]
        assert h.wait_state(job_id, {"released", "failed"})["state"] == "released"
        assert op.wait(job_id, timeout=VISIBLE_AFTER + 30)["state"] == "released"
        rel = op.release(job_id)
        assert len(rel["files"]["enterprises_by_district_industry.csv"].strip().splitlines()) == 1 + 14 * 19

        # Admission refusals reach the operator with every reason and nothing from data.
        spec = load_job("health_query.json")
        refused = op2.submit(spec)
        assert refused["admitted"] is False and refused["job"]["state"] == "rejected"
        assert any("expired" in r for r in refused["reasons"])
        bad_purpose = dict(spec, purpose="marketing")
        refused = op.submit(bad_purpose)
        assert not refused["admitted"] and any("purpose" in r for r in refused["reasons"])


@pytest.mark.bwrap
def test_bad_specs_get_400_with_what_to_fix(database_url, demo_datasets_dir, tmp_path):
    need_backend("bwrap")
    env = make_env(tmp_path, database_url, demo_datasets_dir, "bwrap")
    with running(env, DEMO_ROWS) as h:
        op = h.client("operator")
        base = load_job("health_query.json")
        cases = [
            (dict(base, dataset="nope"), "dataset"),
            ({**base, "queries": [{"name": "a", "statistic": "count", "group_by": ["cost"], "epsilon": 1}]}, "cost"),
            ({**base, "queries": [{"name": "a", "statistic": "count", "epsilon": -1}]}, "epsilon"),
            ({**base, "queries": [{"name": "a", "statistic": "count", "epsilon": "1"}]}, "epsilon"),
            ({**base, "queries": [{"name": "a", "statistic": "sum", "column": "nope", "epsilon": 1}]}, "nope"),
            ({**base, "queries": [{"name": "a", "statistic": "count", "epsilon": 1e308}]}, "epsilon"),
            ({**base, "junk": "x" * 300_000}, ""),
        ]
        for spec, word in cases:
            with pytest.raises(ApiError) as e:
                op.submit(spec)
            assert e.value.status == 400, spec
            assert word in e.value.body["message"]
        r = op.session.post(f"{h.url}/api/v1/jobs", data=b'{"mode": "query", "dataset": NaN}',
                            headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "Traceback" not in r.text
        assert op.jobs() == []

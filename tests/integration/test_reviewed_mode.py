"""Reviewed mode (non-DP) on real runs: declared files only, disclosure checks, differencing,
human review; undeclared files never leave."""
from __future__ import annotations

import json

import pytest

from sandbox.config import REPO_ROOT
from sandbox.core.errors import InvalidInput
from sandbox.core.errors import Conflict
from sandbox.core.release.reasons import REASONS
from tests.conftest import make_services, need_backend

POLICY = (REPO_ROOT / "policies" / "enterprise_registry.yaml").read_text(encoding="utf-8")


@pytest.fixture
def services(demo_datasets_dir, tmp_path):
    need_backend("bwrap")
    svc = make_services(tmp_path, demo_datasets_dir, dataset="enterprise_registry", policy=POLICY,
                        users=[("operator", "operator", "operator-token"), ("rev", "compliance", "rev-token")])
    yield svc
    svc.dispose()


def job(code: str | None = None, outputs=None) -> dict:
    """The example job; with `outputs`, a job of the program's free-form files alone."""
    spec = json.loads((REPO_ROOT / "jobs" / "reviewed_enterprise.json").read_text())
    if outputs is not None:
        spec["outputs"] = outputs
        spec.pop("tables"), spec.pop("models")
    return {"spec": spec, "code": code or (REPO_ROOT / "jobs" / "reviewed_enterprise.py").read_text()}


def approve(services, rev, job_id):
    """Approve with a sign-off on every finding that needs review (a person looked)."""
    detail = services.compliance.review_detail(rev, job_id)
    signoffs = [{"output": o["name"], "check": c["name"], "note": "looked"} for o in detail["outputs"]
                for c in o["checks"] if c["status"] == "needs_review"]
    return services.compliance.review(rev, job_id, "approve", signoffs=signoffs)


def checks_of(detail, name):
    return {c["name"].split(":")[0]: c["status"] for c in next(o for o in detail["outputs"] if o["name"] == name)["checks"]}


@pytest.mark.bwrap
def test_example_job_goes_to_review_with_every_check_and_releases_after_approval(services):
    op, rev = services.accounts.authenticate("operator-token"), services.accounts.authenticate("rev-token")
    job_id = services.operator.submit(op, job())["job"]["id"]
    assert services.agent.execute(job_id) == "awaiting_review"
    detail = services.compliance.review_detail(rev, job_id)
    # The tables and the model are computed by trusted code (tests/integration/test_reviewed_trusted.py
    # checks their values); the free-form note goes to a person.
    freq = checks_of(detail, "active_by_district.csv")
    assert {"computed", "min_cell_count", "zero_cells", "differencing", "cell_statistics"} <= set(freq)
    assert "fail" not in freq.values() and freq["computed"] == "pass", freq
    assert {"dominance_nk", "dominance_p"} <= set(checks_of(detail, "employees_by_type.csv"))
    assert checks_of(detail, "capital_model.json")["degrees_of_freedom"] == "pass"
    assert checks_of(detail, "notes.txt")["content"] == "needs_review"
    approve(services, rev, job_id)
    assert services.views.get_job(rev, job_id)["state"] == "released"
    files = services.views.release(rev, job_id)["files"]
    assert set(files) == {"active_by_district.csv", "employees_by_type.csv", "capital_model.json", "notes.txt"}


@pytest.mark.bwrap
def test_undeclared_files_are_dropped_and_named_only_to_compliance(services):
    op, rev = services.accounts.authenticate("operator-token"), services.accounts.authenticate("rev-token")
    code = ("import os\n"
            "def analyse(df, out):\n"
            "    df.groupby('industry').size().reset_index(name='n').to_csv(os.path.join(out, 'n.csv'), index=False)\n"
            "    df.head(50).to_csv(os.path.join(out, 'raw_rows.csv'), index=False)\n"
            "    os.symlink('/data', os.path.join(out, 'link'))\n")
    job_id = services.operator.submit(op, job(code, [{"name": "n.csv", "type": "csv", "table_kind": "frequency"}]))["job"]["id"]
    assert services.agent.execute(job_id) == "awaiting_review"
    detail = services.compliance.review_detail(rev, job_id)
    assert [o["name"] for o in detail["outputs"]] == ["n.csv"]
    dropped = {d[0] for d in detail["compliance"]["dropped_files"]}
    assert {"raw_rows.csv", "link"} <= dropped
    seen = json.dumps(services.views.get_job(op, job_id))
    assert "raw_rows" not in seen and "dropped" not in seen


@pytest.mark.bwrap
def test_row_level_output_and_differencing_fail_and_block_release(services):
    op, rev = services.accounts.authenticate("operator-token"), services.accounts.authenticate("rev-token")
    rows = ("import os\n"
            "def analyse(df, out):\n"
            "    df[['enterprise_id', 'district', 'registered_capital']].head(200).to_csv(os.path.join(out, 't.csv'), index=False)\n")
    job_id = services.operator.submit(op, job(rows, [{"name": "t.csv", "type": "csv", "table_kind": "magnitude"}]))["job"]["id"]
    services.agent.execute(job_id)
    assert "fail" in checks_of(services.compliance.review_detail(rev, job_id), "t.csv").values()
    with pytest.raises(Conflict):
        services.compliance.review(rev, job_id, "approve")

    # Release a total by district, then a table that excludes one small group: the difference isolates it.
    total = ("import os\n"
             "def analyse(df, out):\n"
             "    df.groupby('district').size().reset_index(name='n').to_csv(os.path.join(out, 'd.csv'), index=False)\n")
    first = services.operator.submit(op, job(total, [{"name": "d.csv", "type": "csv", "table_kind": "frequency"}]))["job"]["id"]
    services.agent.execute(first)
    approve(services, rev, first)
    minus = ("import os\n"
             "def analyse(df, out):\n"
             "    keep = df.drop(df[df['district'] == '兰州市'].index[:3]) if len(df) > 2000 else df\n"
             "    keep.groupby('district').size().reset_index(name='n').to_csv(os.path.join(out, 'd2.csv'), index=False)\n")
    second = services.operator.submit(op, job(minus, [{"name": "d2.csv", "type": "csv", "table_kind": "frequency"}]))["job"]["id"]
    services.agent.execute(second)
    assert checks_of(services.compliance.review_detail(rev, second), "d2.csv")["differencing"] == "fail"


@pytest.mark.bwrap
def test_a_run_that_fails_on_real_data_goes_to_compliance_like_a_success(services):
    op, rev = services.accounts.authenticate("operator-token"), services.accounts.authenticate("rev-token")
    code = ("import os\n"
            "def analyse(df, out):\n"
            "    if len(df) > 2000:\n"
            "        raise RuntimeError('failed on the real data: %d rows' % len(df))\n"
            "    df.groupby('district').size().reset_index(name='n').to_csv(os.path.join(out, 'd.csv'), index=False)\n")
    job_id = services.operator.submit(op, job(code, [{"name": "d.csv", "type": "csv", "table_kind": "frequency"}]))[
        "job"]["id"]
    assert services.agent.execute(job_id) == "awaiting_review"
    seen = services.views.get_job(op, job_id)
    assert seen["state"] == "in_progress" and seen["message"] == ""
    detail = services.compliance.review_detail(rev, job_id)
    assert detail["compliance"]["failed"]["stage"] == "run" and detail["outputs"] == []
    assert "failed on the real data" in detail["run_logs"][-1]["stderr"]
    with pytest.raises(Conflict):
        services.compliance.review(rev, job_id, "approve")
    services.compliance.review(rev, job_id, "reject", "run_failed", "raises on the real data")
    with services.store.transaction() as s:  # the outcome becomes visible after start + wall limit
        from sandbox.adapters.store.models import Job
        s.get(Job, job_id).visible_after = None
    seen = services.views.get_job(op, job_id)
    assert seen["state"] == "rejected" and seen["message"] == "Rejected by compliance: " + REASONS["run_failed"]


@pytest.mark.bwrap
def test_bad_reviewed_contracts_are_refused_with_the_field(services):
    op = services.accounts.authenticate("operator-token")
    with pytest.raises(InvalidInput) as e:
        services.operator.submit(op, job(outputs=[{"name": "../x.csv", "type": "csv", "table_kind": "frequency"}]))
    assert e.value.field == "outputs[0]"
    with pytest.raises(InvalidInput) as e:
        services.operator.submit(op, job(outputs=[{"name": "x.png", "type": "csv", "table_kind": "frequency"}]))
    assert "must end with" in str(e.value)
    with pytest.raises(InvalidInput) as e:
        services.operator.submit(op, job(code="def analyse(df, out):\n    raise RuntimeError('x')\n"))
    assert "mock data" in str(e.value)

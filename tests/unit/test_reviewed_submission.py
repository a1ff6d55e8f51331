"""A reviewed job written the new way, through the API, the web page and the use cases (fakes:
in-memory repository, the runner in-process): trusted tables and models alone need no code, a
spec with nothing to compute is a 400 naming what to add, the cost preview lists every file the
job will produce, a free-form file that is refused or missing blocks approval and the review
page says why, and each approved trusted table is recorded for differencing exactly once."""
from __future__ import annotations

import json

import pytest

from sandbox.config import REPO_ROOT
from sandbox.controller.web import auth, create_app
from sandbox.core import states as st
from tests.unit import test_lifecycle_fakes as fakes
from tests.unit.test_lifecycle_fakes import make, user

tiny_datasets = fakes.tiny_datasets
OPERATOR = {"Authorization": "Bearer tok-operator"}
REVIEWER = {"Authorization": "Bearer tok-reviewer"}
TOTAL = {"name": "total", "group_by": [], "aggregates": [{"statistic": "count"}]}
MODEL = {"name": "capital_model", "family": "ols", "dependent": "registered_capital", "regressors": ["employees"]}


def spec(**parts) -> dict:
    return {"mode": "reviewed", "dataset": "enterprise_registry", "purpose": "business_environment_analysis",
            **parts}


@pytest.fixture
def world(tmp_path, tiny_datasets):
    svc, queue, _, _ = make(tmp_path, tiny_datasets)
    return svc, queue, create_app(svc.settings, services=svc).test_client()


def submit(client, body, **params):
    return client.post("/api/v1/jobs", headers=OPERATOR, json=body, query_string=params)


def approve_all(svc, job_id):
    rev = user(svc, "reviewer")
    detail = svc.compliance.review_detail(rev, job_id)
    signoffs = [{"output": f["output"], "check": f["check"], "note": "looked"} for f in detail["findings"]]
    return svc.compliance.review(rev, job_id, "approve", signoffs=signoffs)


@pytest.mark.parametrize("body", [spec(tables=[TOTAL]), {"spec": spec(models=[MODEL])},
                                  {"spec": spec(tables=[TOTAL], models=[MODEL]), "code": ""}],
                         ids=["bare spec, tables alone", "{spec}, models alone", "{spec, code: ''}"])
def test_trusted_tables_and_models_alone_are_submitted_without_code_and_run(world, body):
    svc, queue, client = world
    resp = submit(client, body)
    assert resp.status_code == 201 and resp.get_json()["admitted"], resp.get_json()
    job_id = resp.get_json()["job"]["id"]
    queue.drain()
    detail = svc.compliance.review_detail(user(svc, "reviewer"), job_id)
    assert detail["state"] == st.AWAITING_REVIEW, detail.get("run_logs")
    wanted = {"total.csv"} if "tables" in (body.get("spec") or body) else set()
    wanted |= {"capital_model.json"} if "models" in (body.get("spec") or body) else set()
    assert {o["name"] for o in detail["outputs"]} == wanted
    assert all(o["content"] for o in detail["outputs"])     # computed, not refused
    assert not [c for o in detail["outputs"] for c in o["checks"] if c["name"].startswith("computed:")
                and c["status"] == "fail"]


@pytest.mark.parametrize("body, field, words", [
    (spec(), "tables", ["tables", "models", "program", "outputs"]),
    ({"spec": spec(), "code": ""}, "tables", ["tables", "program"]),
    (spec(program="p.py", outputs=[{"name": "n.txt", "type": "text"}]), "code", ["code", "tables"]),
    ({"spec": spec(tables=[TOTAL]), "code": "def analyse(df, out):\n    pass\n"}, "outputs", ["outputs"]),
    ({"spec": spec(tables=[TOTAL]), "code": 3}, "code", ["code"]),
])
def test_a_reviewed_spec_without_what_to_compute_is_a_400_naming_what_to_add(world, body, field, words):
    _, _, client = world
    resp = submit(client, body)
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["field"] == field and all(w in resp.get_json()["message"] for w in words)


def test_the_cost_preview_lists_every_output_trusted_ones_first(world):
    _, _, client = world
    example = json.loads((REPO_ROOT / "jobs" / "reviewed_enterprise.json").read_text(encoding="utf-8"))
    code = (REPO_ROOT / "jobs" / example["program"]).read_text(encoding="utf-8")
    resp = submit(client, {"spec": example, "code": code}, dry_run="1")
    assert resp.status_code == 200, resp.get_json()
    plan = resp.get_json()["queries"]["outputs"]
    assert [(o["name"], o["computed_by"]) for o in plan] == [
        ("active_by_district.csv", "trusted"), ("employees_by_type.csv", "trusted"),
        ("capital_model.json", "trusted"), ("notes.txt", "program")]


def test_the_program_page_previews_and_submits_a_job_without_code(world):
    svc, queue, client = world
    auth.set_password(svc, "operator", "a-long-passphrase-1")
    with client.session_transaction() as s:
        s["user"], s["pw"], s["csrf"], s["lang"] = "operator", auth._pw_marker(svc.accounts.user("operator")), "t", "en"
    form = {"csrf_token": "t", "dataset": "enterprise_registry", "mode": "reviewed",
            "purpose": "business_environment_analysis", "spec_text": json.dumps({"tables": [TOTAL]}), "code": ""}
    resp = client.post("/ui/programs", data=form)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'data-computed-by="trusted"' in html and "total.csv" in html
    resp = client.post("/ui/programs", data={**form, "action": "submit"})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    queue.drain()
    (job,) = svc.views.list_jobs(user(svc, "operator"))
    assert svc.compliance.review_detail(user(svc, "reviewer"), job["id"])["state"] == st.AWAITING_REVIEW


FREE_FORM = ("import os\n"
             "def analyse(df, out):\n"
             "    with open(os.path.join(out, 'chart.svg'), 'w') as f:\n"
             "        f.write('<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>')\n"
             "    with open(os.path.join(out, 'notes.txt'), 'w') as f:\n"
             "        f.write('fine')\n"
             "    if len(df) >= 1000:   # the submission's mock check runs on 1,000 mock rows, the real data has 400\n"
             "        with open(os.path.join(out, 'missing.csv'), 'w') as f:\n"
             "            f.write('n\\n12\\n')\n")


@pytest.mark.parametrize("outputs, refused, finding", [
    ([{"name": "chart.svg", "type": "svg"}], "chart.svg", "declare the figure as a png"),
    ([{"name": "missing.csv", "type": "csv", "table_kind": "frequency"}], "missing.csv", "not written by the program"),
], ids=["svg refused", "declared file not written"])
def test_a_refused_or_missing_free_form_file_blocks_approval_and_the_page_says_why(world, outputs, refused, finding):
    svc, queue, client = world
    body = {"spec": spec(tables=[TOTAL], program="p.py", outputs=[{"name": "notes.txt", "type": "text"}, *outputs]),
            "code": FREE_FORM}
    resp = submit(client, body)
    assert resp.status_code == 201, resp.get_json()
    job_id = resp.get_json()["job"]["id"]
    queue.drain()
    detail = client.get(f"/api/v1/reviews/{job_id}", headers=REVIEWER).get_json()
    stored = next(o for o in detail["outputs"] if o["name"] == refused)
    assert stored["content"] == "" and stored["size"] == 0
    failing = [c for c in stored["checks"] if c["status"] == "fail"]
    assert failing and finding in failing[0]["explanation"]

    # Job-wide and per-file approval are both refused (409), even with every sign-off.
    signoffs = [dict(f, note="looked") for f in detail["findings"]]
    resp = client.post(f"/api/v1/reviews/{job_id}", headers=REVIEWER, json={"decision": "approve",
                                                                           "signoffs": signoffs})
    assert resp.status_code == 409 and refused in resp.get_json()["message"]
    files = {o["name"]: {"decision": "approve"} for o in detail["outputs"]}
    resp = client.post(f"/api/v1/reviews/{job_id}", headers=REVIEWER, json={"files": files, "signoffs": signoffs})
    assert resp.status_code == 409 and refused in resp.get_json()["message"]

    auth.set_password(svc, "reviewer", "a-long-passphrase-1")
    with client.session_transaction() as s:
        s["user"], s["pw"], s["csrf"], s["lang"] = "reviewer", auth._pw_marker(svc.accounts.user("reviewer")), "t", "en"
    html = client.get(f"/ui/reviews/{job_id}").get_data(as_text=True)
    index = next(i for i, o in enumerate(detail["outputs"]) if o["name"] == refused)
    block = html.split(f'id="refused-{index}"', 1)[1].split("</div>", 1)[0]
    assert "Nothing of this file is stored" in block and finding in block
    # The reviewer can still reject it, with a reason.
    files[refused] = {"decision": "reject", "reason": "disclosure_risk"}
    resp = client.post(f"/api/v1/reviews/{job_id}", headers=REVIEWER, json={"files": files, "signoffs": signoffs})
    assert resp.status_code == 200 and resp.get_json()["state"] == st.REJECTED


def test_each_approved_trusted_table_is_recorded_once_for_later_differencing(world):
    svc, queue, _ = world
    op = user(svc, "operator")

    def run(table_name):
        job_id = svc.operator.submit(op, spec(tables=[dict(TOTAL, name=table_name)]))["job"]["id"]
        queue.drain()
        detail = svc.compliance.review_detail(user(svc, "reviewer"), job_id)
        found = {c["name"]: c for o in detail["outputs"] for c in o["checks"]}
        return job_id, found[f"differencing:{table_name}.csv"], detail

    first, check, _ = run("total")
    assert check["status"] == "pass" and "the 0 earlier release(s)" in check["explanation"]
    assert approve_all(svc, first)["state"] == st.RELEASED
    second, check, detail = run("everyone")          # the same grouping: overlaps the first
    assert check["status"] == "pass" and "the 1 earlier release(s)" in check["explanation"]
    assert [e["job"] for e in detail["differencing"]["earlier_releases"]] == [first]
    assert approve_all(svc, second)["state"] == st.RELEASED
    with svc.repo.transaction() as tx:
        released = tx.released_aggregates("enterprise_registry", detail["dataset_version"])
    assert sorted((r.job_id, r.name) for r in released) == sorted([(first, "total.csv"), (second, "everyone.csv")])
    _, check, _ = run("third")
    assert "the 2 earlier release(s)" in check["explanation"]


"""The review endpoint takes per-file decisions and sign-offs (JSON API, Flask's test client,
fakes): what is wrong comes back as HTTP 400 naming the field, an unsigned finding as 409, and
the OpenAPI document describes both inputs."""
from __future__ import annotations

import pytest

from sandbox.controller.web import create_app
from sandbox.core import states as st
from tests.unit import test_lifecycle_fakes as fakes
from tests.unit.test_lifecycle_fakes import make, user
from tests.unit.test_review_signoff import job_without_the_failing_table

tiny_datasets = fakes.tiny_datasets
HEADERS = {"Authorization": "Bearer tok-reviewer"}


@pytest.fixture
def api(tmp_path, tiny_datasets):
    svc, queue, _, _ = make(tmp_path, tiny_datasets)
    job_id = svc.operator.submit(user(svc, "operator"), job_without_the_failing_table())["job"]["id"]
    queue.drain()
    return svc, create_app(svc.settings, services=svc).test_client(), job_id


def test_the_review_page_data_lists_findings_and_every_output_in_full(api):
    _, client, job_id = api
    detail = client.get(f"/api/v1/reviews/{job_id}", headers=HEADERS).get_json()
    assert detail["findings"] and all({"output", "check"} == set(f) for f in detail["findings"])
    assert detail["file_decisions"] == ["approve", "request_changes", "reject"]
    assert all("content" in o for o in detail["outputs"]) and "earlier_releases" in detail["differencing"]


@pytest.mark.parametrize("body, field", [
    ({"files": {"employees_by_type.csv": {"decision": "maybe"}}}, "files"),
    ({"files": {"employees_by_type.csv": {"decision": "reject", "reason": "cells too small"}}}, "reason"),
    ({"files": ["employees_by_type.csv"]}, "files"),
    ({"decision": "approve", "signoffs": "all"}, "signoffs"),
    ({"decision": "approve", "signoffs": [{"output": "notes.txt", "check": "file:notes.txt"}]}, "signoffs"),
    ({}, "decision"),
])
def test_bad_review_input_is_a_400_naming_the_field(api, body, field):
    _, client, job_id = api
    resp = client.post(f"/api/v1/reviews/{job_id}", headers=HEADERS, json=body)
    assert resp.status_code == 400 and resp.get_json()["field"] == field, resp.get_json()


def test_approving_needs_every_sign_off_then_releases(api):
    svc, client, job_id = api
    detail = client.get(f"/api/v1/reviews/{job_id}", headers=HEADERS).get_json()
    resp = client.post(f"/api/v1/reviews/{job_id}", headers=HEADERS, json={"decision": "approve"})
    assert resp.status_code == 409 and "sign off" in resp.get_json()["message"]
    files = {o["name"]: {"decision": "approve"} for o in detail["outputs"]}
    resp = client.post(f"/api/v1/reviews/{job_id}", headers=HEADERS,
                       json={"files": files, "signoffs": [dict(f, note="looked") for f in detail["findings"]]})
    assert resp.status_code == 200 and resp.get_json()["state"] == st.RELEASED


def test_openapi_describes_file_decisions_and_sign_offs(api):
    _, client, _ = api
    post = client.get("/api/v1/openapi.json").get_json()["paths"]["/reviews/{job_id}"]["post"]
    props = post["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert props["files"]["additionalProperties"]["properties"]["decision"]["enum"] == \
        ["approve", "request_changes", "reject"]
    assert props["signoffs"]["items"]["required"] == ["output", "check"]

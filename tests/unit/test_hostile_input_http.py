"""Hostile input found by a hostile-user run (issue 16): each was a 500, a traceback or a
silently changed request. Every one must be a 400 (CLI: exit 2) naming what to fix."""
from __future__ import annotations

import json

import pytest

from sandbox.config import REPO_ROOT
from sandbox.controller import cli
from sandbox.controller.web import create_app
from sandbox.core.errors import InvalidInput
from tests.unit import test_lifecycle_fakes as fakes
from tests.unit.test_lifecycle_fakes import make, program_job, user

tiny_datasets = fakes.tiny_datasets

OPERATOR = {"Authorization": "Bearer tok-operator"}
OWNER = {"Authorization": "Bearer tok-owner"}
REVIEWER = {"Authorization": "Bearer tok-reviewer"}


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_datasets):
    svc, _queue, _clock, _backend = make(tmp_path_factory.mktemp("hostile"), tiny_datasets)
    return svc, create_app(svc.settings, services=svc).test_client()


def health_query(eps):
    spec = json.loads((REPO_ROOT / "jobs" / "health_query.json").read_text())
    for q in spec["queries"]:
        q["epsilon"] = eps
    return spec


@pytest.mark.parametrize("eps", [1e-300, 1e-310, 1e-320, 5e-324, 1e-100])
def test_a_vanishing_query_epsilon_is_refused_not_a_500(world, eps):
    svc, client = world
    with pytest.raises(InvalidInput) as e:
        svc.operator.submit(user(svc, "operator"), health_query(eps), dry_run=True)
    assert e.value.field == "queries[0].epsilon" and "at least 1e-06" in str(e.value)
    resp = client.post("/api/v1/jobs?dry_run=1", headers=OPERATOR, json=health_query(eps))
    assert resp.status_code == 400 and resp.get_json()["field"] == "queries[0].epsilon"


@pytest.mark.parametrize("eps", [1e-320, 5e-324, 1e-300])
def test_a_vanishing_program_epsilon_is_refused_not_a_500(world, eps):
    _svc, client = world
    job = program_job()
    job["spec"]["epsilon"] = eps
    resp = client.post("/api/v1/jobs?dry_run=1", headers=OPERATOR, json=job)
    assert resp.status_code == 400 and resp.get_json()["field"] == "epsilon"


def test_the_smallest_allowed_epsilon_is_still_accepted(world):
    svc, _client = world
    assert svc.operator.submit(user(svc, "operator"), health_query(1e-6), dry_run=True)["admitted"] in (True, False)


DEEP = "[" * 10_000 + "]" * 10_000


@pytest.mark.parametrize("path,headers", [("/api/v1/jobs", OPERATOR), ("/api/v1/policies", OWNER),
                                          ("/api/v1/reviews/j-none", REVIEWER)])
def test_json_nested_ten_thousand_deep_is_a_400(world, path, headers):
    _svc, client = world
    body = '{"content": ' + DEEP + "}"
    resp = client.post(path, headers=headers, data=body, content_type="application/json")
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert "nests deeper than 32 levels" in resp.get_json()["message"]


def test_brackets_inside_strings_do_not_count_as_nesting(world):
    _svc, client = world
    spec = health_query(0.5)
    spec["purpose"] = "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ \\\" {{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{"
    resp = client.post("/api/v1/jobs?dry_run=1", headers=OPERATOR, json=spec)
    assert "nests deeper" not in resp.get_data(as_text=True)


@pytest.mark.parametrize("path,headers,body", [
    ("/api/v1/jobs", OPERATOR, '{"mode": "query", "mode": "program"}'),
    ("/api/v1/policies", OWNER, '{"content": "a: 1", "content": "b: 2"}'),
    ("/api/v1/reviews/j-none", REVIEWER, '{"decision": "approve", "decision": "reject"}')])
def test_duplicate_json_keys_are_refused_naming_the_key(world, path, headers, body):
    _svc, client = world
    resp = client.post(path, headers=headers, data=body, content_type="application/json")
    assert resp.status_code == 400
    key = json.loads(body.split(",")[0] + "}").popitem()[0]
    assert resp.get_json()["field"] == key and f"key '{key}' appears twice" in resp.get_json()["message"]


def test_malformed_json_is_a_400_naming_the_problem(world):
    _svc, client = world
    resp = client.post("/api/v1/policies", headers=OWNER, data='{"content": ', content_type="application/json")
    assert resp.status_code == 400 and "not valid JSON" in resp.get_json()["message"]
    resp = client.post("/api/v1/policies", headers=OWNER, data="content: x", content_type="text/plain")
    assert resp.status_code == 400 and "Content-Type: application/json" in resp.get_json()["message"]


def test_body_too_large_names_the_limit_the_sender_ran_into(world):
    _svc, client = world
    yaml_spec = "purpose: " + "x" * 900_000
    resp = client.post("/api/v1/jobs", headers=OPERATOR, data=yaml_spec, content_type="text/yaml")
    assert resp.status_code == 400
    assert resp.get_json()["message"] == f"spec is {len(yaml_spec)} bytes; the limit is 65536 bytes"
    job = program_job()
    job["code"] += "#" * 900_000
    resp = client.post("/api/v1/jobs", headers=OPERATOR, json=job)
    message = resp.get_json()["message"]
    assert resp.status_code == 400 and "the limit is 851968 bytes (832 KiB) in all" in message
    assert "program code at most 262144 bytes" in message and "spec at most 65536 bytes" in message


def test_405_lists_the_allowed_methods(world):
    _svc, client = world
    resp = client.delete("/api/v1/jobs", headers=OPERATOR)
    assert resp.status_code == 405
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    assert resp.get_json()["error"] == "method_not_allowed"


def test_cli_refuses_a_spec_file_that_is_not_utf8(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes("mode: query\npurpose: caf\xe9\n".encode("latin-1"))
    monkeypatch.setenv("SANDBOX_TOKEN", "tok")
    monkeypatch.setenv("SANDBOX_URL", "http://127.0.0.1:9")
    for argv in (["submit", str(spec)], ["policy", "validate", str(spec)]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "not UTF-8 text" in err and "Traceback" not in err

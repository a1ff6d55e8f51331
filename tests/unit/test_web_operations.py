"""Operations endpoints of the app (issue 16): liveness, readiness, Prometheus metrics for
administrators only, one trusted reverse proxy, request ids."""
from __future__ import annotations

import json

import pytest

from sandbox.config import REPO_ROOT
from sandbox.controller.web import create_app
from tests.unit import test_lifecycle_fakes as fakes
from tests.unit.test_lifecycle_fakes import make, user

tiny_datasets = fakes.tiny_datasets
METRICS_TOKEN = "scrape-" + "x" * 24


def app_for(svc, **settings):
    return create_app(svc.settings.with_(**settings), services=svc)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_datasets):
    svc, queue, _clock, _backend = make(tmp_path_factory.mktemp("ops"), tiny_datasets)
    spec = json.loads((REPO_ROOT / "jobs" / "health_query.json").read_text())
    svc.operator.submit(user(svc, "operator"), spec)
    queue.drain()
    svc.operator.submit(user(svc, "operator"), spec)  # a second one stays queued
    return svc


def test_liveness_and_readiness(world):
    client = app_for(world).test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_readiness_fails_when_the_store_is_unreachable(world, monkeypatch):
    client = app_for(world).test_client()

    def broken():
        raise ConnectionError("connection refused by 10.0.0.5:5432")
    monkeypatch.setattr(world.parts.repo, "transaction", broken)
    resp = client.get("/readyz")
    assert resp.status_code == 503 and resp.get_json()["status"] == "not_ready"
    assert "10.0.0.5" not in resp.get_data(as_text=True)
    assert client.get("/healthz").status_code == 200


def test_metrics_are_off_without_a_token_and_closed_to_api_tokens(world):
    assert app_for(world).test_client().get("/metrics").status_code == 404
    client = app_for(world, metrics_token=METRICS_TOKEN).test_client()
    assert client.get("/metrics").status_code == 401
    for role_token in ("tok-operator", "tok-owner", "tok-reviewer"):
        assert client.get("/metrics", headers={"Authorization": f"Bearer {role_token}"}).status_code == 401


def test_metrics_for_the_administrator(world):
    client = app_for(world, metrics_token=METRICS_TOKEN).test_client()
    client.get("/api/v1/jobs/abc123", headers={"Authorization": "Bearer tok-operator"})
    resp = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    text = resp.get_data(as_text=True)
    assert 'sandbox_jobs{mode="query",state="queued"} 1.0' in text
    assert "sandbox_queue_depth 1.0" in text
    assert 'sandbox_gate_verdicts_total{mode="query",outcome=' in text
    spent = [line for line in text.splitlines() if line.startswith('sandbox_budget_spent_epsilon{dataset="health_visits"}')]
    assert spent and float(spent[0].split()[-1]) > 0
    # Latency by URL rule: no job id, dataset or operator name becomes a label value.
    assert 'endpoint="/api/v1/jobs/<job_id>"' in text and "abc123" not in text
    assert "operator=" not in text and "tok-" not in text  # no per-operator series, no credentials


def test_one_trusted_proxy_hop(world):
    for behind, expected in ((True, "198.51.100.2"), (False, "127.0.0.1")):
        app = app_for(world, behind_proxy=behind)

        @app.get("/_peer")
        def _peer():
            from flask import request
            return {"addr": request.remote_addr, "scheme": request.scheme}

        resp = app.test_client().get("/_peer", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                                     headers={"X-Forwarded-For": "203.0.113.66, 198.51.100.2",
                                              "X-Forwarded-Proto": "https"})
        assert resp.get_json()["addr"] == expected  # never the client-forged left-most hop
        assert resp.get_json()["scheme"] == ("https" if behind else "http")


def test_request_ids(world):
    client = app_for(world).test_client()
    mine = client.get("/healthz", headers={"X-Request-Id": "proxy-0123456789"})
    assert mine.headers["X-Request-Id"] == "proxy-0123456789"
    forged = client.get("/healthz", headers={"X-Request-Id": "bad id <script>"})
    assert forged.headers["X-Request-Id"] != "bad id <script>" and len(forged.headers["X-Request-Id"]) == 32

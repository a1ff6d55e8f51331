"""Structured logs (issue 16): under `sandbox serve` the API writes one JSON object per line,
its access log included, carrying the request id of each request; a worker under
SANDBOX_LOG_FORMAT=json tags the lines of a job with its job id; no line carries an
exception's text (it may quote data), only its type and where it was raised."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from sandbox.config import REPO_ROOT
from sandbox.logs import JsonFormatter
from tests.conftest import make_env, need_backend
from tests.integration.harness import running

KEYS = {"time", "level", "logger", "message"}


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    assert all(KEYS <= set(r) for r in records), [r for r in records if not KEYS <= set(r)][:3]
    return records


def test_sandbox_serve_writes_json_lines_with_the_request_id(tmp_path):
    port = _free_port()
    env = dict(os.environ, SANDBOX_HOME=str(tmp_path / "home"),
               SANDBOX_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}")
    for name in ("SANDBOX_LOG_FORMAT", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)  # the default under `sandbox serve` is JSON
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.controller.cli", "serve", "--port", str(port)],
                            env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rid = "trace-" + "7" * 20
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert time.monotonic() < deadline, "gunicorn did not become ready"
            time.sleep(0.2)
        resp = requests.get(f"http://127.0.0.1:{port}/api/v1/me?secret=value", headers={"X-Request-Id": rid},
                            timeout=5)
        assert resp.status_code == 401 and resp.headers["X-Request-Id"] == rid
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    records = _json_lines(out)
    access = [r for r in records if r["logger"] == "gunicorn.access" and r.get("request_id") == rid]
    assert len(access) == 1, records
    assert access[0]["path"] == "/api/v1/me" and access[0]["status"] == 401 and access[0]["method"] == "GET"
    assert "secret" not in out  # the query string is not logged
    assert any(r["logger"] == "gunicorn.error" and r["message"].startswith("Booting worker") for r in records)


def test_a_log_line_in_a_request_carries_its_request_id_and_no_exception_text():
    from flask import Flask, g
    app = Flask(__name__)
    try:
        raise ValueError("row 17: district='城关区' salary=12345")
    except ValueError as e:
        record = logging.LogRecord("sandbox.x", logging.ERROR, __file__, 1, "store write failed for %s: %r",
                                   ("job-1", e), sys.exc_info())
    with app.test_request_context("/api/v1/jobs"):
        g.request_id = "req-abcdefgh"
        line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-abcdefgh"
    assert line["message"].startswith("store write failed for job-1: <ValueError")
    assert line["level"] == "ERROR" and line["error"] == "ValueError" and line["stack"]
    assert "城关区" not in json.dumps(line, ensure_ascii=False) and "12345" not in json.dumps(line)


@pytest.mark.bwrap
def test_worker_json_lines_carry_the_job_id(tmp_path):
    need_backend("bwrap")
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data", "bwrap")
    env["SANDBOX_LOG_FORMAT"] = "json"
    spec = {"mode": "query", "dataset": "enterprise_registry", "purpose": "business_environment_analysis",
            "queries": [{"name": "by_district", "statistic": "count", "group_by": ["district"], "epsilon": 0.05}]}
    with running(env, {"enterprise_registry": 2000}) as h:
        job_id = h.client("operator").submit(spec)["job"]["id"]
        h.wait_state(job_id, {"released", "failed"}, timeout=180)
    records = _json_lines(h.worker_log())
    tagged = [r for r in records if r.get("job_id") == job_id]
    assert tagged and any("succeeded" in r["message"] for r in tagged), records[-10:]

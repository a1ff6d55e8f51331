"""`sandbox serve` is a real gunicorn master with deploy/gunicorn.conf.py: it migrates the
store once, forks workers that answer /api/v1 on 127.0.0.1, writes an access log, merges
every worker's HTTP latency into /metrics, and never prints Flask's development-server
warning (issue 16)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import requests

from sandbox.config import REPO_ROOT

TOKEN = "scrape-" + "y" * 24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sandbox_serve_runs_the_api_under_gunicorn(tmp_path):
    port = _free_port()
    env = dict(os.environ, SANDBOX_HOME=str(tmp_path / "home"), SANDBOX_WEB_WORKERS="2",
               SANDBOX_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}", SANDBOX_METRICS_TOKEN=TOKEN)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.controller.cli", "serve", "--port", str(port)],
                            env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if requests.get(f"{base}/readyz", timeout=10).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert time.monotonic() < deadline, "gunicorn did not become ready"
            time.sleep(0.2)
        for _ in range(6):  # spread over both workers
            resp = requests.get(f"{base}/api/v1/openapi.json", timeout=5)
            assert resp.status_code == 200 and resp.json()["openapi"].startswith("3.")
        resp = requests.get(f"{base}/api/v1/me", timeout=5)
        assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"
        assert resp.headers["X-Request-Id"]
        metrics = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).text
        count = [line for line in metrics.splitlines()
                 if line.startswith("sandbox_http_request_duration_seconds_count")
                 and 'endpoint="/api/v1/openapi.json"' in line]
        assert count and float(count[0].split()[-1]) == 6.0  # every worker's requests, merged
        assert "sandbox_queue_depth 0.0" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Starting gunicorn" in out and out.count("Booting worker") >= 2
    assert '"message": "GET /api/v1/openapi.json 200"' in out  # the access log (JSON lines by default)
    assert "development server" not in out and "WARNING: This is a development server" not in out


def test_make_run_serves_without_the_development_server_warning(tmp_path):
    """`sandbox up` (make run): the same gunicorn, one process; SIGTERM stops it and its worker."""
    port = _free_port()
    env = dict(os.environ, SANDBOX_HOME=str(tmp_path / "home"), SANDBOX_BACKEND="bwrap",
               SANDBOX_DATASETS_DIR=str(tmp_path / "data"))
    for name in ("SANDBOX_DATABASE_URL", "SANDBOX_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.controller.cli", "up", "--rows", "300", "--port", str(port)],
                            env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/v1/datasets", timeout=10).status_code == 401:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert time.monotonic() < deadline, "make run did not come up"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    assert "Starting gunicorn" in out and "=== public-data sandbox is up ===" in out
    assert "development server" not in out
    gone = subprocess.run(["pgrep", "-f", f"--bind 127.0.0.1:{port}"], capture_output=True, text=True)
    assert gone.stdout.strip() == ""  # gunicorn stopped with it

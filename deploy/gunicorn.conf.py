"""Gunicorn settings for the sandbox API (`sandbox serve`, deploy/compose.yaml, deploy/systemd).

Every value can be overridden from the environment, so one file serves the embedded
default (`make run`: one process, SQLite) and a bureau's deployment (PostgreSQL, several
processes behind a reverse proxy). See docs/operations.md.
"""
import multiprocessing
import os
import shutil
import tempfile

# The app factory is called in each worker process (nothing is built at import time).
wsgi_app = "sandbox.controller.web:create_app()"
bind = os.environ.get("SANDBOX_BIND", "127.0.0.1:5000")

# Sync workers with a few threads each: requests are short (the API never runs jobs).
# SQLite allows one writer at a time, so the embedded default keeps a single process.
_default_workers = "1" if os.environ.get("SANDBOX_DATABASE_URL", "sqlite").startswith("sqlite") else \
    str(min(2 * multiprocessing.cpu_count() + 1, 9))
workers = int(os.environ.get("SANDBOX_WEB_WORKERS", _default_workers))
threads = int(os.environ.get("SANDBOX_WEB_THREADS", "4"))
worker_class = "gthread"

# A request that takes longer than this is killed and its worker replaced (uploads of large
# datasets go through `sandbox dataset register` on the server, not the API).
timeout = int(os.environ.get("SANDBOX_WEB_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then, so a slow leak cannot grow without bound.
max_requests = 2000
max_requests_jitter = 200

# Access log on stdout (journald / docker logs collect it); no query strings with tokens:
# tokens travel in the Authorization header, which is never logged.
accesslog = os.environ.get("SANDBOX_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("SANDBOX_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms rid=%({x-request-id}o)s'
# JSON lines by default here (SANDBOX_LOG_FORMAT=text for gunicorn's own text; `make run` sets
# text): error log, access log and the app's loggers alike, with request ids (sandbox/logs.py).
os.environ.setdefault("SANDBOX_LOG_FORMAT", "json")
logger_class = "sandbox.logs.GunicornLogger"

# No run-time control socket (gunicorn >= 27 would write one under $HOME): the service user
# has no writable home, and reloads go through signals (HUP) from systemd or Docker.
control_socket_disable = True

# Forwarded headers are trusted by the app itself (SANDBOX_BEHIND_PROXY=1: exactly one hop,
# werkzeug ProxyFix), not by gunicorn: gunicorn's own forwarded_allow_ips stays at its default.


# /metrics merges every worker's HTTP latency (prometheus_client multiprocess mode): each
# worker writes its samples under this directory, fresh for every start of the master.
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sandbox-metrics-")


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def on_starting(server):
    # Migrate the store once, in the master, before any worker starts (workers then find the
    # schema at head instead of racing to migrate it).
    from sandbox.adapters.store.db import Store
    from sandbox.config import load
    settings = load()
    settings.home.mkdir(parents=True, exist_ok=True)
    store = Store(settings.database_url)
    store.migrate()
    store.dispose()

"""Service logs: plain text, or one JSON object per line for a log collector (issue 16).

SANDBOX_LOG_FORMAT=json (the default under `sandbox serve`, set by deploy/gunicorn.conf.py and
deploy/) or text (the default elsewhere; `make run` keeps it for a person at a terminal).
A JSON line carries time (UTC, ISO 8601), level, logger, message and, when known, the
request id of the API request (X-Request-Id) or the job id a worker works on.

Never raw data: messages are written by this code base and name ids, states and counts. An
exception's own text can quote a value read from a dataset (pyarrow and pandas errors do), so a
JSON line carries the exception's type and where it was raised, not its message. The access
log names the path, never the query string.
"""
from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import traceback
from datetime import datetime, timezone

FORMATS = ("text", "json")
# The job a worker thread is running (set around each Celery task, below).
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("sandbox_job_id", default=None)


def log_format(environ=None) -> str:
    value = (environ if environ is not None else os.environ).get("SANDBOX_LOG_FORMAT", "text").strip().lower()
    if value not in FORMATS:
        raise SystemExit(f"SANDBOX_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


def _request_id() -> str | None:
    if "flask" not in sys.modules:  # a worker: no requests
        return None
    from flask import g, has_request_context
    return g.get("request_id") if has_request_context() else None


def _access_fields(atoms: dict) -> dict:
    """gunicorn's access-log atoms (glogging.Logger.atoms) as fields; no query string, no headers
    other than the request id the app set on the response."""
    status = atoms.get("s")
    fields = {"message": f"{atoms.get('m')} {atoms.get('U')} {status}", "method": atoms.get("m"),
              "path": atoms.get("U"), "status": int(status) if str(status).isdigit() else status,
              "bytes": atoms.get("B"), "duration_ms": atoms.get("M"), "remote": atoms.get("h")}
    rid = atoms.get("{x-request-id}o")
    if rid:
        fields["request_id"] = rid
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name}
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            out.update(_access_fields(record.args))
        else:
            out["message"] = record.getMessage()
        rid = _request_id()
        if rid and "request_id" not in out:
            out["request_id"] = rid
        job_id = job_id_var.get()
        if job_id:
            out["job_id"] = job_id
        out["process"] = record.process
        if record.exc_info and record.exc_info[0] is not None:
            exc = record.exc_info[1]
            for text in (repr(exc), str(exc)):  # Celery's "raised unexpected: ValueError('...')"
                if text and "message" in out:
                    out["message"] = out["message"].replace(text, f"<{type(exc).__name__}, text withheld>")
            out["error"] = record.exc_info[0].__name__
            out["stack"] = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(record.exc_info[2])]
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_root(level: str | int = "INFO", stream=None) -> None:
    """Every logger that propagates to the root (sandbox.*, flask, celery, alembic) writes JSON
    lines; warnings go through logging too, so nothing else reaches the stream."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one line per plugin
    logging.captureWarnings(True)


try:
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # gunicorn is only on API hosts
    _GunicornLogger = object


class GunicornLogger(_GunicornLogger):
    """gunicorn's logger (deploy/gunicorn.conf.py: logger_class): its error and access logs, and
    the app's own loggers, as JSON lines when SANDBOX_LOG_FORMAT=json; gunicorn's text otherwise."""

    def setup(self, cfg):
        super().setup(cfg)
        if log_format() != "json":
            return
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(JsonFormatter())
        configure_root(cfg.loglevel)


def _task_prerun(task=None, args=None, kwargs=None, **_kw):
    if task is not None and task.name in ("sandbox.run_job", "sandbox.run_block"):
        job_id = (args or [None])[0] or (kwargs or {}).get("job_id")
        job_id_var.set(str(job_id) if job_id else None)


def _task_postrun(**_kw):
    job_id_var.set(None)


def install_worker_logging(loglevel: str = "INFO") -> list[str]:
    """Before app.worker_main: JSON lines from the Celery worker when asked for, each task's log
    lines tagged with its job id. Returns the global options for worker_main's argv (JSON mode
    drops Celery's banner, which is not a log line)."""
    from celery import signals
    signals.task_prerun.connect(_task_prerun, weak=False)
    signals.task_postrun.connect(_task_postrun, weak=False)
    if log_format() != "json":
        return []

    @signals.setup_logging.connect(weak=False)
    def _setup_logging(loglevel=None, **_kw):
        configure_root(loglevel or "INFO")

    configure_root(loglevel)  # lines logged before Celery's own setup
    # Celery prints a few lines straight to the terminal from its signal handlers ("worker: Warm
    # shutdown"), with os.write because logging's locks are unsafe there; print them as JSON
    # lines the same lock-free way, so the stream stays one object per line.
    import celery.apps.worker
    celery.apps.worker.safe_say = _say_json
    return ["--quiet"]


def _say_json(msg, f=sys.__stderr__):
    record = logging.LogRecord("celery.worker", logging.INFO, __file__, 0, str(msg), None, None)
    os.write(f.fileno(), (JsonFormatter().format(record) + "\n").encode())

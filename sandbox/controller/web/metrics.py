"""Prometheus metrics at /metrics, for administrators only (docs/operations.md).

Who may scrape: the monitoring system of the bureau, holding SANDBOX_METRICS_TOKEN (sent
as `Authorization: Bearer ...`). Without the setting /metrics does not exist (404); an
operator's or owner's API token never opens it. What it shows is bookkeeping the store
already holds: jobs by mode and state, the queue's depth, gate verdicts (worst check
status per run), epsilon charged per dataset, and HTTP latency. Nothing is computed from
raw data beyond what the gate already released or compliance already reads, and
nothing names an operator.

Store-derived values are read at scrape time (so every gunicorn worker answers the
same); HTTP latency is counted per process, merged across gunicorn workers through
prometheus_client's multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set (the gunicorn
config does so).
"""
from __future__ import annotations

import hmac
import os
import time

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from sandbox.core import states as st
from sandbox.core.release.checks import FAIL, NEEDS_REVIEW, PASS

# Latency buckets for an API whose requests read a store: 5 ms .. 10 s.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class StoreCollector:
    """Gauges and counters read from the store at scrape time (one transaction)."""

    def __init__(self, services):
        self.services = services

    def collect(self):
        jobs = GaugeMetricFamily("sandbox_jobs", "Jobs by mode and state", labels=["mode", "state"])
        queue = GaugeMetricFamily("sandbox_queue_depth", "Jobs admitted and waiting for a worker (state queued)")
        running = GaugeMetricFamily("sandbox_jobs_running", "Jobs held by a worker (state running)")
        verdicts = CounterMetricFamily("sandbox_gate_verdicts", "Gate runs by worst check status",
                                       labels=["mode", "outcome"])
        spent = GaugeMetricFamily("sandbox_budget_spent_epsilon", "Epsilon charged on each dataset, all operators",
                                  labels=["dataset"])
        with self.services.repo.transaction() as tx:
            all_jobs = tx.jobs()
            mode_of = {j.id: j.mode for j in all_jobs}
            counts: dict[tuple[str, str], int] = {}
            for job in all_jobs:
                key = (job.mode, job.state)
                counts[key] = counts.get(key, 0) + 1
            gate: dict[tuple[str, str], int] = {}
            for record in tx.audit_records():
                if record.action == "gate.checks":
                    key = (mode_of.get(record.subject, "unknown"), _worst(record.payload.get("checks") or []))
                    gate[key] = gate.get(key, 0) + 1
            charged = {}
            for ds in tx.datasets():
                charged[ds.name] = sum(e.epsilon for e in tx.budget_entries(ds.name) if e.kind == "charge")
        for (mode, state), n in sorted(counts.items()):
            jobs.add_metric([mode, state], n)
        queue.add_metric([], sum(n for (_m, s), n in counts.items() if s == st.QUEUED))
        running.add_metric([], sum(n for (_m, s), n in counts.items() if s == st.RUNNING))
        for (mode, outcome), n in sorted(gate.items()):
            verdicts.add_metric([mode, outcome], n)
        for name, eps in sorted(charged.items()):
            spent.add_metric([name], eps)
        yield from (jobs, queue, running, verdicts, spent)


def _worst(checks: list) -> str:
    statuses = {c.get("status") for c in checks if isinstance(c, dict)}
    for status in (FAIL, NEEDS_REVIEW, PASS):
        if status in statuses:
            return status
    return "none"


def init_app(app: Flask, settings, services) -> None:
    """HTTP latency on every request; /metrics behind the administrators' token."""
    http = Histogram("sandbox_http_request_duration_seconds", "HTTP request latency",
                     ["method", "endpoint", "status"], buckets=_BUCKETS, registry=CollectorRegistry())
    store = StoreCollector(services)

    @app.before_request
    def _start_timer():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response):
        started = g.pop("metrics_started", None)
        if started is not None:
            # The URL rule, not the path: job ids and dataset names stay out of label values.
            endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
            http.labels(request.method, endpoint, str(response.status_code)).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics")
    def metrics():
        token = settings.metrics_token
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header.startswith("Bearer ") else ""
        if not token:
            return jsonify({"error": "not_found", "message": "no such endpoint; see /api/v1/openapi.json"}), 404
        if not hmac.compare_digest(given.encode(), token.encode()):
            return jsonify({"error": "unauthorized", "message": "metrics are for administrators: send "
                                                                "'Authorization: Bearer <SANDBOX_METRICS_TOKEN>'"}), 401
        registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess
            multiprocess.MultiProcessCollector(registry)  # every gunicorn worker's latency
        else:
            registry.register(_Single(http))
        registry.register(store)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


class _Single:
    """One metric of another registry, re-exposed (single-process serving)."""

    def __init__(self, metric):
        self.metric = metric

    def collect(self):
        return self.metric.collect()

"""Liveness (/healthz: the process answers) and readiness (/readyz: the store answers too),
for a load balancer or an orchestrator; and a request id on every response (X-Request-Id,
kept from the proxy when it sent a sane one), which the access log prints. Neither
endpoint needs a token, so neither says more than ok / not ready."""
from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, g, jsonify, request

log = logging.getLogger(__name__)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def init_app(app: Flask, services) -> None:
    @app.before_request
    def _request_id():
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex

    @app.after_request
    def _echo_request_id(response):
        if "request_id" in g:
            response.headers["X-Request-Id"] = g.request_id
        return response

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz():
        try:
            with services.repo.transaction() as tx:
                tx.audit_head()
        except Exception:  # noqa: BLE001 - any store failure means: do not send traffic here
            log.exception("readiness: store unreachable")
            return jsonify({"status": "not_ready", "message": "the store is unreachable"}), 503
        return jsonify({"status": "ready"})

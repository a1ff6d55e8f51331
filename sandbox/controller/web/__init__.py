"""Flask application factory."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request

from sandbox.core.errors import InvalidInput
from sandbox.core.ledger import LedgerCorrupt
from sandbox.core.specs.common import MAX_SPEC_BYTES
from sandbox.core.specs.source import MAX_CODE_BYTES
from sandbox.core.states import TransitionError


def create_app(settings=None, services=None) -> Flask:
    from sandbox.bootstrap import bootstrap
    from sandbox.config import load
    from sandbox.core.errors import Conflict, Forbidden, NotFound

    from sandbox.controller.web.jsonbody import StrictJSONProvider, StrictRequest

    app = Flask(__name__)
    app.json = StrictJSONProvider(app)
    app.request_class = StrictRequest
    settings = settings or load()
    app.config["SERVICES"] = services or bootstrap(settings)
    # Refuse huge bodies early: a spec is small, program code is at most MAX_CODE_BYTES, and a
    # form or JSON body carries that code once, plus escaping (JSON, form encoding) and the spec.
    app.config["MAX_CONTENT_LENGTH"] = 3 * MAX_CODE_BYTES + 64 * 1024

    if settings.behind_proxy:
        # Exactly one reverse proxy in front (docs/operations.md): its X-Forwarded-* headers
        # are believed, one hop deep; a client's own forged hops further left are ignored.
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1)

    from sandbox.controller.web import health, metrics
    health.init_app(app, app.config["SERVICES"])
    metrics.init_app(app, settings, app.config["SERVICES"])

    from sandbox.controller.web.api import bp as api_bp
    app.register_blueprint(api_bp)

    # Web UI (/ui): sessions signed with a per-installation secret, Chinese by default.
    from sandbox.controller.web import auth, ui
    auth.init_app(app, settings)
    ui.init_app(app)

    @app.errorhandler(InvalidInput)
    def _invalid(e: InvalidInput):
        return jsonify(e.to_dict()), 400

    @app.errorhandler(Forbidden)
    def _forbidden(e):
        return jsonify({"error": "forbidden", "message": str(e)}), 403

    @app.errorhandler(NotFound)
    def _not_found(e):
        return jsonify({"error": "not_found", "message": str(e)}), 404

    @app.errorhandler(Conflict)
    @app.errorhandler(TransitionError)
    def _conflict(e):
        return jsonify({"error": "conflict", "message": str(e)}), 409

    @app.errorhandler(404)
    def _404(_e):
        return jsonify({"error": "not_found", "message": "no such endpoint; see /api/v1/openapi.json"}), 404

    @app.errorhandler(405)
    def _405(e):
        allowed = sorted(e.valid_methods or ())
        resp = jsonify({"error": "method_not_allowed",
                        "message": f"method not allowed on this endpoint; use {', '.join(allowed)}"})
        resp.headers["Allow"] = ", ".join(allowed)  # RFC 9110: a 405 must list what is allowed
        return resp, 405

    @app.errorhandler(413)
    def _413(_e):
        return jsonify({"error": "invalid_input", "message": _too_large_message(app.config["MAX_CONTENT_LENGTH"])}), 400

    @app.errorhandler(LedgerCorrupt)
    def _ledger_corrupt(e):
        # Loud for administrators (the entry at fault), a plain refusal for the user.
        logging.getLogger("sandbox.ledger").error("budget ledger of dataset %s is broken: %s; "
                                                  "run `sandbox audit verify`", e.dataset, e.detail)
        if request.path.startswith("/ui"):
            from sandbox.controller.web.ui.common import error_page
            from sandbox.controller.web.ui.i18n import localized
            return error_page(503, localized(e))
        return jsonify({"error": "ledger_unavailable", "message": str(e)}), 503

    @app.errorhandler(500)
    def _500(_e):
        # Never a stack trace: it could carry internal paths or, worse, data.
        return jsonify({"error": "internal", "message": "internal error; the incident is logged"}), 500

    @app.get("/")
    def index():
        return jsonify({"service": "public-data sandbox", "api": "/api/v1", "openapi": "/api/v1/openapi.json"})

    return app


def _too_large_message(body_limit: int) -> str:
    """Name the limit the sender ran into: a YAML/text spec is refused past MAX_SPEC_BYTES,
    so telling its sender about the whole-body limit (code included) would mislead."""
    size = request.content_length
    sent = f"{size} bytes" if size is not None else "too large"
    if request.path.startswith("/api/v1/jobs") and not request.is_json:
        return f"spec is {sent}; the limit is {MAX_SPEC_BYTES} bytes"
    return (f"request body is {sent}; the limit is {body_limit} bytes ({body_limit // 1024} KiB) in all: "
            f"program code at most {MAX_CODE_BYTES} bytes, the spec at most {MAX_SPEC_BYTES} bytes")

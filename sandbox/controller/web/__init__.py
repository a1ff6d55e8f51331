"""Flask application factory."""
from __future__ import annotations

from flask import Flask, jsonify

from sandbox.core.errors import InvalidInput
from sandbox.core.specs.source import MAX_CODE_BYTES
from sandbox.core.states import TransitionError


def create_app(settings=None, services=None) -> Flask:
    from sandbox.bootstrap import bootstrap
    from sandbox.config import load
    from sandbox.core.errors import Conflict, Forbidden, NotFound

    app = Flask(__name__)
    settings = settings or load()
    app.config["SERVICES"] = services or bootstrap(settings)
    # Refuse huge bodies early: a spec is small, program code is at most MAX_CODE_BYTES, and a
    # form or JSON body carries that code once, plus escaping (JSON, form encoding) and the spec.
    app.config["MAX_CONTENT_LENGTH"] = 3 * MAX_CODE_BYTES + 64 * 1024

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
    def _405(_e):
        return jsonify({"error": "method_not_allowed", "message": "method not allowed on this endpoint"}), 405

    @app.errorhandler(413)
    def _413(_e):
        limit_kib = app.config["MAX_CONTENT_LENGTH"] // 1024
        return jsonify({"error": "invalid_input", "message": f"request body too large (max {limit_kib} KiB)"}), 400

    @app.errorhandler(500)
    def _500(_e):
        # Never a stack trace: it could carry internal paths or, worse, data.
        return jsonify({"error": "internal", "message": "internal error; the incident is logged"}), 500

    @app.get("/")
    def index():
        return jsonify({"service": "public-data sandbox", "api": "/api/v1", "openapi": "/api/v1/openapi.json"})

    return app

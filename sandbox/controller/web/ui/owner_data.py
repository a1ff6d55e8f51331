"""Owners register a dataset version from the browser: the Parquet file, or the files of a
(hive-partitioned) folder at their relative paths, go up in chunks (static/dataset_upload.js,
resumable, with progress) to the owner's upload area, then the form registers them like the
CLI and the API do (owner.register_upload) while the page polls how far the report has got,
and shows the registration report. Owner only: the report is computed from the data."""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request
from flask_babel import gettext as _

from sandbox.controller.web import auth
from sandbox.controller.web.ui.common import services, user
from sandbox.controller.web.ui.i18n import localized
from sandbox.core.errors import InvalidInput
from sandbox.core.states import OWNER

bp = Blueprint("owner_data", __name__)


@bp.url_value_preprocessor
def _upload_limit(endpoint, _values):
    # Runs before the UI's CSRF check reads the request. A chunk's raw body is never parsed as a
    # form, and upload_chunk bounds what it reads by the configured limit (and refuses a larger
    # declared length with a clear message); every other body keeps the app's small default.
    if endpoint == "ui.owner_data.upload_chunk" and request.mimetype == "application/octet-stream":
        request.max_content_length = None


@bp.get("/datasets/register")
@auth.login_required(OWNER)
def register_form():
    return render_template("dataset_register.html", max_bytes=services().settings.upload_max_bytes,
                           manifest="", result=None, error=None)


@bp.post("/datasets/register")
@auth.login_required(OWNER)
def register():
    manifest = request.form.get("manifest", "")
    upload = request.form.get("upload", "")
    enforce = request.form.get("enforce") == "on"
    progress = request.form.get("progress") or None  # the page polls registration_progress with it
    try:
        if not manifest.strip():
            raise InvalidInput(_("Paste the manifest YAML (sandbox dataset draft writes one)."), "manifest")
        result = services().owner.register_upload(user(), manifest, upload, enforce=enforce, progress=progress)
    except InvalidInput as e:
        return render_template("dataset_register.html", max_bytes=services().settings.upload_max_bytes,
                               manifest=manifest, result=None, error=localized(e),
                               report=getattr(e, "report", None)), 400
    return render_template("dataset_register.html", max_bytes=services().settings.upload_max_bytes,
                           manifest=manifest, result=result, error=None, report=result["report"])


@bp.post("/uploads")
@auth.login_required(OWNER)
def start_upload():
    from sandbox.agent import uploads
    return jsonify(uploads.start(services().settings, user().name)), 201


@bp.get("/registration-progress/<token>")
@auth.login_required(OWNER)
def registration_progress(token):
    from sandbox.agent import regprogress
    from sandbox.core.errors import NotFound
    try:
        return jsonify(regprogress.read(services().settings, user().name, token))
    except NotFound:
        # Not started yet or already finished: the page keeps its "computing" state meanwhile
        # (a 200, so the browser logs no failed request for an expected answer).
        return jsonify({"stage": None, "fraction": None, "running": False})
    except InvalidInput as e:
        return jsonify({"error": "invalid_input", "message": localized(e)}), 400


@bp.get("/uploads/<upload_id>")
@auth.login_required(OWNER)
def upload_status(upload_id):
    from sandbox.agent import uploads
    return jsonify(uploads.status(services().settings, user().name, upload_id, request.args.get("path")))


@bp.put("/uploads/<upload_id>")
@auth.login_required(OWNER)
def upload_chunk(upload_id):
    from sandbox.agent import uploads
    settings = services().settings
    try:
        if (request.content_length or 0) > settings.upload_max_bytes:
            uploads.discard(settings, user().name, upload_id)
            raise InvalidInput(_("The file is over the upload limit of %(n)s bytes.", n=settings.upload_max_bytes))
        try:
            offset = int(request.args.get("offset", ""))
        except ValueError:
            raise InvalidInput("offset: send ?offset=N", "offset") from None
        return jsonify(uploads.append(settings, user().name, upload_id, offset, request.stream,
                                      request.content_length, request.args.get("path")))
    except InvalidInput as e:
        return jsonify({"error": "invalid_input", "message": localized(e)}), 400

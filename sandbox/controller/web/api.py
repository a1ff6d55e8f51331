"""REST API under /api/v1. Views parse the request, call one service, render JSON."""
from __future__ import annotations

import io
from functools import wraps

from flask import Blueprint, Response, current_app, g, jsonify, request

from sandbox.core.errors import InvalidInput
from sandbox.core.release import bundle
from sandbox.core.states import COMPLIANCE, OPERATOR, OWNER
from sandbox.core.errors import Forbidden
from sandbox.controller.web.openapi import spec as openapi_spec

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def services():
    return current_app.config["SERVICES"]


def auth(*roles):
    def deco(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            token = header[7:].strip() if header.startswith("Bearer ") else ""
            user = services().accounts.authenticate(token)
            if user is None:
                return jsonify({"error": "unauthorized",
                                "message": "send 'Authorization: Bearer <token>' with a valid token"}), 401
            if roles and user.role not in roles:
                raise Forbidden(f"this endpoint is for: {', '.join(roles)}")
            g.user = user
            return view(*args, **kwargs)
        return wrapper
    return deco


def _json_body() -> dict:
    data = request.get_json()  # web.jsonbody: malformed, too deep or duplicate keys -> 400
    if not isinstance(data, dict):
        raise InvalidInput("send a JSON object body with Content-Type: application/json")
    return data


def _flag(value) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_spec())


@bp.get("/me")
@auth()
def me():
    return jsonify({"name": g.user.name, "role": g.user.role})


@bp.get("/datasets")
@auth()
def datasets():
    return jsonify({"datasets": services().views.list_datasets()})


@bp.get("/datasets/<name>")
@auth()
def dataset(name):
    return jsonify(services().views.get_dataset(name))


@bp.get("/datasets/<name>/mock")
@auth()
def mock(name):
    fmt = request.args.get("format", "csv")
    try:
        rows = int(request.args.get("rows", "1000"))
    except ValueError:
        raise InvalidInput("rows must be an integer", "rows")
    data = services().views.mock_data(name, fmt, rows)
    mime = "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
    return Response(data, mimetype=mime,
                    headers={"Content-Disposition": f"attachment; filename={name}-mock.{fmt}"})


@bp.get("/datasets/<name>/policy")
@auth()
def policy(name):
    try:
        return jsonify(services().views.current_policy_text(name))
    except Forbidden:
        # No policy applied yet: an empty current policy, so the owner's first diff shows
        # the whole file as new (the dataset's existence is public: it is in the catalog).
        services().views.get_dataset(name)
        return jsonify({"dataset": name, "version": None, "hash": None, "content": None})


# ---- data owners: register versions (a server-side path or URI under the allowed roots),
# read their reports, retire versions. Reports are owner/compliance only.
@bp.post("/datasets")
@auth(OWNER)
def register_dataset():
    body = _json_body()
    manifest, source, upload = body.get("manifest"), body.get("data"), body.get("upload")
    if not isinstance(manifest, str) or not manifest.strip():
        raise InvalidInput("manifest: send the manifest YAML text", "manifest")
    enforce = _flag(body.get("enforce", False))
    progress = body.get("progress")  # the client's token for GET /registration-progress/<progress_id>
    if upload is not None:
        return jsonify(services().owner.register_upload(g.user, manifest, upload, enforce=enforce,
                                                        progress=progress)), 201
    if not isinstance(source, str) or not source.strip():
        raise InvalidInput("data: send a server-side path or a file:// or s3:// URI under the allowed roots, "
                           "or the id of your upload as 'upload'", "data")
    return jsonify(services().owner.register_version(g.user, manifest, source, enforce=enforce,
                                                     progress=progress)), 201


@bp.get("/registration-progress/<progress_id>")
@auth(OWNER)
def registration_progress(progress_id):
    """How far the owner's running registration has got (stage names and a fraction only)."""
    from sandbox.agent import regprogress
    return jsonify(regprogress.read(services().settings, g.user.name, progress_id))


# Chunked, resumable uploads of one Parquet file (agent/uploads.py): POST starts one, PUT
# appends a chunk at ?offset= (the bytes received so far, GET tells), up to the configured limit.
@bp.post("/uploads")
@auth(OWNER)
def start_upload():
    from sandbox.agent import uploads
    return jsonify(uploads.start(services().settings, g.user.name)), 201


@bp.get("/uploads/<upload_id>")
@auth(OWNER)
def upload_status(upload_id):
    from sandbox.agent import uploads
    return jsonify(uploads.status(services().settings, g.user.name, upload_id, request.args.get("path")))


@bp.put("/uploads/<upload_id>")
@auth(OWNER)
def upload_chunk(upload_id):
    from sandbox.agent import uploads
    settings = services().settings
    try:
        offset = int(request.args.get("offset", ""))
    except ValueError:
        raise InvalidInput("offset: send ?offset=N, the bytes received so far (GET /uploads/<id> tells)", "offset")
    # This body alone may be as large as the upload limit; the app's small default still holds elsewhere.
    request.max_content_length = settings.upload_max_bytes
    declared = request.content_length
    if declared is not None and declared > settings.upload_max_bytes:
        uploads.discard(settings, g.user.name, upload_id)
        raise InvalidInput(f"upload: over the limit of {settings.upload_max_bytes} bytes (SANDBOX_UPLOAD_MAX_BYTES)",
                           "upload")
    return jsonify(uploads.append(settings, g.user.name, upload_id, offset, request.stream, declared,
                                  request.args.get("path")))


@bp.delete("/uploads/<upload_id>")
@auth(OWNER)
def delete_upload(upload_id):
    from sandbox.agent import uploads
    uploads.folder(services().settings, g.user.name, upload_id)
    uploads.discard(services().settings, g.user.name, upload_id)
    return jsonify({"upload": upload_id, "deleted": True})


@bp.get("/datasets/<name>/versions")
@auth(OWNER, COMPLIANCE)
def dataset_versions(name):
    return jsonify({"dataset": name, "versions": services().owner.versions(g.user, name)})


@bp.get("/datasets/<name>/report")
@auth(OWNER, COMPLIANCE)
def dataset_report(name):
    return jsonify(services().owner.report(g.user, name, request.args.get("version")))


@bp.post("/datasets/<name>/retire")
@auth(OWNER)
def retire_dataset(name):
    body = request.get_json(silent=True) or {}
    version = body.get("version") if isinstance(body, dict) else None
    if version is not None and not isinstance(version, str):
        raise InvalidInput("version: send a version id (`sandbox dataset versions`)", "version")
    return jsonify(services().owner.retire(g.user, name, version))


@bp.post("/policies")
@auth(OWNER)
def apply_policy():
    body = _json_body()
    text = body.get("content")
    if not isinstance(text, str):
        raise InvalidInput("content: send the policy YAML text", "content")
    # Every web caller states a reason (None is for in-process setup only): missing reads as "".
    reason = body.get("reason")
    return jsonify(services().owner.apply_policy(g.user, text, body.get("filename", "<upload>"),
                                                 "" if reason is None else reason, body.get("base_version")))


@bp.get("/datasets/<name>/policy/versions")
@auth(OWNER, COMPLIANCE)
def policy_versions(name):
    from sandbox.controller.policy_changes import PolicyChanges
    return jsonify({"dataset": name, "versions": PolicyChanges(services().parts).versions(g.user, name)})


@bp.post("/datasets/<name>/policy/versions/<int:version>/decision")
@auth(COMPLIANCE)
def decide_policy_version(name, version):
    from sandbox.controller.policy_changes import PolicyChanges
    body = _json_body()
    decision = body.get("decision")
    if decision not in ("approve", "decline"):
        raise InvalidInput("decision: send \"approve\" or \"decline\"", "decision")
    reason = body.get("reason")
    return jsonify(PolicyChanges(services().parts).decide(g.user, name, version, decision == "approve",
                                                          "" if reason is None else reason))


@bp.get("/budget/<dataset>")
@auth()
def budget(dataset):
    return jsonify(services().views.balance(g.user, dataset, request.args.get("operator")))


@bp.post("/jobs")
@auth(OPERATOR)
def submit():
    ctype = request.content_type or ""
    if "json" in ctype:
        raw = request.get_json(force=True)  # web.jsonbody: a 400 naming what is wrong
    else:
        raw = request.get_data(as_text=True)  # YAML or JSON text
    dry_run = _flag(request.args.get("dry_run", "0"))
    if isinstance(raw, dict) and "dry_run" in raw:
        dry_run = dry_run or raw.pop("dry_run") is True
    result = services().operator.submit(g.user, raw, dry_run=dry_run)
    return jsonify(result), (200 if dry_run else 201)


@bp.get("/jobs")
@auth()
def jobs():
    return jsonify({"jobs": services().views.list_jobs(g.user, request.args.get("state"))})


@bp.get("/jobs/<job_id>")
@auth()
def job(job_id):
    return jsonify(services().views.get_job(g.user, job_id))


@bp.post("/jobs/<job_id>/cancel")
@auth(OPERATOR)
def cancel(job_id):
    return jsonify(services().operator.cancel(g.user, job_id))


@bp.post("/jobs/<job_id>/run-approval")
@auth(OWNER)
def run_approval(job_id):
    body = _json_body()
    decision = body.get("decision")
    if decision not in ("approve", "reject"):
        raise InvalidInput("decision must be 'approve' or 'reject'", "decision")
    return jsonify(services().owner.approve_run(g.user, job_id, decision == "approve", body.get("reason", "")))


@bp.get("/reviews")
@auth(COMPLIANCE)
def review_queue():
    return jsonify({"jobs": services().compliance.review_queue(g.user)})


@bp.get("/reviews/<job_id>")
@auth(COMPLIANCE)
def review_detail(job_id):
    return jsonify(services().compliance.review_detail(g.user, job_id))


@bp.post("/reviews/<job_id>")
@auth(COMPLIANCE)
def review(job_id):
    # `reason` is a code from /review-reasons (the operator reads its fixed text); `note` is
    # free text for compliance only. `files` decides each output, `signoffs` acknowledges each
    # needs_review finding (core.release.decision); their notes are compliance only too.
    body = _json_body()
    return jsonify(services().compliance.review(g.user, job_id, body.get("decision"), body.get("reason", ""),
                                                body.get("note", ""), files=body.get("files"),
                                                signoffs=body.get("signoffs")))


@bp.get("/reviews/<job_id>/diagnostics")
@auth(COMPLIANCE)
def review_diagnostics(job_id):
    return jsonify(services().compliance.diagnostics(g.user, job_id))


@bp.get("/review-reasons")
@auth(COMPLIANCE)
def review_reasons():
    return jsonify({"reasons": services().compliance.reasons()})


@bp.get("/jobs/<job_id>/release")
@auth()
def release(job_id):
    return jsonify(services().views.release(g.user, job_id))


@bp.get("/jobs/<job_id>/release.zip")
@auth()
def release_zip(job_id):
    data = bundle.release_zip(services().views.release(g.user, job_id))
    return Response(data, mimetype="application/zip",
                    headers={"Content-Disposition": f"attachment; filename=release-{job_id}.zip"})


@bp.get("/public-key")
def public_key():
    return Response(services().views.public_key(), mimetype="application/x-pem-file")


@bp.get("/public-keys")
def public_keys():
    # Every key the installation ever signed with, by key id: certificates signed before a
    # key rotation name theirs (`key_id`) and still verify (docs/operations.md).
    from sandbox.adapters.signing import key_id, load_or_create_key, public_keys as kept
    path = services().settings.signing_key_path
    return jsonify({"current": key_id(load_or_create_key(path)), "keys": kept(path)})


@bp.get("/audit/verify")
@auth(COMPLIANCE, OWNER)
def audit_verify():
    return jsonify(services().views.audit_verify())


@bp.get("/consumption/<dataset>")
@auth(OWNER, COMPLIANCE)
def consumption(dataset):
    return jsonify({"dataset": dataset, "periods": services().views.consumption(g.user, dataset),
                    "dataset_wide": services().views.dataset_usage(g.user, dataset)})


@bp.get("/metering")
@auth(OWNER, COMPLIANCE)
def metering():
    rows = services().views.metering(g.user)
    if request.args.get("format") == "csv":
        import csv
        buf = io.StringIO()
        fields = ["period", "operator", "dataset", "jobs", "runs", "run_seconds", "rows_scanned",
                  "epsilon_charged", "releases"]
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
        return Response(buf.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=metering.csv"})
    return jsonify({"metering": rows})


@bp.get("/audit/head")
@auth(COMPLIANCE, OWNER)
def audit_head():
    return jsonify(services().views.audit_head())


@bp.post("/admin/sweep")
@auth(OWNER, COMPLIANCE)
def sweep():
    return jsonify(services().agent.sweep())


# ---------------------------------------------------------------- notices (站内信, core/notices.py)
@bp.get("/notices")
@auth()
def notices():
    return jsonify(services().notices.inbox(g.user, unread_only=_flag(request.args.get("unread", "0"))))


@bp.post("/notices/<notice_id>/read")
@auth()
def notice_read(notice_id):
    return jsonify(services().notices.mark_read(g.user, notice_id))


@bp.post("/notices/read")
@auth()
def notices_read_all():
    return jsonify({"marked_read": services().notices.mark_all_read(g.user)})

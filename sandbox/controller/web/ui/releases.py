"""A released job: its tables with charts, and the files as downloads (each, or all in one zip
with the signed certificate and the public key that verifies it)."""
from __future__ import annotations

import json
from pathlib import PurePosixPath

from flask import Blueprint, Response, abort, render_template

from sandbox.controller.web import auth
from sandbox.controller.web.ui.charts import release_chart
from sandbox.controller.web.ui.common import services, user
from sandbox.core.intervals import ERROR_BAR_LEVEL
from sandbox.core.release import bundle

bp = Blueprint("releases", __name__)

# Every download is an attachment; anything but plain tables and text is octet-stream, so no
# released file (an SVG, say) is ever rendered by the browser as a page of this site.
MIME_TYPES = {".csv": "text/csv", ".json": "application/json", ".txt": "text/plain", ".md": "text/plain"}


@bp.get("/jobs/<job_id>/release")
@auth.login_required()
def page(job_id):
    rel = services().views.release(user(), job_id)
    result = json.loads(rel["files"].get("result.json", "{}"))
    tables = [release_chart(t) for t in result.get("tables", [])]
    cert = rel["certificate"]
    return render_template("release.html", job_id=job_id, tables=tables, cert=cert,
                           cert_json=json.dumps(cert, ensure_ascii=False, indent=2),
                           files=sorted(n for n in rel["files"] if n != "result.json"), level=ERROR_BAR_LEVEL)


@bp.get("/jobs/<job_id>/release.zip")
@auth.login_required()
def archive(job_id):
    data = bundle.release_zip(services().views.release(user(), job_id))
    return Response(data, mimetype="application/zip",
                    headers={"Content-Disposition": f"attachment; filename=release-{job_id}.zip"})


@bp.get("/jobs/<job_id>/certificate.json")
@auth.login_required()
def certificate(job_id):
    rel = services().views.release(user(), job_id)
    return Response(json.dumps(rel["certificate"], ensure_ascii=False, indent=2), mimetype="application/json",
                    headers={"Content-Disposition": f"attachment; filename=certificate-{job_id}.json"})


@bp.get("/jobs/<job_id>/files/<name>")
@auth.login_required()
def output(job_id, name):
    """One released output as its original bytes (binary outputs travel base64-encoded)."""
    rel = services().views.release(user(), job_id)
    if name not in rel["files"]:
        abort(404)
    mime = MIME_TYPES.get(PurePosixPath(name).suffix.lower(), "application/octet-stream")
    return Response(bundle.release_files(rel)[name], mimetype=mime,
                    headers={"Content-Disposition": f"attachment; filename={name}"})

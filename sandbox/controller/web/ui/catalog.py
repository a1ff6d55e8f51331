"""The catalog: datasets, a dataset's public page, and its mock data for developing a job."""
from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from flask_babel import gettext as _

from sandbox.controller.web import auth
from sandbox.controller.web.ui.common import current_policy, services
from sandbox.core.errors import InvalidInput

bp = Blueprint("catalog", __name__)


@bp.get("/datasets")
@auth.login_required()
def datasets():
    return render_template("datasets.html", datasets=services().views.list_datasets())


@bp.get("/datasets/<name>")
@auth.login_required()
def dataset(name):
    ds = services().views.get_dataset(name)
    policy = current_policy(name)
    return render_template("dataset.html", ds=ds, policy=policy)


@bp.get("/datasets/<name>/mock")
@auth.login_required()
def mock(name):
    fmt = request.args.get("format", "csv")
    try:
        rows = int(request.args.get("rows", "1000"))
    except ValueError:
        raise InvalidInput(_("rows must be a whole number"), "rows")
    data = services().views.mock_data(name, fmt, rows)
    mime = "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
    return Response(data, mimetype=mime, headers={"Content-Disposition": f"attachment; filename={name}-mock.{fmt}"})

"""The catalog: datasets, a dataset's public page, and its mock data for developing a job."""
from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from flask_babel import gettext as _

from sandbox.controller.web import auth
from sandbox.controller.web.ui.common import current_policy, services, user
from sandbox.controller.web.ui.gauges import operator_gauge, operator_gauges
from sandbox.core.errors import InvalidInput
from sandbox.core.states import OPERATOR

bp = Blueprint("catalog", __name__)


@bp.get("/datasets")
@auth.login_required()
def datasets():
    datasets = services().views.list_datasets()
    # The operator's own budget per dataset it is licensed for (GET /api/v1/budget's numbers).
    gauges = operator_gauges(user(), [d["name"] for d in datasets]) if user().role == OPERATOR else {}
    return render_template("datasets.html", datasets=datasets, gauges=gauges)


@bp.get("/datasets/<name>")
@auth.login_required()
def dataset(name):
    ds = services().views.get_dataset(name)
    policy = current_policy(name)
    gauge = operator_gauge(user(), name) if user().role == OPERATOR else None
    return render_template("dataset.html", ds=ds, policy=policy, gauge=gauge)


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

"""Budget consumption per operator and period (chart and table) and the metering report (+ CSV)."""
from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, render_template, request
from flask_babel import gettext as _

from sandbox.controller.web import auth
from sandbox.controller.web.ui.charts import consumption_chart
from sandbox.controller.web.ui.common import current_policy, services, user
from sandbox.core.states import COMPLIANCE, OWNER

bp = Blueprint("usage", __name__)

METERING_FIELDS = ["period", "operator", "dataset", "jobs", "runs", "run_seconds", "rows_scanned", "epsilon_charged",
                   "releases"]


@bp.get("/consumption")
@auth.login_required(OWNER, COMPLIANCE)
def consumption():
    sections = []
    for ds in services().views.list_datasets():
        current = current_policy(ds["name"])
        if current is None:
            continue
        periods = services().views.consumption(user(), ds["name"])
        budget = current["policy"].budget
        sections.append({"ds": ds, "periods": periods, "budget": budget,
                         "wide": services().views.dataset_usage(user(), ds["name"]),
                         "chart": consumption_chart(periods, float(budget.epsilon_per_period), _("all time"))})
    return render_template("consumption.html", sections=sections)


@bp.get("/metering")
@auth.login_required(OWNER, COMPLIANCE)
def metering():
    rows = services().views.metering(user())
    if request.args.get("format") == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METERING_FIELDS)
        w.writeheader()
        w.writerows(rows)
        # With a byte order mark, as released CSVs: Excel on Chinese Windows needs it to read UTF-8.
        return Response("\ufeff" + buf.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=metering.csv"})
    return render_template("metering.html", rows=rows)

"""Compliance review: the queue, a job's review page (checks, outputs, code, spec; the run's
logs in reviewed mode, and in DP modes only once decided), the vote (a reason from the fixed
list, and a note for compliance only)."""
from __future__ import annotations

import csv
import io
import json

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _, lazy_gettext as _l

from sandbox.controller.web import auth
from sandbox.controller.web.ui.common import services, user
from sandbox.controller.web.ui.i18n import STATE_LABELS, localized
from sandbox.core.errors import Conflict, InvalidInput
from sandbox.core.release.reasons import REASONS
from sandbox.core.states import COMPLIANCE

bp = Blueprint("reviews", __name__)

# What each release-gate check means, by name prefix (the check's own text says the specifics).
CHECK_HELP = {
    "result_format": _l("The runner's output is one well-formed JSON document of tables."),
    "declared_tables": _l("Exactly the tables the spec declared, one each: nothing extra can leave."),
    "shape": _l("Each table has the cells the spec and the public manifest imply, public keys only, finite "
                "numbers, and the declared noise mechanism and scale."),
    "table_size": _l("The table is below the size limit for a release."),
    "forbidden_columns": _l("No column the policy forbids (e.g. the person key) appears in the output."),
    "direct_identifiers": _l("No column looks like a direct identifier (ID numbers, names, phone numbers)."),
    "row_level": _l("The output is aggregated, not one row per person or record."),
}
PREVIEW_ROWS = 30


@bp.get("/reviews")
@auth.login_required(COMPLIANCE)
def index():
    return render_template("reviews.html", jobs=services().compliance.review_queue(user()))


@bp.get("/reviews/<job_id>")
@auth.login_required(COMPLIANCE)
def detail(job_id):
    review = services().compliance.review_detail(user(), job_id)
    voted = any(r.get("reviewer") == user().name for r in review["reviews"])
    # The raw run diagnostics of a DP job only once it is decided (compliance.diagnostics).
    # Opening them is an audit event, so they load on request (?diagnostics=1).
    diagnostics = (services().compliance.diagnostics(user(), job_id)
                   if review["mode"] != "reviewed" and review["diagnostics_open"] and request.args.get("diagnostics")
                   else None)
    return render_template("review.html", r=review, voted=voted, check_help=_check_help, diagnostics=diagnostics,
                           reasons=[(code, localized(text)) for code, text in REASONS.items()],
                           reason_label=lambda code: localized(REASONS[code]) if code in REASONS else code,
                           spec_json=json.dumps(review["spec"], ensure_ascii=False, indent=2),
                           previews={o["name"]: _csv_rows(o["preview"]) for o in review["outputs"]
                                     if o["name"].endswith(".csv")})


@bp.post("/reviews/<job_id>")
@auth.login_required(COMPLIANCE)
def vote(job_id):
    decision = request.form.get("decision")
    try:
        view = services().compliance.review(user(), job_id, decision, request.form.get("reason", ""),
                                            request.form.get("note", ""))
    except (InvalidInput, Conflict) as e:
        # Back to the page, with what to fix (e.g. no reason chosen for a rejection).
        flash(localized(e), "error")
        return redirect(url_for(".detail", job_id=job_id))
    flash(_("Your decision on job %(id)s is recorded; the job is now: %(state)s.", id=job_id,
            state=STATE_LABELS.get(view["state"], view["state"])), "ok")
    return redirect(url_for(".index"))


def _check_help(name: str) -> str:
    return CHECK_HELP.get(name.split(":", 1)[0], "")


def _csv_rows(text: str, limit: int = PREVIEW_ROWS) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))[:limit + 1]

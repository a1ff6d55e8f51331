"""Run approvals: a data owner approves or refuses running a job on their dataset."""
from __future__ import annotations

import json

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from sandbox.controller.web import auth
from sandbox.controller.web.ui.common import services, user
from sandbox.core import states as st
from sandbox.core.errors import InvalidInput
from sandbox.core.states import OWNER

bp = Blueprint("approvals", __name__)


@bp.get("/approvals")
@auth.login_required(OWNER)
def index():
    waiting = services().views.list_jobs(user(), st.AWAITING_APPROVAL)
    for j in waiting:
        j["spec_json"] = json.dumps(j["spec"], ensure_ascii=False, indent=2)
    return render_template("approvals.html", jobs=waiting)


@bp.post("/approvals/<job_id>")
@auth.login_required(OWNER)
def decide(job_id):
    decision = request.form.get("decision")
    if decision not in ("approve", "reject"):
        raise InvalidInput(_("Choose approve or refuse."), "decision")
    services().owner.approve_run(user(), job_id, decision == "approve", request.form.get("reason", ""))
    flash(_("Run of job %(id)s approved.", id=job_id) if decision == "approve"
          else _("Run of job %(id)s refused.", id=job_id), "ok")
    return redirect(url_for(".index"))

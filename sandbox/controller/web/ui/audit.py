"""The audit log for owners and compliance: newest first, searchable, with chain verification."""
from __future__ import annotations

import math

from flask import Blueprint, render_template, request

from sandbox.controller.web import auth
from sandbox.controller.web.ui.common import services
from sandbox.core.states import COMPLIANCE, OWNER

bp = Blueprint("audit", __name__)

AUDIT_PAGE = 100


@bp.get("/audit")
@auth.login_required(COMPLIANCE, OWNER)
def index():
    verify = services().views.audit_verify()
    records = services().views.audit_records()
    q = (request.args.get("q") or "").strip()
    if q:
        records = [r for r in records if q in r.subject or q in r.actor or q in r.action]
    records.reverse()  # newest first
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    pages = max(1, math.ceil(len(records) / AUDIT_PAGE))
    page = min(page, pages)
    shown = records[(page - 1) * AUDIT_PAGE: page * AUDIT_PAGE]
    return render_template("audit.html", verify=verify, records=shown, page=page, pages=pages, q=q,
                           total=len(records))

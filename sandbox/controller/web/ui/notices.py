"""The inbox (站内信) of every role: notices now visible to the signed-in user, marking read."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from sandbox.controller.web import auth
from sandbox.controller.web.ui.common import services, user
from sandbox.controller.web.ui.i18n import localized
from sandbox.core import notices as nt

bp = Blueprint("notices", __name__)

# Where a notice's link leads, by kind and role: the page that acts on it.
JOB_KINDS = (nt.RELEASED, nt.REJECTED, nt.FAILED)


def _link(n: dict, role: str) -> str | None:
    if n["kind"] in JOB_KINDS:
        return url_for("ui.jobs.detail", job_id=n["subject"])
    if n["kind"] == nt.NEEDS_REVIEW:
        return url_for("ui.reviews.detail", job_id=n["subject"])
    if n["kind"] == nt.RUN_APPROVAL:
        return url_for("ui.approvals.index")
    if n["kind"] == nt.POLICY_PROPOSED:
        return url_for("ui.policies.history", dataset=n["subject"])
    if n["kind"] == nt.LICENCE_EXPIRING and role != "operator":
        return url_for("ui.policies.index")
    return None


@bp.get("/inbox")
@auth.login_required()
def index():
    u = user()
    inbox = services().notices.inbox(u)
    for n in inbox["notices"]:
        n["text"], n["link"] = localized(n["message"]), _link(n, u.role)
    return render_template("notices.html", notices=inbox["notices"], unread=inbox["unread"])


@bp.post("/inbox/<notice_id>/read")
@auth.login_required()
def read(notice_id):
    services().notices.mark_read(user(), notice_id)
    return redirect(url_for(".index"))


@bp.post("/inbox/read-all")
@auth.login_required()
def read_all():
    count = services().notices.mark_all_read(user())
    flash(_("%(n)s notice(s) marked read.", n=count), "ok")
    return redirect(url_for(".index"))

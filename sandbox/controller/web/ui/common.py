"""What the UI's areas share: the services, the signed-in user, the error page, the applied
policy as shown on pages, and submitting a job (dry run or for real) from a form."""
from __future__ import annotations

from flask import current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from sandbox.controller.web import auth
from sandbox.controller.web.ui.i18n import localized
from sandbox.core.policy import file as pol
from sandbox.core.errors import Forbidden, InvalidInput


def services():
    return current_app.config["SERVICES"]


def user():
    return auth.current_user()


def error_page(status: int, message: str):
    """An HTML page with the message, never a trace."""
    return render_template("error.html", status=status, message=message), status


def current_policy(dataset: str) -> dict | None:
    """The applied policy (public to every role, as in the API), parsed for display."""
    try:
        cur = services().views.current_policy_text(dataset)
    except Forbidden:
        return None
    parsed = pol.parse_policy(cur["content"], f"policies/{dataset}.yaml")
    return {**cur, "policy": parsed, "dict": parsed.to_dict()}


def dry_run(spec) -> dict:
    """What submitting would do (admitted or why not, cost, balance), as the preview shows it."""
    try:
        result = services().operator.submit(user(), spec, dry_run=True)
    except InvalidInput as e:
        return {"ok": False, "error": localized(e)}
    except Forbidden as e:  # e.g. the dataset has no policy yet
        return {"ok": False, "error": localized(e)}
    return {"ok": True, **result, "reasons": [localized(r) for r in result["reasons"]]}


def submit_and_redirect(spec, on_error):
    """Submit for real and open the job page; `on_error(message)` renders the form again."""
    try:
        result = services().operator.submit(user(), spec)
    except (InvalidInput, Forbidden) as e:
        return on_error(localized(e))
    job = result["job"]
    if result["admitted"]:
        flash(_("Job %(id)s submitted.", id=job["id"]), "ok")
    else:
        flash(_("Job %(id)s was refused at admission; see the reasons below.", id=job["id"]), "error")
    return redirect(url_for("ui.jobs.detail", job_id=job["id"]))

"""Policies and licences: read by owners and compliance; owners validate, diff and apply.

Validating and diffing are pure domain calls on the text; only applying goes to the services."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from sandbox.controller.web import auth
from sandbox.controller.web.ui.common import current_policy, services, user
from sandbox.controller.web.ui.i18n import localized
from sandbox.core.policy import file as pol
from sandbox.core.errors import InvalidInput
from sandbox.core.states import COMPLIANCE, OWNER

bp = Blueprint("policies", __name__)


@bp.get("/policies")
@auth.login_required(OWNER, COMPLIANCE)
def index():
    rows = [{"ds": ds, "policy": current_policy(ds["name"])} for ds in services().views.list_datasets()]
    return render_template("policies.html", rows=rows, today=datetime.now(timezone.utc).date())


@bp.route("/policies/<dataset>", methods=["GET", "POST"])
@auth.login_required(OWNER, COMPLIANCE)
def detail(dataset):
    ds = services().views.get_dataset(dataset)
    current = current_policy(dataset)
    text = request.form.get("content") if request.method == "POST" else None
    if text is None:
        text = current["content"] if current else ""
    result = None
    if request.method == "POST":
        if user().role != OWNER:
            abort(403)
        result = _policy_action(request.form.get("action", "validate"), dataset, text, current)
        if result.get("applied"):
            flash(_("Policy version %(v)s applied.", v=result["applied"]["version"]) if result["applied"]["changed"]
                  else _("The policy is unchanged; nothing applied."), "ok")
            return redirect(url_for(".detail", dataset=dataset))
    return render_template("policy.html", ds=ds, current=current, text=text, result=result,
                           today=datetime.now(timezone.utc).date())


def _policy_action(action: str, dataset: str, text: str, current) -> dict:
    """validate / diff (pure domain calls) or apply (the service)."""
    filename = f"policies/{dataset}.yaml"
    try:
        parsed = pol.parse_policy(text, filename)
    except InvalidInput as e:
        return {"ok": False, "errors": localized(e).splitlines()}
    problems = [localized(p) for p in pol.check_against_manifest(parsed, services().views.manifest(dataset))]
    if parsed.dataset != dataset:
        problems.insert(0, _("This page edits the policy of %(d)s.", d=dataset))
    if problems:
        return {"ok": False, "errors": problems}
    out = {"ok": True, "summary": [localized(line) for line in
                                   pol.semantic_changes(current["policy"] if current else None, parsed)]}
    if action == "diff":
        out["diff"] = pol.diff_policies(current["content"] if current else None, text,
                                        f"v{current['version']}" if current else "current", "proposed")
    elif action == "apply":
        out["applied"] = services().owner.apply_policy(user(), text, filename)
    return out

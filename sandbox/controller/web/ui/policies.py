"""Policies and licences: read by owners and compliance; owners validate, diff and apply
(with a reason, from the version they started from), or change licences with forms;
compliance approves or declines changes where the policy asks for a second approval.

Validating and diffing are pure domain calls on the text; applying goes to the services."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from sandbox.controller.web import auth
from sandbox.controller.web.ui import policy_forms as forms
from sandbox.controller.web.ui.common import current_policy, services, user
from sandbox.controller.web.ui.i18n import localized, policy_change
from sandbox.core.errors import Conflict, Forbidden, InvalidInput
from sandbox.core.policy import file as pol
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
    services().views.get_dataset(dataset)
    current = current_policy(dataset)
    if request.method == "GET":
        return _page(dataset, current, current["content"] if current else "", None)
    if user().role != OWNER:
        abort(403)
    text = request.form.get("content", "")
    base = request.form.get("rebase_to") or request.form.get("base_version")
    action = "apply" if request.form.get("rebase_to") else request.form.get("action", "validate")
    result = _policy_action(action, dataset, text, current, base)
    if result.get("applied"):
        flash(forms.flash_text(result["applied"]), "ok")
        return redirect(url_for(".detail", dataset=dataset))
    return _page(dataset, current, text, result, base=base)


@bp.post("/policies/<dataset>/licences")
@auth.login_required(OWNER)
def licences(dataset):
    """A licence form: the current text with one licence changed, applied like a typed draft."""
    services().views.get_dataset(dataset)
    current = current_policy(dataset)
    base = request.form.get("base_version")
    if current is None:
        return _page(dataset, None, "", {"ok": False, "errors": [_("Apply a policy first.")]}, base=base)
    try:
        draft = forms.licence_draft(current["content"])
    except InvalidInput as e:
        result = {"ok": False, "errors": [localized(e)], "licence_form": request.form.get("licence_action")}
        return _page(dataset, current, current["content"], result, base=base)
    result = _policy_action("apply", dataset, draft, current, base)
    if result.get("applied"):
        flash(forms.flash_text(result["applied"]), "ok")
        return redirect(url_for(".detail", dataset=dataset))
    return _page(dataset, current, draft, result, base=base)


@bp.get("/policies/<dataset>/history")
@auth.login_required(OWNER, COMPLIANCE)
def history(dataset):
    ds = services().views.get_dataset(dataset)
    try:
        versions = forms.changes().versions(user(), dataset)
    except Forbidden as e:
        abort(403, localized(e))
    for v in versions:
        v["summary"] = [policy_change(line) for line in v["summary"]]
    return render_template("policy_history.html", ds=ds, versions=versions,
                           can_decide=user().role == COMPLIANCE)


@bp.post("/policies/<dataset>/versions/<int:version>/decide")
@auth.login_required(COMPLIANCE)
def decide(dataset, version):
    decision = request.form.get("decision")
    try:
        if decision not in ("approve", "decline"):
            raise InvalidInput(_("Choose approve or decline."), "decision")
        out = forms.changes().decide(user(), dataset, version, decision == "approve", request.form.get("reason", ""))
    except (InvalidInput, Conflict, Forbidden) as e:
        flash(localized(getattr(e, "message", e)), "error")
    else:
        flash(_("Version %(v)s approved: it is in force.", v=version) if out["state"] == "applied"
              else _("Version %(v)s declined.", v=version), "ok")
    return redirect(url_for(".history", dataset=dataset))


def _page(dataset, current, text, result, base=None):
    ds = services().views.get_dataset(dataset)
    try:   # proposals waiting for a second person, for those who may read the history
        pending = [v for v in forms.changes().versions(user(), dataset) if v["state"] == "proposed"]
        history = True
    except Forbidden:
        pending, history = [], False
    if base is None:
        base = current["version"] if current else 0
    return render_template("policy.html", ds=ds, current=current, text=text, result=result, base_version=base,
                           history=history, reason=request.form.get("reason", ""), pending=pending, form=request.form,
                           today=datetime.now(timezone.utc).date())


def _policy_action(action: str, dataset: str, text: str, current, base) -> dict:
    """validate / diff (pure domain calls) or apply (the service, via policy_forms)."""
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
    summary = [policy_change(line) for line in pol.semantic_changes(current["policy"] if current else None, parsed)]
    if action == "apply":
        return {**forms.apply(dataset, text, request.form.get("reason", ""), base), "summary": summary}
    out = {"ok": True, "summary": summary}
    if action == "diff":
        out["diff"] = pol.diff_policies(current["content"] if current else None, text,
                                        f"v{current['version']}" if current else "current", "proposed")
    return out

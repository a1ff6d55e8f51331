"""Compliance review: the queue, a job's review page (every output in full with its checks and
their help, the operator's code highlighted, the spec, the purpose, the differencing context),
and the vote: a sign-off per needs_review finding and a decision per file (approve, request
changes, reject with a reason from the fixed list), or one decision for the whole job; notes
are for compliance only. The run's diagnostics open on request (an audit event)."""
from __future__ import annotations

import json
import re

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _, lazy_gettext as _l

from sandbox.controller.web import auth
from sandbox.controller.web.ui.check_help import check_help
from sandbox.controller.web.ui.common import services, user
from sandbox.controller.web.ui.i18n import STATE_LABELS, localized
from sandbox.controller.web.ui.review_render import details_rows, finding_text, highlight, render_output
from sandbox.core.errors import Conflict, InvalidInput
from sandbox.core.release.reasons import REASONS
from sandbox.core.states import COMPLIANCE

bp = Blueprint("reviews", __name__)

FILE_DECISION_LABELS = {"approve": _l("Approve"), "request_changes": _l("Request changes"), "reject": _l("Reject")}
DECISION_LABELS = {"approve": _l("approved"), "reject": _l("rejected"), "request_changes": _l("changes requested")}
RELATION_LABELS = {"same grouping": _l("same grouping"), "finer than this output": _l("finer than this output"),
                   "coarser than this output": _l("coarser than this output")}
# Why a run failed, as the worker records it for compliance (agent.executor, agent.modes): fixed words.
FAILURE_LABELS = {"run failed (details in run log)": _l("run failed (details in run log)"),
                  "output failed the release gate": _l("output failed the release gate"),
                  "output failed a disclosure check": _l("output failed a disclosure check")}
_FILE_FIELD = re.compile(r"^file-(\d+)-name$")
_SIGNOFF_FIELD = re.compile(r"^signoff-(\d+)-(\d+)$")


@bp.get("/reviews")
@auth.login_required(COMPLIANCE)
def index():
    return render_template("reviews.html", jobs=services().compliance.review_queue(user()))


@bp.get("/reviews/<job_id>")
@auth.login_required(COMPLIANCE)
def detail(job_id):
    return _render_detail(job_id)


def _render_detail(job_id, kept=None, status: int = 200):
    """The review page; `kept` is a refused vote's form, shown again as the reviewer left it."""
    review = services().compliance.review_detail(user(), job_id)
    voted = any(r.get("reviewer") == user().name for r in review["reviews"])
    for key in ("spec_diff", "code_diff"):   # a diff, or a note (a Text) that there is none to show
        if review.get(key):
            review[key] = localized(review[key])
    # What the code did on the real data (logs, block outcomes, run times) is not what the reviewer
    # judges: it loads on request (?diagnostics=1), recorded in the audit log, and for DP jobs
    # only once decided (compliance.diagnostics).
    diagnostics = (services().compliance.diagnostics(user(), job_id)
                   if review["diagnostics_open"] and request.args.get("diagnostics") else None)
    findings = {(f["output"], f["check"]) for f in review.get("findings", [])}
    outputs = [{**o, "rendered": render_output(o),
                "checks": [{**c, "explanation": finding_text(c), "help": check_help(c.get("name", "")),
                            "details_view": details_rows(c.get("details")),
                            "finding": (o["name"], c.get("name")) in findings} for c in o["checks"] or []]}
               for o in review["outputs"]]
    failed = (review.get("compliance") or {}).get("failed") or {}
    failed_findings = [finding_text(c) for c in failed.get("checks") or [] if c.get("status") != "pass"]
    spec_json = json.dumps(review["spec"], ensure_ascii=False, indent=2)
    return render_template("review.html", r=review, voted=voted, diagnostics=diagnostics, outputs=outputs,
                           reasons=[(code, localized(text)) for code, text in REASONS.items()],
                           reason_label=lambda code: localized(REASONS[code]) if code in REASONS else code,
                           file_decisions=FILE_DECISION_LABELS, decision_label=_label(DECISION_LABELS),
                           relation_label=_label(RELATION_LABELS), spec_json=spec_json,
                           failure_label=_label(FAILURE_LABELS), failed_findings=failed_findings,
                           spec_html=highlight(spec_json, "json"),
                           code_html=highlight(review["code"]) if review.get("code") else None,
                           kept=kept or {}), status


@bp.post("/reviews/<job_id>")
@auth.login_required(COMPLIANCE)
def vote(job_id):
    decision = request.form.get("decision")
    try:
        files, signoffs = _file_decisions(request.form), _signoffs(request.form)
        view = services().compliance.review(user(), job_id, None if decision == "files" else decision,
                                            request.form.get("reason", ""), request.form.get("note", ""),
                                            files=files or None, signoffs=signoffs)
    except (InvalidInput, Conflict) as e:
        # The page again, with what to fix (e.g. a finding not signed off, no reason chosen) and
        # everything the reviewer chose and wrote still in place (a redirect lost the notes).
        flash(localized(e), "error")
        return _render_detail(job_id, kept=request.form.to_dict(), status=400)
    flash(_("Your decision on job %(id)s is recorded; the job is now: %(state)s.", id=job_id,
            state=STATE_LABELS.get(view["state"], view["state"])), "ok")
    return redirect(url_for(".index"))


def _file_decisions(form) -> dict:
    """file-<i>-name / -decision / -reason / -note -> {name: {decision, reason, note}}, for the
    files the reviewer decided (an undecided file is named by the decision rule)."""
    out = {}
    for key in form:
        m = _FILE_FIELD.match(key)
        if m and form.get(f"file-{m[1]}-decision"):
            out[form[key]] = {"decision": form[f"file-{m[1]}-decision"], "reason": form.get(f"file-{m[1]}-reason", ""),
                              "note": form.get(f"file-{m[1]}-note", "")}
    return out


def _signoffs(form) -> list[dict]:
    """signoff-<i>-<j> (ticked: the check's name) with file-<i>-name -> [{output, check, note}]."""
    out = []
    for key in form:
        m = _SIGNOFF_FIELD.match(key)
        if m:
            out.append({"output": form.get(f"file-{m[1]}-name", ""), "check": form[key],
                        "note": form.get(f"{key}-note", "")})
    return out


def _label(labels):
    return lambda code: str(labels[code]) if code in labels else code

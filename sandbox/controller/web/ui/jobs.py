"""Jobs: the list (refreshed by htmx), a job's page and live state, cancelling.

Operators see only the services' operator views, so progress here comes from the view alone."""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from sandbox.controller.web import auth
from sandbox.controller.web.ui.common import services, user
from sandbox.controller.web.ui.gauges import operator_gauge
from sandbox.controller.web.ui.i18n import localized
from sandbox.core import states as st
from sandbox.core.states import OPERATOR
from sandbox.core.waiting import own_position

bp = Blueprint("jobs", __name__)

STEPS_OPERATOR = (st.SUBMITTED, st.QUEUED, "in_progress", st.RELEASED)
STEPS_STAFF = (st.SUBMITTED, st.QUEUED, st.RUNNING, st.CHECKING, st.AWAITING_REVIEW, st.RELEASED)
OPERATOR_FILTER_STATES = (st.SUBMITTED, st.AWAITING_APPROVAL, st.QUEUED, "in_progress", st.RELEASED, st.REJECTED,
                          st.FAILED, st.CANCELLED)
FINAL_VIEW_STATES = {st.RELEASED, st.REJECTED, st.FAILED, st.CANCELLED}


@bp.get("/jobs")
@auth.login_required()
def index():
    state = request.args.get("state") or None
    return render_template("jobs.html", jobs=_decorate(services().views.list_jobs(user(), state)), state=state,
                           states=_filter_states())


@bp.get("/jobs/rows")
@auth.login_required()
def rows():
    state = request.args.get("state") or None
    return render_template("_jobs_rows.html", jobs=_decorate(services().views.list_jobs(user(), state)), state=state)


@bp.get("/jobs/<job_id>")
@auth.login_required()
def detail(job_id):
    view = _decorate_one(services().views.get_job(user(), job_id))
    waiting = gauge = None
    if user().role == OPERATOR:
        # From the operator's own job views only (core/waiting.py): never the shared queue.
        waiting = own_position(services().views.list_jobs(user()), job_id)
        gauge = operator_gauge(user(), view["dataset"])
    return render_template("job.html", job=view, spec_json=json.dumps(view["spec"], ensure_ascii=False, indent=2),
                           waiting=waiting, gauge=gauge)


@bp.get("/jobs/<job_id>/state")
@auth.login_required()
def live_state(job_id):
    """The job's state card, polled by htmx until the job is final."""
    return render_template("_job_state.html", job=_decorate_one(services().views.get_job(user(), job_id)))


@bp.post("/jobs/<job_id>/cancel")
@auth.login_required(OPERATOR)
def cancel(job_id):
    services().operator.cancel(user(), job_id)
    flash(_("Job %(id)s cancelled; its budget reservation is returned.", id=job_id), "ok")
    return redirect(url_for(".detail", job_id=job_id))


def _filter_states():
    return list(OPERATOR_FILTER_STATES) if user().role == OPERATOR else list(st.STATES)


def _decorate(views: list[dict]) -> list[dict]:
    return [_decorate_one(v) for v in views]


def _decorate_one(v: dict) -> dict:
    """Progress for the list and the job page, from the view alone: the stage, and for
    operators the time (fixed before the run) after which the outcome shows."""
    v = dict(v)
    if v.get("message"):
        v["message"] = localized(v["message"])
    state = v["state"]
    steps = list(STEPS_OPERATOR if user().role == OPERATOR else STEPS_STAFF)
    if state == st.AWAITING_APPROVAL:
        steps.insert(1, st.AWAITING_APPROVAL)
    if state in (st.REJECTED, st.FAILED, st.CANCELLED):
        steps = _steps_to_outcome(v, steps, state)
    v["steps"] = steps
    v["step"] = steps.index(state) if state in steps else len(steps) - 1
    v["final"] = state in FINAL_VIEW_STATES
    v["progress"] = 100 if v["final"] else int(100 * v["step"] / (len(steps) - 1))
    after = v.get("outcome_visible_after")
    if after and not v["final"]:
        remaining = (datetime.fromisoformat(after) - datetime.now(timezone.utc)).total_seconds()
        v["seconds_left"] = max(0, int(math.ceil(remaining)))
    return v


def _steps_to_outcome(v: dict, steps: list, state: str) -> list:
    """The stages a job that did not end in release went through, then its outcome in place of
    "released". A job that never ran (refused at admission, rejected by the owner, cancelled
    before its run) shows no run stages as done. For operators "ran" is known from the view
    alone: the outcome time is fixed when a run starts."""
    ran = bool(v.get("outcome_visible_after")) if user().role == OPERATOR else bool(v.get("attempts"))
    if not ran:
        return [st.SUBMITTED, state]
    if state == st.FAILED and st.AWAITING_REVIEW in steps:   # failed runs of auto-released jobs skip review
        steps = steps[:steps.index(st.AWAITING_REVIEW) + 1]
        steps[-1] = state
        return steps
    return steps[:-1] + [state]

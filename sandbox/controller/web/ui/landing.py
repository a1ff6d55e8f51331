"""Each role's landing page (/ui/home, where /ui/ and the brand link lead once signed in).

Operator: its recent jobs (its own job views only) with each waiting job's place among its own
waiting jobs (core/waiting.py), and a budget gauge per dataset it is licensed for.
Owner: runs awaiting its approval on its datasets, the budget burnt per dataset, licences that
expire within 30 days. Compliance: the review queue with mode, time waiting since submission
and the findings to sign off."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from flask import Blueprint, render_template
from flask_babel import format_timedelta

from sandbox.controller.web import auth
from sandbox.controller.web.ui.common import current_policy, services, user
from sandbox.controller.web.ui.gauges import bar, operator_gauges
from sandbox.core import ledger as led
from sandbox.core import states as st
from sandbox.core.errors import Conflict, Forbidden, NotFound
from sandbox.core.waiting import own_position

bp = Blueprint("landing", __name__)

RECENT_JOBS = 10
EXPIRY_DAYS = 30
MAX_QUEUE_ROWS = 50   # findings are counted per job from its review detail: bounded work per page


@bp.get("/home")
@auth.login_required()
def index():
    u = user()
    if u.role == st.OPERATOR:
        return render_template("landing_operator.html", **_operator(u))
    if u.role == st.OWNER:
        return render_template("landing_owner.html", **_owner(u))
    return render_template("landing_compliance.html", **_compliance(u))


def _operator(u) -> dict:
    views = services().views.list_jobs(u)   # the operator's own job views, newest first
    recent = [{**v, "waiting": own_position(views, v["id"])} for v in views[:RECENT_JOBS]]
    names = [d["name"] for d in services().views.list_datasets()]
    return {"jobs": recent, "gauges": operator_gauges(u, names)}


def _owned(u) -> list[dict]:
    """The datasets this owner account may read consumption of (consumption.read: its own)."""
    out = []
    for ds in services().views.list_datasets():
        policy = current_policy(ds["name"])
        if policy is None:
            continue
        try:
            periods = services().views.consumption(u, ds["name"])
        except (Forbidden, NotFound):
            continue
        out.append({"ds": ds, "policy": policy, "periods": periods})
    return out


def burn(periods: list[dict], budget, wide: dict | None, now: datetime) -> dict:
    """Every operator together on one dataset: ε spent and reserved this period and in all,
    against the dataset-wide caps where the policy sets them."""
    start = led.period_start(budget.refresh, now)
    key = start.isoformat() if start else "all"
    this = [p for p in periods if p["period_start"] == key]
    out = {"period_spent": sum(p["epsilon_charged"] for p in this),
           "period_reserved": sum(p["epsilon_reserved"] for p in this),
           "lifetime_spent": sum(p["epsilon_charged"] for p in periods),
           "operators": len({p["operator"] for p in this}), "jobs": sum(p["jobs"] for p in this),
           "refresh": led.next_period_start(budget.refresh, now), "per_operator": budget.epsilon_per_period,
           "cap": None, "bar": None}
    if wide and wide.get("period_available") is not None:
        out["cap"] = wide["period_available"]
        out["bar"] = bar(wide, "period_")
    return out


def expiring(licences: list[dict], today: date, days: int = EXPIRY_DAYS) -> list[dict]:
    """Licences in force that end within `days` days (their last valid day on or before today + days)."""
    last = (today + timedelta(days=days)).isoformat()
    return sorted(({**lic, "days_left": (date.fromisoformat(lic["expires"]) - today).days}
                   for lic in licences if not lic["revoked"] and today.isoformat() <= lic["expires"] <= last),
                  key=lambda lic: lic["expires"])


def _owner(u) -> dict:
    now = datetime.now(timezone.utc)
    owned = _owned(u)
    names = {o["ds"]["name"] for o in owned}
    approvals = [j for j in services().views.list_jobs(u, st.AWAITING_APPROVAL) if j["dataset"] in names]
    burns, licences = [], []
    for o in owned:
        name = o["ds"]["name"]
        wide = services().views.dataset_usage(u, name)
        burns.append({"dataset": name, **burn(o["periods"], o["policy"]["policy"].budget, wide, now)})
        licences += [{**lic, "dataset": name} for lic in expiring(o["policy"]["dict"].get("licences", []), now.date())]
    return {"approvals": approvals, "burns": burns, "licences": sorted(licences, key=lambda lic: lic["expires"]),
            "expiry_days": EXPIRY_DAYS}


def _compliance(u) -> dict:
    now = datetime.now(timezone.utc)
    queue = services().compliance.review_queue(u)
    rows = []
    for j in queue[:MAX_QUEUE_ROWS]:
        try:
            findings = len(services().compliance.review_detail(u, j["id"]).get("findings", []))
        except (Forbidden, NotFound, Conflict):
            findings = None
        # Waiting since submission, as `sandbox review list` counts it (a DP job's run end is a run time).
        created = datetime.fromisoformat(j["created_at"])
        waited = now - (created if created.tzinfo else created.replace(tzinfo=timezone.utc))
        rows.append({**j, "findings": findings, "waited": format_timedelta(waited, threshold=1.1)})
    return {"queue": rows, "more": max(0, len(queue) - MAX_QUEUE_ROWS)}

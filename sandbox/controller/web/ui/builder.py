"""The query-job builder: pick statistics in a form, write SQL (with the schema beside it), or
paste a spec; see the dry run, submit. SQL compiles to the same query list on the server
(sandbox/core/specs/sql.py), so all three share one cost preview."""
from __future__ import annotations

import math

from flask import Blueprint, render_template, request
from flask_babel import lazy_gettext as _l

from sandbox.controller.web import auth
from sandbox.controller.web.ui.common import current_policy, dry_run, services, submit_and_redirect, user
from sandbox.core.specs.query import STATISTICS
from sandbox.core.states import OPERATOR

bp = Blueprint("builder", __name__)

MAX_BUILDER_QUERIES = 10
STATISTIC_HELP = {
    "count": _l("Rows per group. Discrete Laplace noise; its interval is shown per cell."),
    "sum": _l("Sum of a numeric column, clamped to its public bounds. Laplace noise."),
    "mean": _l("Noisy sum divided by noisy count; half the budget each. Its error depends on the group size."),
    "histogram": _l("Counts per bin of a numeric column (give the bin edges). Discrete Laplace noise."),
    "quantile": _l("Exponential mechanism over a public grid of candidates (q = 0.5 is the median)."),
}


def _blank_row(i: int) -> dict:
    return {"name": f"q{i}", "statistic": "count", "column": "", "group_by": [], "epsilon": "0.5", "bins": "",
            "q": "0.5"}


def _builder_rows(form) -> list[dict]:
    n = min(int(form.get("n", "1") or 1), MAX_BUILDER_QUERIES)
    rows = []
    for i in range(n):
        p = f"q{i}_"
        rows.append({"name": form.get(p + "name", f"q{i + 1}"), "statistic": form.get(p + "statistic", "count"),
                     "column": form.get(p + "column", ""), "group_by": form.getlist(p + "group_by"),
                     "epsilon": form.get(p + "epsilon", "0.5"), "bins": form.get(p + "bins", ""),
                     "q": form.get(p + "q", "0.5")})
    return rows


def _number(text: str):
    # Hand the domain the user's text when it is not a number: its message says what to fix.
    try:
        value = float(str(text).strip())
    except ValueError:
        return text
    if not math.isfinite(value):   # "1e400": the message should name what was typed, not "inf"
        return text
    return int(value) if value.is_integer() and abs(value) < 2 ** 53 else value


def _spec_from_rows(dataset: str, purpose: str, rows: list[dict]) -> dict:
    queries = []
    for r in rows:
        q = {"name": r["name"].strip(), "statistic": r["statistic"], "epsilon": _number(r["epsilon"])}
        if r["statistic"] != "count":
            q["column"] = r["column"] or None
        if r["group_by"]:
            q["group_by"] = list(r["group_by"])
        if r["statistic"] == "histogram":
            q["bins"] = [_number(x) for x in r["bins"].replace("，", ",").split(",") if x.strip()]
        if r["statistic"] == "quantile":
            q["q"] = _number(r["q"])
        queries.append(q)
    return {"mode": "query", "dataset": dataset, "purpose": purpose.strip(), "queries": queries}


def _builder_context(dataset_name: str | None, rows=None, purpose: str = ""):
    all_ds = services().views.list_datasets()
    if not dataset_name and all_ds:
        dataset_name = all_ds[0]["name"]
    ds = services().views.get_dataset(dataset_name) if dataset_name else None
    purposes = []
    if ds:
        policy = current_policy(ds["name"])
        lic = policy["policy"].licence(user().name) if policy else None
        purposes = sorted(lic.purposes) if lic else []
    numeric = [c for c in (ds["columns"] if ds else []) if c["kind"] == "numeric"]
    categorical = [c for c in (ds["columns"] if ds else []) if c["kind"] == "categorical"]
    return {"all_datasets": all_ds, "ds": ds, "rows": [_blank_row(1)] if rows is None else rows,
            "purpose": purpose or (purposes[0] if purposes else ""), "purposes": purposes, "numeric": numeric,
            "categorical": categorical, "statistics": STATISTICS, "stat_help": STATISTIC_HELP,
            "max_queries": MAX_BUILDER_QUERIES}


@bp.get("/jobs/new")
@auth.login_required(OPERATOR)
def new():
    return render_template("job_new.html", **_builder_context(request.args.get("dataset")))


@bp.post("/jobs/preview")
@auth.login_required(OPERATOR)
def preview():
    """The dry run (cost, balance before and after, each query's 95% interval and utility): htmx partial."""
    f = request.form
    spec = _spec_from_rows(f.get("dataset", ""), f.get("purpose", ""), _builder_rows(f))
    return render_template("_preview.html", preview=dry_run(spec))


@bp.post("/jobs")
@auth.login_required(OPERATOR)
def submit():
    """The builder's buttons: add or remove a query, preview, submit."""
    f = request.form
    rows = _builder_rows(f)
    action = f.get("action", "preview")
    if action == "add" and len(rows) < MAX_BUILDER_QUERIES:
        rows.append(_blank_row(len(rows) + 1))
    elif action.startswith("remove_") and len(rows) > 1:
        idx = int(action.split("_", 1)[1]) if action.split("_", 1)[1].isdigit() else -1
        rows = [r for i, r in enumerate(rows) if i != idx]
    ctx = _builder_context(f.get("dataset"), rows, f.get("purpose", ""))
    spec = _spec_from_rows(f.get("dataset", ""), f.get("purpose", ""), rows)
    if action == "submit":
        return submit_and_redirect(spec, lambda err: render_template("job_new.html", **ctx,
                                                                     preview={"ok": False, "error": err}))
    return render_template("job_new.html", **ctx, preview=dry_run(spec) if action == "preview" else None)


@bp.post("/jobs/spec")
@auth.login_required(OPERATOR)
def submit_spec():
    """The same, from a pasted JSON/YAML spec (e.g. one developed against the mock data)."""
    text = request.form.get("spec_text", "")
    ctx = _builder_context(request.form.get("dataset"))
    if request.form.get("action") == "submit":
        return submit_and_redirect(text, lambda err: render_template("job_new.html", **ctx, spec_text=text,
                                                                     spec_preview={"ok": False, "error": err}))
    return render_template("job_new.html", **ctx, spec_text=text, spec_preview=dry_run(text))


def _sql_spec(form) -> dict:
    """A SQL job from the SQL tab: epsilon is one number, or one per statement separated by
    commas (empty: OPTIONS(epsilon => ...) in each statement)."""
    spec = {"mode": "query", "dataset": form.get("dataset", ""), "purpose": form.get("purpose", "").strip(),
            "sql": form.get("sql_text", "")}
    eps = [_number(x) for x in form.get("sql_epsilon", "").replace("，", ",").split(",") if x.strip()]
    if eps:
        spec["epsilon"] = eps[0] if len(eps) == 1 else eps
    return spec


@bp.post("/jobs/sql/preview")
@auth.login_required(OPERATOR)
def sql_preview():
    """The SQL tab's live dry run: htmx partial."""
    return render_template("_preview.html", preview=dry_run(_sql_spec(request.form)))


@bp.post("/jobs/sql")
@auth.login_required(OPERATOR)
def submit_sql():
    f = request.form
    ctx = _builder_context(f.get("dataset"), purpose=f.get("purpose", ""))
    spec = _sql_spec(f)
    sql_ctx = {"sql_text": spec["sql"], "sql_epsilon": f.get("sql_epsilon", "")}
    if f.get("action") == "submit":
        return submit_and_redirect(spec, lambda err: render_template("job_new.html", **ctx, **sql_ctx,
                                                                     sql_preview={"ok": False, "error": err}))
    return render_template("job_new.html", **ctx, **sql_ctx, sql_preview=dry_run(spec))

"""Web UI for the three roles under /ui: server-rendered pages, htmx for live parts.

Views parse the form, call one service method with the signed-in user, render a
template. Operator pages show only what the services' operator views return, so
nothing derived from data appears before release. The only other reads are public
ones (policy text, which the API also serves to every role) and pure domain calls
(policy validation and diff, DP error arithmetic).
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import zipfile
from datetime import datetime, timezone

from flask import (Blueprint, Response, abort, current_app, flash, redirect, render_template, request, session,
                   url_for)
from flask_babel import format_datetime, format_decimal, get_locale, gettext as _, lazy_gettext as _l
from werkzeug.exceptions import HTTPException

from sandbox.config import REPO_ROOT
from sandbox.core import policy as pol
from sandbox.core import states as st
from sandbox.core.errors import InvalidInput, Text
from sandbox.core.specs.query import STATISTICS, load_spec_text
from sandbox.core.states import COMPLIANCE, OPERATOR, OWNER, TransitionError
from sandbox.services import Conflict, Forbidden, NotFound
from sandbox.controller.web import auth

bp = Blueprint("ui", __name__, url_prefix="/ui", static_folder="static", static_url_path="/static")

# Chinese messages live in translations/zh: newer Babel reads "zh_CN" as zh_Hans_CN,
# whose gettext fallbacks include "zh" but not "zh_CN".
LANGUAGES = {"zh_CN": "中文", "en": "English"}
DEFAULT_LANGUAGE = "zh_CN"
DISPLAY_TIMEZONE = "Asia/Shanghai"   # the bureau's; shown in the page footer
MAX_BUILDER_QUERIES = 10
AUDIT_PAGE = 100
# Two-sided 95% noise interval: error bars on released statistics.
ERROR_BAR_LEVEL = 0.95

ROLE_LABELS = {OPERATOR: _l("Licensed operator"), OWNER: _l("Data owner"), COMPLIANCE: _l("Compliance reviewer")}
STATE_LABELS = {
    st.SUBMITTED: _l("submitted"), st.AWAITING_APPROVAL: _l("awaiting owner approval"), st.QUEUED: _l("queued"),
    st.RUNNING: _l("running"), st.CHECKING: _l("checking"), st.AWAITING_REVIEW: _l("awaiting review"),
    st.RELEASED: _l("released"), st.REJECTED: _l("rejected"), st.FAILED: _l("failed"),
    st.CANCELLED: _l("cancelled"), "in_progress": _l("in progress"),
}
STATISTIC_LABELS = {"count": _l("count"), "sum": _l("sum"), "mean": _l("mean"), "histogram": _l("histogram"),
                    "quantile": _l("quantile")}
STATISTIC_HELP = {
    "count": _l("Rows per group. Discrete Laplace noise; the expected error is shown per cell."),
    "sum": _l("Sum of a numeric column, clamped to its public bounds. Laplace noise."),
    "mean": _l("Noisy sum divided by noisy count; half the budget each. Its error depends on the group size."),
    "histogram": _l("Counts per bin of a numeric column (give the bin edges). Discrete Laplace noise."),
    "quantile": _l("Exponential mechanism over a public grid of candidates (q = 0.5 is the median)."),
}
MECHANISM_LABELS = {"discrete_laplace": _l("discrete Laplace"), "laplace": _l("Laplace"),
                    "exponential": _l("exponential (noisy max)"),
                    "laplace+discrete_laplace": _l("Laplace + discrete Laplace")}
# What each release-gate check means, by name prefix (the check's own text says the specifics).
CHECK_HELP = {
    "result_format": _l("The runner's output is one well-formed JSON document of tables."),
    "declared_tables": _l("Exactly the tables the spec declared, one each: nothing extra can leave."),
    "shape": _l("Each table has the cells the spec and the public manifest imply, public keys only, finite "
                "numbers, and the declared noise mechanism and scale."),
    "table_size": _l("The table is below the size limit for a release."),
    "forbidden_columns": _l("No column the policy forbids (e.g. the person key) appears in the output."),
    "direct_identifiers": _l("No column looks like a direct identifier (ID numbers, names, phone numbers)."),
    "row_level": _l("The output is aggregated, not one row per person or record."),
}
STEPS_OPERATOR = (st.SUBMITTED, st.QUEUED, "in_progress", st.RELEASED)
FINAL_VIEW_STATES = {st.RELEASED, st.REJECTED, st.FAILED, st.CANCELLED}


def services():
    return current_app.config["SERVICES"]


def user():
    return auth.current_user()


# ------------------------------------------------------------------ app wiring
def select_locale() -> str:
    lang = session.get("lang")
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def init_babel(app) -> None:
    from flask_babel import Babel
    from pathlib import Path
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LANGUAGE)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", DISPLAY_TIMEZONE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(Path(__file__).parent / "translations"))
    Babel(app, locale_selector=select_locale)


@bp.before_request
def _csrf():
    auth.csrf_protect()


@bp.after_request
def _headers(resp: Response) -> Response:
    # Pages never load anything from elsewhere (air-gapped), and never render in a frame.
    resp.headers.setdefault("Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    if resp.mimetype == "text/html":
        resp.headers.setdefault("Cache-Control", "no-store")
    return resp


@bp.app_template_filter("dt")
def _fmt_dt(value, fmt: str = "medium"):
    if not value:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return format_datetime(value, fmt)


@bp.app_template_filter("num")
def _fmt_num(value, digits: int = 4):
    if value is None or value == "":
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) < 10 ** -digits:
        return format_decimal(value, format="0.###E0")
    return format_decimal(value, format="#,##0." + "#" * digits)


@bp.app_context_processor
def _context():
    u = user() if request.blueprint == "ui" else None
    return {"current_user": u, "csrf_token": auth.csrf_token, "nav": _nav(u) if u else [],
            "lang": select_locale(), "languages": LANGUAGES, "html_lang": "zh-CN" if select_locale() == "zh_CN" else "en",
            "role_label": lambda r: ROLE_LABELS.get(r, r), "state_label": lambda s: STATE_LABELS.get(s, s),
            "stat_label": lambda s: STATISTIC_LABELS.get(s, s), "mech_label": lambda m: MECHANISM_LABELS.get(m, m),
            "display_tz": DISPLAY_TIMEZONE}


def _nav(u) -> list[tuple[str, str, str]]:
    """(endpoint, label, id) per role: each role sees only the pages it may open."""
    items = {
        OPERATOR: [("ui.datasets", _("Catalog"), "nav-datasets"), ("ui.job_new", _("New query job"), "nav-new"),
                   ("ui.program_new", _("Program job"), "nav-program"), ("ui.jobs", _("My jobs"), "nav-jobs")],
        OWNER: [("ui.approvals", _("Run approvals"), "nav-approvals"), ("ui.datasets", _("Datasets"), "nav-datasets"),
                ("ui.policies", _("Policies & licences"), "nav-policies"),
                ("ui.consumption", _("Budget consumption"), "nav-consumption"),
                ("ui.metering", _("Metering"), "nav-metering"), ("ui.jobs", _("Jobs"), "nav-jobs"),
                ("ui.audit", _("Audit log"), "nav-audit")],
        COMPLIANCE: [("ui.reviews", _("Review queue"), "nav-reviews"), ("ui.jobs", _("Jobs"), "nav-jobs"),
                     ("ui.datasets", _("Datasets"), "nav-datasets"), ("ui.policies", _("Policies & licences"),
                                                                       "nav-policies"),
                     ("ui.consumption", _("Budget consumption"), "nav-consumption"),
                     ("ui.metering", _("Metering"), "nav-metering"), ("ui.audit", _("Audit log"), "nav-audit")],
    }
    return items.get(u.role, [])


# ------------------------------------------------------------------ messages of the domain and services
def localized(message) -> str:
    """A domain or service message in the page's language.

    The domain and the services write English `Text`s (sandbox/domain/errors.py) that keep
    their template and parameters: the template is translated and then formatted, and
    parameters that are Texts themselves are translated in turn. A plain str (already
    translated here, or data such as a name) is shown as it is; an exception stands for its
    message. The JSON API keeps the English text (str of the message)."""
    if isinstance(message, BaseException):
        e = message
        message = getattr(e, "message", None)  # InvalidInput keeps the message as raised
        if not isinstance(message, str):
            message = e.args[0] if len(e.args) == 1 else str(e)
    if not isinstance(message, Text):
        return message if isinstance(message, str) else str(message)
    params = {k: localized(v) if isinstance(v, str) else v for k, v in message.params.items()}
    try:
        return _(message.template).format(**params)
    except (KeyError, IndexError, ValueError):  # a catalog entry that lost a placeholder: English beats nothing
        return message.template.format(**params)


# ------------------------------------------------------------------ errors (HTML, never a trace)
def _error_page(status: int, message: str):
    return render_template("error.html", status=status, message=message), status


@bp.errorhandler(InvalidInput)
def _invalid(e: InvalidInput):
    return _error_page(400, localized(e))


@bp.errorhandler(Forbidden)
def _forbidden(e):
    return _error_page(403, _("You may not open this page with your role."))


@bp.errorhandler(NotFound)
def _not_found(e):
    return _error_page(404, _("Not found."))


@bp.errorhandler(Conflict)
@bp.errorhandler(TransitionError)
def _conflict(e):
    return _error_page(409, localized(e))


@bp.errorhandler(HTTPException)
def _http(e: HTTPException):
    if e.code == 400 and e.description == "csrf":
        return _error_page(400, _("This form has expired or did not come from this site. Reload the page and "
                                  "try again."))
    if e.code == 403:
        return _error_page(403, _("You may not open this page with your role."))
    if e.code == 404:
        return _error_page(404, _("Not found."))
    if e.code == 413:
        return _error_page(413, _("The form is too large: at most %(n)s KiB in all, code included.",
                                  n=(current_app.config.get("MAX_CONTENT_LENGTH") or 0) // 1024))
    return _error_page(e.code or 500, e.name)


# ------------------------------------------------------------------ sign-in, language
@bp.get("/")
def home():
    u = user()
    if u is None:
        return redirect(url_for("ui.login"))
    return redirect(url_for({OPERATOR: "ui.datasets", OWNER: "ui.approvals", COMPLIANCE: "ui.reviews"}[u.role]))


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        u = auth.check_credentials(services(), request.form.get("name", ""), request.form.get("password", ""))
        if u is not None:
            auth.log_in(u)
            return redirect(auth.safe_next(request.form.get("next"), url_for("ui.home")))
        if auth.sign_in_blocked(request.form.get("name", "")):
            error = _("Too many wrong passwords for this name: signing in is paused for up to %(m)s minutes.",
                      m=int(auth.FAILURE_WINDOW.total_seconds() // 60))
        else:
            error = _("Wrong name or password.")
    return render_template("login.html", error=error, next=request.values.get("next", "")), (401 if error else 200)


@bp.post("/logout")
def logout():
    auth.log_out()
    flash(_("You are signed out."), "info")
    return redirect(url_for("ui.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@auth.login_required()
def password():
    error = None
    if request.method == "POST":
        f = request.form
        u = user()
        new = f.get("new_password", "")
        # The current password is checked first (and always hashed) so every refusal costs the same.
        if auth.check_credentials(services(), u.name, f.get("current_password", "")) is None:
            error = (_("Too many wrong passwords: password changes are paused for up to %(m)s minutes.",
                       m=int(auth.FAILURE_WINDOW.total_seconds() // 60))
                     if auth.sign_in_blocked(u.name) else _("The current password is wrong."))
        elif len(new) < auth.MIN_PASSWORD_CHARS:
            error = _("The new password needs at least %(n)s characters.", n=auth.MIN_PASSWORD_CHARS)
        elif new != f.get("new_password2", ""):
            error = _("The two new passwords differ.")
        elif new == f.get("current_password", ""):
            error = _("The new password is the same as the current one.")
        else:
            auth.set_password(services(), u.name, new, actor=u.name)
            # set_password ended every session of this user, this one included: start a fresh one here.
            fresh = auth.check_credentials(services(), u.name, new)
            if fresh is None:  # changed again meanwhile, or deactivated: sign in anew
                return redirect(url_for("ui.login"))
            auth.log_in(fresh)
            flash(_("Your password is changed. Sessions signed in elsewhere have ended."), "ok")
            return redirect(url_for("ui.home"))
    return render_template("password.html", error=error, min_chars=auth.MIN_PASSWORD_CHARS), (400 if error else 200)


@bp.get("/lang/<code>")
def set_language(code):
    if code in LANGUAGES:
        session["lang"] = code
    return redirect(auth.safe_next(request.args.get("next"), url_for("ui.home")))


# ------------------------------------------------------------------ catalog
@bp.get("/datasets")
@auth.login_required()
def datasets():
    return render_template("datasets.html", datasets=services().list_datasets())


@bp.get("/datasets/<name>")
@auth.login_required()
def dataset(name):
    ds = services().get_dataset(name)
    policy = _current_policy(name)
    return render_template("dataset.html", ds=ds, policy=policy)


@bp.get("/datasets/<name>/mock")
@auth.login_required()
def mock(name):
    fmt = request.args.get("format", "csv")
    try:
        rows = int(request.args.get("rows", "1000"))
    except ValueError:
        raise InvalidInput(_("rows must be a whole number"), "rows")
    data = services().mock_data(name, fmt, rows)
    mime = "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
    return Response(data, mimetype=mime, headers={"Content-Disposition": f"attachment; filename={name}-mock.{fmt}"})


def _current_policy(dataset: str) -> dict | None:
    """The applied policy (public to every role, as in the API), parsed for display."""
    try:
        cur = services().current_policy_text(dataset)
    except Forbidden:
        return None
    parsed = pol.parse_policy(cur["content"], f"policies/{dataset}.yaml")
    return {**cur, "policy": parsed, "dict": parsed.to_dict()}


# ------------------------------------------------------------------ job builder (query mode)
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
    all_ds = services().list_datasets()
    if not dataset_name and all_ds:
        dataset_name = all_ds[0]["name"]
    ds = services().get_dataset(dataset_name) if dataset_name else None
    purposes = []
    if ds:
        policy = _current_policy(ds["name"])
        lic = policy["policy"].licence(user().name) if policy else None
        purposes = sorted(lic.purposes) if lic else []
    numeric = [c for c in (ds["columns"] if ds else []) if c["kind"] == "numeric"]
    categorical = [c for c in (ds["columns"] if ds else []) if c["kind"] == "categorical"]
    if rows is None:
        rows = [{"name": "q1", "statistic": "count", "column": "", "group_by": [], "epsilon": "0.5", "bins": "",
                 "q": "0.5"}]
    return {"all_datasets": all_ds, "ds": ds, "rows": rows, "purpose": purpose or (purposes[0] if purposes else ""),
            "purposes": purposes, "numeric": numeric, "categorical": categorical, "statistics": STATISTICS,
            "stat_help": STATISTIC_HELP, "max_queries": MAX_BUILDER_QUERIES}


@bp.get("/jobs/new")
@auth.login_required(OPERATOR)
def job_new():
    return render_template("job_new.html", **_builder_context(request.args.get("dataset")))


def _dry_run(spec) -> dict:
    try:
        result = services().submit(user(), spec, dry_run=True)
    except InvalidInput as e:
        return {"ok": False, "error": localized(e)}
    except Forbidden as e:  # e.g. the dataset has no policy yet
        return {"ok": False, "error": localized(e)}
    return {"ok": True, **result, "reasons": [localized(r) for r in result["reasons"]]}


@bp.post("/jobs/preview")
@auth.login_required(OPERATOR)
def job_preview():
    """The dry run (cost, balance before and after, expected error per query): htmx partial."""
    f = request.form
    spec = _spec_from_rows(f.get("dataset", ""), f.get("purpose", ""), _builder_rows(f))
    return render_template("_preview.html", preview=_dry_run(spec))


@bp.post("/jobs")
@auth.login_required(OPERATOR)
def job_submit():
    f = request.form
    rows = _builder_rows(f)
    action = f.get("action", "preview")
    if action == "add" and len(rows) < MAX_BUILDER_QUERIES:
        rows.append({"name": f"q{len(rows) + 1}", "statistic": "count", "column": "", "group_by": [],
                     "epsilon": "0.5", "bins": "", "q": "0.5"})
    elif action.startswith("remove_") and len(rows) > 1:
        idx = int(action.split("_", 1)[1]) if action.split("_", 1)[1].isdigit() else -1
        rows = [r for i, r in enumerate(rows) if i != idx]
    ctx = _builder_context(f.get("dataset"), rows, f.get("purpose", ""))
    spec = _spec_from_rows(f.get("dataset", ""), f.get("purpose", ""), rows)
    if action == "submit":
        return _submit_and_redirect(spec, lambda err: render_template("job_new.html", **ctx,
                                                                      preview={"ok": False, "error": err}))
    return render_template("job_new.html", **ctx, preview=_dry_run(spec) if action == "preview" else None)


@bp.post("/jobs/spec")
@auth.login_required(OPERATOR)
def job_submit_text():
    """The same, from a pasted JSON/YAML spec (e.g. one developed against the mock data)."""
    text = request.form.get("spec_text", "")
    ctx = _builder_context(request.form.get("dataset"))
    if request.form.get("action") == "submit":
        return _submit_and_redirect(text, lambda err: render_template("job_new.html", **ctx, spec_text=text,
                                                                      spec_preview={"ok": False, "error": err}))
    return render_template("job_new.html", **ctx, spec_text=text, spec_preview=_dry_run(text))


def _submit_and_redirect(spec, on_error):
    try:
        result = services().submit(user(), spec)
    except (InvalidInput, Forbidden) as e:
        return on_error(localized(e))
    job = result["job"]
    if result["admitted"]:
        flash(_("Job %(id)s submitted.", id=job["id"]), "ok")
    else:
        flash(_("Job %(id)s was refused at admission; see the reasons below.", id=job["id"]), "error")
    return redirect(url_for("ui.job", job_id=job["id"]))


# ------------------------------------------------------------------ program jobs (program and reviewed modes)
PROGRAM_MODES = ("program", "reviewed")
MODE_LABELS = {"program": _l("Program (sample-and-aggregate, DP)"),
               "reviewed": _l("Reviewed (exact files, human review, not DP)")}
# dataset, mode and purpose come from the page's own fields, so the contract text holds the rest.
FORM_SPEC_KEYS = ("mode", "dataset", "purpose")
EXAMPLES_DIR = REPO_ROOT / "jobs"
# As in the shipped example: "auto" can mean a thousand blocks (one boxed run each) on a large dataset.
EXAMPLE_BLOCKS = 100


def _program_datasets() -> list[dict]:
    """Datasets whose applied policy allows a program or reviewed job and licenses this
    operator. Revoked or expired licences stay listed: the dry run then says why a job
    would be refused, which helps more than a dataset silently missing."""
    out = []
    for d in services().list_datasets():
        policy = _current_policy(d["name"])
        if policy is None:
            continue
        modes = [m for m in PROGRAM_MODES if m in policy["policy"].modes]
        lic = policy["policy"].licence(user().name)
        if modes and lic is not None:
            out.append({**d, "modes": modes, "purposes": sorted(lic.purposes)})
    return out


def _program_context(dataset_name: str | None, mode: str | None) -> dict:
    eligible = _program_datasets()
    error = None
    chosen = next((d for d in eligible if d["name"] == dataset_name), None)
    if dataset_name and chosen is None:
        error = _("Dataset %(d)s does not accept program or reviewed jobs from you (its policy allows neither "
                  "mode, or you hold no licence for it).", d=dataset_name)
    elif not eligible:
        error = _("No dataset accepts program or reviewed jobs from you: the data owners' policies allow neither "
                  "mode for your licences. Use a query job, or ask a data owner.")
    ds = None
    pick = chosen or (eligible[0] if eligible else None)
    if pick is not None:
        ds = {**services().get_dataset(pick["name"]), "modes": pick["modes"], "purposes": pick["purposes"]}
        if mode not in ds["modes"]:
            if mode in PROGRAM_MODES and error is None:
                error = _("The policy of %(d)s does not allow %(m)s mode.", d=ds["name"], m=mode)
            mode = ds["modes"][0]
    return {"eligible": eligible, "ds": ds, "mode": mode if ds else None, "error": error,
            "mode_labels": MODE_LABELS}


def _identifier(name: str) -> str:
    out = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "value"
    return out if out[0].isalpha() else "v_" + out


def _program_example(ds: dict, mode: str) -> tuple[str, str, str | None]:
    """A contract, program and purpose that pass the checks: the shipped example in jobs/
    when one fits the dataset and mode, else one built from the public manifest."""
    for path in sorted(EXAMPLES_DIR.glob("*.json")):
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
            if spec.get("mode") != mode or spec.get("dataset") != ds["name"]:
                continue
            code = (EXAMPLES_DIR / spec["program"]).read_text(encoding="utf-8")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        contract = {k: v for k, v in spec.items() if k not in FORM_SPEC_KEYS + ("program",)}
        return json.dumps(contract, ensure_ascii=False, indent=2), code, spec.get("purpose")
    cols = [c for c in ds["columns"] if c["name"] != ds["privacy_unit"]]
    numeric = [c for c in cols if c["kind"] == "numeric" and c.get("bounds")]
    categorical = [c for c in cols if c["kind"] == "categorical"]
    if mode == "reviewed":
        col = (categorical or numeric or cols or ds["columns"])[0]["name"]
        out = f"rows_by_{_identifier(col)}.csv"
        contract = {"entrypoint": "analyse", "outputs": [{"name": out, "type": "csv", "table_kind": "frequency"}],
                    "timeout_seconds": 120}
        code = ("import os\n\n\ndef analyse(df, out):\n"
                "    # Only the files declared in the contract leave, each after the disclosure checks and review.\n"
                f"    counts = df.groupby({col!r}).size().reset_index(name=\"rows\")\n"
                f"    counts.to_csv(os.path.join(out, {out!r}), index=False)\n")
    elif numeric:
        col = numeric[0]
        lo, hi = col["bounds"]
        contract = {"entrypoint": "analyse",
                    "outputs": [{"name": f"mean_{_identifier(col['name'])}", "lower": lo, "upper": hi}],
                    "default": [(lo + hi) / 2], "aggregate": "mean", "blocks": EXAMPLE_BLOCKS, "epsilon": 1.0,
                    "block_timeout_seconds": 10}
        code = ("def analyse(df):\n"
                "    # One number per declared output, in order; a block that raises contributes the default.\n"
                f"    return [float(df[{col['name']!r}].mean())]\n")
    else:
        col = (categorical or cols or ds["columns"])[0]
        value = (col.get("categories") or [""])[0]
        contract = {"entrypoint": "analyse",
                    "outputs": [{"name": f"share_{_identifier(col['name'])}", "lower": 0, "upper": 1}],
                    "default": [0.5], "aggregate": "mean", "blocks": EXAMPLE_BLOCKS, "epsilon": 1.0,
                    "block_timeout_seconds": 10}
        code = ("def analyse(df):\n"
                "    # One number per declared output, in order; a block that raises contributes the default.\n"
                f"    return [float((df[{col['name']!r}] == {value!r}).mean())]\n")
    return json.dumps(contract, ensure_ascii=False, indent=2), code, None


def _program_submission(dataset: str, mode: str, purpose: str, spec_text: str, code: str) -> dict:
    """The API's body {"spec": ..., "code": ...} from the page's fields."""
    spec = load_spec_text(spec_text)
    if not isinstance(spec, dict):
        raise InvalidInput(_("The contract must be a JSON or YAML object (a mapping of keys to values)."), "spec")
    wanted = {"mode": mode, "dataset": dataset, "purpose": purpose.strip()}
    for key, value in wanted.items():
        if key in spec and spec[key] != value:
            # A pasted spec that disagrees with the fields: say so rather than pick one silently.
            raise InvalidInput(_("The contract says %(k)s: %(v)s, but the form says %(f)s. Remove %(k)s from the "
                                 "contract or make the two agree.", k=key, v=json.dumps(spec[key], ensure_ascii=False),
                                 f=json.dumps(value, ensure_ascii=False)), key)
    return {"spec": {**spec, **wanted}, "code": code}


def _uploaded_code() -> str | None:
    """The uploaded file's text, which replaces the text area's, or None without a file."""
    f = request.files.get("code_file")
    if f is None or not f.filename:
        return None
    data = f.read()
    if not data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(_("code: the uploaded file is not UTF-8 text."), "code") from None


def _render_program(ctx: dict, status: int = 200, **kw):
    return render_template("program_new.html", **ctx, **kw), status


@bp.get("/programs/new")
@auth.login_required(OPERATOR)
def program_new():
    ctx = _program_context(request.args.get("dataset"), request.args.get("mode"))
    form = {"purpose": "", "spec_text": "", "code": ""}
    if ctx["ds"]:
        form["spec_text"], form["code"], purpose = _program_example(ctx["ds"], ctx["mode"])
        purposes = ctx["ds"]["purposes"]
        form["purpose"] = purpose if purpose in purposes else (purposes[0] if purposes else "")
    asked = request.args.get("dataset") or request.args.get("mode")
    return _render_program(ctx, 400 if ctx["error"] and asked else 200, form=form)


@bp.post("/programs")
@auth.login_required(OPERATOR)
def program_submit():
    f = request.form
    ctx = _program_context(f.get("dataset"), f.get("mode"))
    # Browsers send text areas with CRLF line breaks; the code's hash should match the operator's file.
    form = {"purpose": f.get("purpose", ""), "spec_text": f.get("spec_text", "").replace("\r\n", "\n"),
            "code": f.get("code", "").replace("\r\n", "\n")}
    if ctx["error"] or not ctx["ds"]:
        return _render_program(ctx, 400, form=form)
    try:
        uploaded = _uploaded_code()
        if uploaded is not None:
            form["code"] = uploaded
        raw = _program_submission(ctx["ds"]["name"], ctx["mode"], form["purpose"], form["spec_text"], form["code"])
    except InvalidInput as e:
        return _render_program(ctx, 400, form=form, preview={"ok": False, "error": localized(e)})
    if f.get("action") == "submit":
        return _submit_and_redirect(raw, lambda err: _render_program(ctx, 400, form=form,
                                                                     preview={"ok": False, "error": err}))
    preview = _dry_run(raw)
    return _render_program(ctx, 200 if preview["ok"] else 400, form=form, preview=preview)


# ------------------------------------------------------------------ jobs
@bp.get("/jobs")
@auth.login_required()
def jobs():
    state = request.args.get("state") or None
    return render_template("jobs.html", jobs=_decorate(services().list_jobs(user(), state)), state=state,
                           states=_filter_states())


@bp.get("/jobs/rows")
@auth.login_required()
def jobs_rows():
    state = request.args.get("state") or None
    return render_template("_jobs_rows.html", jobs=_decorate(services().list_jobs(user(), state)), state=state)


def _filter_states():
    if user().role == OPERATOR:
        return [s for s in (st.SUBMITTED, st.AWAITING_APPROVAL, st.QUEUED, "in_progress", st.RELEASED,
                            st.REJECTED, st.FAILED, st.CANCELLED)]
    return list(st.STATES)


def _decorate(views: list[dict]) -> list[dict]:
    return [_decorate_one(v) for v in views]


def _decorate_one(v: dict) -> dict:
    """Progress for the list and the job page, from the view alone: the stage, and for
    operators the time (fixed before the run) after which the outcome shows."""
    v = dict(v)
    if v.get("message"):
        v["message"] = localized(v["message"])
    state = v["state"]
    if user().role == OPERATOR:
        steps = list(STEPS_OPERATOR)
        if state == st.AWAITING_APPROVAL:
            steps.insert(1, st.AWAITING_APPROVAL)
    else:
        steps = [st.SUBMITTED, st.QUEUED, st.RUNNING, st.CHECKING, st.AWAITING_REVIEW, st.RELEASED]
        if state == st.AWAITING_APPROVAL:
            steps.insert(1, st.AWAITING_APPROVAL)
    v["steps"] = steps
    v["step"] = steps.index(state) if state in steps else len(steps) - 1
    v["final"] = state in FINAL_VIEW_STATES
    v["progress"] = 100 if v["final"] else int(100 * v["step"] / (len(steps) - 1))
    after = v.get("outcome_visible_after")
    if after and not v["final"]:
        remaining = (datetime.fromisoformat(after) - datetime.now(timezone.utc)).total_seconds()
        v["seconds_left"] = max(0, int(math.ceil(remaining)))
    return v


@bp.get("/jobs/<job_id>")
@auth.login_required()
def job(job_id):
    view = _decorate_one(services().get_job(user(), job_id))
    return render_template("job.html", job=view, spec_json=json.dumps(view["spec"], ensure_ascii=False, indent=2))


@bp.get("/jobs/<job_id>/state")
@auth.login_required()
def job_state(job_id):
    return render_template("_job_state.html", job=_decorate_one(services().get_job(user(), job_id)))


@bp.post("/jobs/<job_id>/cancel")
@auth.login_required(OPERATOR)
def job_cancel(job_id):
    services().cancel(user(), job_id)
    flash(_("Job %(id)s cancelled; its budget reservation is returned.", id=job_id), "ok")
    return redirect(url_for("ui.job", job_id=job_id))


# ------------------------------------------------------------------ release
@bp.get("/jobs/<job_id>/release")
@auth.login_required()
def release(job_id):
    rel = services().release(user(), job_id)
    result = json.loads(rel["files"].get("result.json", "{}"))
    tables = [_chart_table(t) for t in result.get("tables", [])]
    cert = rel["certificate"]
    return render_template("release.html", job_id=job_id, tables=tables, cert=cert,
                           cert_json=json.dumps(cert, ensure_ascii=False, indent=2),
                           files=sorted(n for n in rel["files"] if n != "result.json"), level=ERROR_BAR_LEVEL)


@bp.get("/jobs/<job_id>/release.zip")
@auth.login_required()
def release_zip(job_id):
    rel = services().release(user(), job_id)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in rel["files"].items():
            z.writestr(name, content)
        z.writestr("certificate.json", json.dumps(rel["certificate"], ensure_ascii=False, indent=2))
        z.writestr("release_public_key.pem", rel["public_key"])
    return Response(buf.getvalue(), mimetype="application/zip",
                    headers={"Content-Disposition": f"attachment; filename=release-{job_id}.zip"})


@bp.get("/jobs/<job_id>/certificate.json")
@auth.login_required()
def certificate(job_id):
    rel = services().release(user(), job_id)
    return Response(json.dumps(rel["certificate"], ensure_ascii=False, indent=2), mimetype="application/json",
                    headers={"Content-Disposition": f"attachment; filename=certificate-{job_id}.json"})


@bp.get("/jobs/<job_id>/files/<name>")
@auth.login_required()
def release_file(job_id, name):
    rel = services().release(user(), job_id)
    if name not in rel["files"]:
        abort(404)
    mime = "text/csv" if name.endswith(".csv") else "application/json"
    return Response(rel["files"][name], mimetype=mime, headers={"Content-Disposition": f"attachment; filename={name}"})


def noise_halfwidth(mechanism: str, scale: float, level: float = ERROR_BAR_LEVEL) -> float | None:
    """Half-width of the central `level` interval of the added noise (public: from the
    mechanism and its scale only). Laplace(b): b*ln(1/(1-level)). Discrete Laplace
    P(x) ~ exp(-|x|/b): the smallest integer t with P(|X| > t) = 2p^(t+1)/(1+p) <= 1-level."""
    if not scale or scale <= 0:
        return None
    tail = 1 - level
    if mechanism == "laplace":
        return scale * math.log(1 / tail)
    if mechanism == "discrete_laplace":
        p = math.exp(-1 / scale)
        t = math.log(tail * (1 + p) / 2) / math.log(p) - 1
        return float(max(0, math.ceil(t)))
    return None  # mean, quantile: the error depends on the data; no bar is drawn


def _chart_table(t: dict) -> dict:
    """A released table plus what its chart needs: a label, a value and an error bar per cell."""
    stat = t.get("statistic")
    cols = t.get("columns", [])
    groups = len(t.get("group_by") or [])
    half = noise_halfwidth(t.get("mechanism", ""), float(t.get("noise_scale") or 0))
    bars = []
    for r in t.get("rows", []):
        label = " / ".join(str(x) for x in r[:groups])
        if stat == "histogram":
            label = (label + " " if label else "") + f"[{r[groups]:g}, {r[groups + 1]:g})"
        bars.append({"label": label or t.get("name"), "value": float(r[-1]), "err": half})
    return {**t, "columns": cols, "bars": bars, "halfwidth": half, "chart": _bar_chart(bars)}


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round axis ticks (1, 2 or 5 times a power of ten) inside [lo, hi]."""
    raw = (hi - lo) / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def _bar_chart(bars: list[dict]) -> dict:
    """Geometry of a horizontal bar chart with error bars, drawn as inline SVG by the template."""
    if not bars:
        return {"height": 0, "rows": []}
    lows = [b["value"] - (b["err"] or 0) for b in bars] + [0.0]
    highs = [b["value"] + (b["err"] or 0) for b in bars] + [0.0]
    lo, hi = min(lows), max(highs)
    if hi == lo:
        hi = lo + 1
    label_w, plot_w, row_h, top = 190, 480, 18, 22

    def x(v):
        return label_w + (v - lo) / (hi - lo) * plot_w

    rows = []
    for i, b in enumerate(bars):
        y = top + i * row_h
        x0, x1 = sorted((x(0), x(b["value"])))
        row = {"y": y, "ymid": y + row_h / 2 - 2, "x": x0, "w": max(1.0, x1 - x0), "label": b["label"][:28],
               "value": b["value"], "vx": label_w + plot_w + 6}
        if b["err"]:
            row.update({"ex0": x(b["value"] - b["err"]), "ex1": x(b["value"] + b["err"])})
        rows.append(row)
    ticks = [{"x": x(v), "v": v} for v in nice_ticks(lo, hi)]
    return {"height": top + len(bars) * row_h + 8, "width": label_w + plot_w + 90, "rows": rows, "zero": x(0),
            "ticks": ticks, "top": top, "bottom": top + len(bars) * row_h}


# ------------------------------------------------------------------ owner: run approvals
@bp.get("/approvals")
@auth.login_required(OWNER)
def approvals():
    waiting = services().list_jobs(user(), st.AWAITING_APPROVAL)
    for j in waiting:
        j["spec_json"] = json.dumps(j["spec"], ensure_ascii=False, indent=2)
    return render_template("approvals.html", jobs=waiting)


@bp.post("/approvals/<job_id>")
@auth.login_required(OWNER)
def approve(job_id):
    decision = request.form.get("decision")
    if decision not in ("approve", "reject"):
        raise InvalidInput(_("Choose approve or refuse."), "decision")
    services().approve_run(user(), job_id, decision == "approve", request.form.get("reason", ""))
    flash(_("Run of job %(id)s approved.", id=job_id) if decision == "approve"
          else _("Run of job %(id)s refused.", id=job_id), "ok")
    return redirect(url_for("ui.approvals"))


# ------------------------------------------------------------------ policies and licences
@bp.get("/policies")
@auth.login_required(OWNER, COMPLIANCE)
def policies():
    rows = []
    for ds in services().list_datasets():
        rows.append({"ds": ds, "policy": _current_policy(ds["name"])})
    return render_template("policies.html", rows=rows, today=datetime.now(timezone.utc).date())


@bp.route("/policies/<dataset>", methods=["GET", "POST"])
@auth.login_required(OWNER, COMPLIANCE)
def policy(dataset):
    ds = services().get_dataset(dataset)
    current = _current_policy(dataset)
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
            return redirect(url_for("ui.policy", dataset=dataset))
    return render_template("policy.html", ds=ds, current=current, text=text, result=result,
                           today=datetime.now(timezone.utc).date())


def _policy_action(action: str, dataset: str, text: str, current) -> dict:
    """validate / diff (pure domain calls) or apply (the service)."""
    filename = f"policies/{dataset}.yaml"
    try:
        parsed = pol.parse_policy(text, filename)
    except InvalidInput as e:
        return {"ok": False, "errors": localized(e).splitlines()}
    problems = [localized(p) for p in pol.check_against_manifest(parsed, services().manifest(dataset))]
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
        out["applied"] = services().apply_policy(text, filename, user().name)
    return out


# ------------------------------------------------------------------ consumption and metering
@bp.get("/consumption")
@auth.login_required(OWNER, COMPLIANCE)
def consumption():
    sections = []
    for ds in services().list_datasets():
        current = _current_policy(ds["name"])
        if current is None:
            continue
        periods = services().consumption(user(), ds["name"])
        sections.append({"ds": ds, "periods": periods, "budget": current["policy"].budget,
                         "chart": _consumption_chart(periods, float(current["policy"].budget.epsilon_per_period))})
    return render_template("consumption.html", sections=sections)


PALETTE = ("#1f6feb", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#e67700", "#0b7285")


def _consumption_chart(periods: list[dict], per_period: float) -> dict:
    """Grouped bars: epsilon charged (solid) and reserved (light) per operator per period,
    with the per-period allowance as a line."""
    if not periods:
        return {"rows": []}
    starts = sorted({p["period_start"] for p in periods})
    ops = sorted({p["operator"] for p in periods})
    top_v = max([per_period] + [p["epsilon_charged"] + max(0.0, p["epsilon_reserved"]) for p in periods]) or 1
    left, plot_h, group_w, bar_w, top = 50, 180, max(60, 24 * len(ops) + 20), 20, 12
    width = left + group_w * len(starts) + 20

    def y(v):
        return top + plot_h - v / top_v * plot_h

    bars, labels = [], []
    for gi, start in enumerate(starts):
        gx = left + gi * group_w + 10
        labels.append({"x": gx, "text": start[:10] if start != "all" else _("all time")})
        for oi, op in enumerate(ops):
            p = next((p for p in periods if p["period_start"] == start and p["operator"] == op), None)
            if p is None:
                continue
            charged, reserved = p["epsilon_charged"], max(0.0, p["epsilon_reserved"])
            bx = gx + oi * (bar_w + 4)
            bars.append({"x": bx, "y": y(charged), "h": y(0) - y(charged), "color": PALETTE[oi % len(PALETTE)],
                         "title": f"{op}: {charged:g}", "ry": y(charged + reserved), "rh": y(charged) - y(charged + reserved)})
    ticks = [{"y": y(v), "v": v} for v in nice_ticks(0.0, top_v)]
    return {"rows": bars, "labels": labels, "legend": [(op, PALETTE[i % len(PALETTE)]) for i, op in enumerate(ops)],
            "width": width, "height": top + plot_h + 30, "base": y(0), "limit_y": y(per_period), "left": left,
            "ticks": ticks, "top": top}


@bp.get("/metering")
@auth.login_required(OWNER, COMPLIANCE)
def metering():
    rows = services().metering(user())
    if request.args.get("format") == "csv":
        buf = io.StringIO()
        fields = ["period", "operator", "dataset", "jobs", "runs", "run_seconds", "rows_scanned", "epsilon_charged",
                  "releases"]
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
        return Response(buf.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=metering.csv"})
    return render_template("metering.html", rows=rows)


# ------------------------------------------------------------------ compliance: review
@bp.get("/reviews")
@auth.login_required(COMPLIANCE)
def reviews():
    return render_template("reviews.html", jobs=services().review_queue(user()))


@bp.get("/reviews/<job_id>")
@auth.login_required(COMPLIANCE)
def review(job_id):
    detail = services().review_detail(user(), job_id)
    voted = any(r.get("reviewer") == user().name for r in detail["reviews"])
    return render_template("review.html", r=detail, voted=voted, check_help=_check_help,
                           spec_json=json.dumps(detail["spec"], ensure_ascii=False, indent=2),
                           previews={o["name"]: _csv_rows(o["preview"]) for o in detail["outputs"]
                                     if o["name"].endswith(".csv")})


def _check_help(name: str) -> str:
    return CHECK_HELP.get(name.split(":", 1)[0], "")


def _csv_rows(text: str, limit: int = 30) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))[:limit + 1]


@bp.post("/reviews/<job_id>")
@auth.login_required(COMPLIANCE)
def review_vote(job_id):
    decision = request.form.get("decision")
    view = services().review(user(), job_id, decision, request.form.get("reason", ""))
    flash(_("Your decision on job %(id)s is recorded; the job is now: %(state)s.", id=job_id,
            state=STATE_LABELS.get(view["state"], view["state"])), "ok")
    return redirect(url_for("ui.reviews"))


# ------------------------------------------------------------------ audit
@bp.get("/audit")
@auth.login_required(COMPLIANCE, OWNER)
def audit():
    verify = services().audit_verify()
    records = services().audit_records()
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


def locale_code() -> str:
    return str(get_locale())

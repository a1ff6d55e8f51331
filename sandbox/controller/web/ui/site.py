"""The /ui blueprint every area hangs from: static files, CSRF, security headers, HTML error
pages, template filters and the navigation. Its hooks and error handlers apply to the areas'
nested blueprints too. The sign-in pages are its own routes (account.py), so `ui.login`, which
auth redirects to, keeps its name."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request, session, url_for
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from sandbox.controller.web import auth
from sandbox.controller.web.ui.common import error_page, user
from sandbox.controller.web.ui.i18n import (DISPLAY_TIMEZONE, LANGUAGES, MECHANISM_LABELS, ROLE_LABELS,
                                            STATE_LABELS, STATISTIC_LABELS, format_number, format_when, localized,
                                            select_locale, term)
from sandbox.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from sandbox.core.states import COMPLIANCE, OPERATOR, OWNER, TransitionError

STATIC = Path(__file__).resolve().parent.parent / "static"

bp = Blueprint("ui", __name__, url_prefix="/ui", static_folder=str(STATIC), static_url_path="/static")
bp.add_app_template_filter(format_when, "dt")
bp.add_app_template_filter(format_number, "num")


@bp.app_template_filter("json_text")
def json_text(value) -> str:
    """JSON for reading on a page: Chinese as itself (Jinja's tojson writes \\uXXXX escapes, which
    the audit page showed); autoescaping still makes it safe HTML."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@bp.before_request
def _csrf():
    auth.csrf_protect()


@bp.before_request
def _posted_language():
    # The language switch on a page shown after a post re-posts its form with ui_lang (ui.js),
    # so the draft comes back in the new language.
    code = request.form.get("ui_lang") if request.method == "POST" else None
    if code in LANGUAGES:
        session["lang"] = code


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


@bp.app_context_processor
def _context():
    u = user() if "ui" in request.blueprints else None
    return {"current_user": u, "csrf_token": auth.csrf_token, "nav": nav(u) if u else [],
            "lang": select_locale(), "languages": LANGUAGES, "html_lang": "zh-CN" if select_locale() == "zh_CN" else "en",
            "role_label": lambda r: ROLE_LABELS.get(r, r), "state_label": lambda s: STATE_LABELS.get(s, s),
            "stat_label": lambda s: STATISTIC_LABELS.get(s, s), "mech_label": lambda m: MECHANISM_LABELS.get(m, m),
            "display_tz": DISPLAY_TIMEZONE, "lang_next": _lang_next(), "term": term}


def _lang_next() -> str:
    """Where the language links return to. After a form post the posted URL may take no GET
    (the program page answered 405) or be another page (/ui/jobs is the job list), so they go
    back to the page the form was on; ui.js re-posts the form instead, keeping the draft."""
    if request.method == "GET":
        return request.full_path.rstrip("?")
    ref = urlsplit(request.referrer or "")
    if ref.netloc == request.host and ref.path.startswith("/ui/"):
        return ref.path + (f"?{ref.query}" if ref.query else "")
    return url_for("ui.home")


def nav(u) -> list[tuple[str, str, str]]:
    """(endpoint, label, id) per role: each role sees only the pages it may open."""
    items = {
        OPERATOR: [("ui.catalog.datasets", _("Catalog"), "nav-datasets"),
                   ("ui.builder.new", _("New query job"), "nav-new"),
                   ("ui.programs.new", _("Program job"), "nav-program"), ("ui.jobs.index", _("My jobs"), "nav-jobs")],
        OWNER: [("ui.approvals.index", _("Run approvals"), "nav-approvals"),
                ("ui.catalog.datasets", _("Datasets"), "nav-datasets"),
                ("ui.owner_data.register_form", _("Register data"), "nav-register"),
                ("ui.policies.index", _("Policies & licences"), "nav-policies"),
                ("ui.usage.consumption", _("Budget consumption"), "nav-consumption"),
                ("ui.usage.metering", _("Metering"), "nav-metering"), ("ui.jobs.index", _("Jobs"), "nav-jobs"),
                ("ui.audit.index", _("Audit log"), "nav-audit")],
        COMPLIANCE: [("ui.reviews.index", _("Review queue"), "nav-reviews"), ("ui.jobs.index", _("Jobs"), "nav-jobs"),
                     ("ui.catalog.datasets", _("Datasets"), "nav-datasets"),
                     ("ui.policies.index", _("Policies & licences"), "nav-policies"),
                     ("ui.usage.consumption", _("Budget consumption"), "nav-consumption"),
                     ("ui.usage.metering", _("Metering"), "nav-metering"),
                     ("ui.audit.index", _("Audit log"), "nav-audit")],
    }
    if u.role not in items:
        return []
    # Every role's inbox with its unread count: notices visible now only (core/notices.py).
    unread = current_app.config["SERVICES"].notices.unread_count(u)
    return items[u.role] + [("ui.notices.index", _("Inbox") + (f" ({unread})" if unread else ""), "nav-inbox")]


# ------------------------------------------------------------------ errors (HTML, never a trace)
@bp.errorhandler(InvalidInput)
def _invalid(e: InvalidInput):
    return error_page(400, localized(e))


@bp.errorhandler(Forbidden)
def _forbidden(e):
    return error_page(403, _("You may not open this page with your role."))


@bp.errorhandler(NotFound)
def _not_found(e):
    return error_page(404, _("Not found."))


@bp.errorhandler(Conflict)
@bp.errorhandler(TransitionError)
def _conflict(e):
    return error_page(409, localized(e))


@bp.errorhandler(HTTPException)
def _http(e: HTTPException):
    if e.code == 400 and e.description == "csrf":
        return error_page(400, _("This form has expired or did not come from this site. Reload the page and "
                                 "try again."))
    if e.code == 403:
        return error_page(403, _("You may not open this page with your role."))
    if e.code == 404:
        return error_page(404, _("Not found."))
    if e.code == 413:
        return error_page(413, _("The form is too large: at most %(n)s KiB in all, code included.",
                                 n=(current_app.config.get("MAX_CONTENT_LENGTH") or 0) // 1024))
    return error_page(e.code or 500, e.name)

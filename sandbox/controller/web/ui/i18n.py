"""The page's language: locale choice, Babel, number and date filters, labels, and domain messages."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

from flask import session
from flask_babel import Babel, format_datetime, format_decimal, gettext as _, lazy_gettext as _l

from sandbox.controller.web.ui.field_paths import field_path
from sandbox.core import states as st
from sandbox.core.errors import Text
from sandbox.core.states import COMPLIANCE, OPERATOR, OWNER

# Chinese messages live in translations/zh: newer Babel reads "zh_CN" as zh_Hans_CN,
# whose gettext fallbacks include "zh" but not "zh_CN".
LANGUAGES = {"zh_CN": "中文", "en": "English"}
DEFAULT_LANGUAGE = "zh_CN"
DISPLAY_TIMEZONE = "Asia/Shanghai"   # the bureau's; shown in the page footer
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"

ROLE_LABELS = {OPERATOR: _l("Licensed operator"), OWNER: _l("Data owner"), COMPLIANCE: _l("Compliance reviewer")}
STATE_LABELS = {
    st.SUBMITTED: _l("submitted"), st.AWAITING_APPROVAL: _l("awaiting owner approval"), st.QUEUED: _l("queued"),
    st.RUNNING: _l("running"), st.CHECKING: _l("checking"), st.AWAITING_REVIEW: _l("awaiting review"),
    st.RELEASED: _l("released"), st.REJECTED: _l("rejected"), st.FAILED: _l("failed"),
    st.CANCELLED: _l("cancelled"), "in_progress": _l("in progress"),
}
STATISTIC_LABELS = {"count": _l("count"), "sum": _l("sum"), "mean": _l("mean"), "histogram": _l("histogram"),
                    "quantile": _l("quantile")}
MECHANISM_LABELS = {"discrete_laplace": _l("discrete Laplace"), "laplace": _l("Laplace"),
                    "exponential": _l("exponential (noisy max)"),
                    "laplace+discrete_laplace": _l("Laplace + discrete Laplace")}

# Codes that pages show as words: a policy's values (the same word can mean different things in
# different fields: release "auto" is automatic release, run_approval "auto" needs no approval),
# job modes, column kinds, check statuses and audit actions. A code without a label shows as itself.
TERM_LABELS = {
    "mode": {"query": _l("query"), "program": _l("program"), "reviewed": _l("reviewed (human review)")},
    "release": {"auto": _l("automatic"), "one_reviewer": _l("one reviewer"), "two_reviewers": _l("two reviewers")},
    "run_approval": {"auto": _l("not needed"), "owner": _l("by the data owner")},
    "refresh": {"none": _l("never (lifetime only)"), "daily": _l("daily"), "monthly": _l("monthly"),
                "quarterly": _l("quarterly"), "yearly": _l("yearly")},
    "policy_changes": {"none": _l("at once"), "second_approval": _l("after a second person approves")},
    "policy_state": {"current": _l("in force"), "superseded": _l("superseded"), "proposed": _l("proposed"),
                     "declined": _l("declined"), "applied": _l("applied")},
    "licence_action": {"add": _l("add a licence"), "extend": _l("extend a licence"),
                       "revoke": _l("revoke a licence"), "purposes": _l("change a licence's purposes")},
    "bool": {True: _l("yes"), False: _l("no")},
    "kind": {"identifier": _l("identifier"), "categorical": _l("categorical"), "numeric": _l("numeric"),
             "date": _l("date"), "text": _l("free text")},
    "status": {"pass": _l("pass"), "fail": _l("fail"), "needs_review": _l("needs review")},
    "accounting": {"pure DP, basic composition": _l("pure DP, basic (sequential) composition")},
    "decision": {"approve": _l("approved"), "reject": _l("rejected"), "request_changes": _l("changes requested")},
    # The system's own actors in the audit log (people are shown by their names).
    "actor": {"system": _l("system"), "admission": _l("admission"), "gate": _l("release gate"),
              "sweeper": _l("sweeper"), "worker": _l("worker"), "anonymous": _l("anonymous")},
    "action": {"job.submitted": _l("job submitted"), "job.transition": _l("job state changed"),
               "job.run_recorded": _l("run recorded"), "job.diagnostics_read": _l("diagnostics opened"),
               "gate.checks": _l("release checks"), "budget.reserve": _l("budget reserved"),
               "budget.charge": _l("budget charged"), "budget.release": _l("budget returned"), "policy.applied": _l("policy applied"),
               "policy.proposed": _l("policy change proposed"), "policy.approved": _l("policy change approved"),
               "policy.declined": _l("policy change declined"),
               "review.vote": _l("review vote"), "release.downloaded": _l("release downloaded"),
               "dataset.registered": _l("dataset registered"),
               "dataset.registration_refused": _l("dataset registration refused"),
               "dataset.version_registered": _l("dataset version registered"),
               "dataset.version_retired": _l("dataset version retired"),
               "dataset.report_read": _l("registration report read"),
               "program.blocks_assigned": _l("program blocks assigned"), "program.block_done": _l("program block done"),
               "program.blocks_done": _l("program blocks done"), "user.password_set": _l("password set"),
               "user.sign_in_failed": _l("sign-in failed"), "user.token_issued": _l("API token issued")},
}


def term(field: str, value):
    """A code from TERM_LABELS in the page's language, or the value as it is."""
    label = TERM_LABELS.get(field, {}).get(value)
    return str(label) if label is not None else value


# A policy field (path in semantic_changes) -> the TERM_LABELS group of its values.
POLICY_VALUE_FIELDS = {"release": "release", "run_approval": "run_approval", "budget.refresh": "refresh",
                       "policy_changes": "policy_changes", "classification": None}


def policy_change(message) -> str:
    """One line of a policy's change summary (core.policy.file.semantic_changes) in the page's
    language, its values as words: `release: one reviewer -> two reviewers`."""
    from sandbox.core.policy.file import CHANGE
    if isinstance(message, Text) and message.template == CHANGE:
        path, old, new = message.params["path"], message.params["old"], message.params["new"]
        field = POLICY_VALUE_FIELDS.get(path) or ("bool" if path.endswith(".revoked") else None)
        if field == "policy_changes":   # the key is left out of a policy that keeps the default
            old, new = old or "none", new or "none"
        if field:
            old, new = term(field, old), term(field, new)
        return CHANGE.format(path=path, old=old, new=new)
    return localized(message)


def select_locale() -> str:
    lang = session.get("lang")
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def init_babel(app) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LANGUAGE)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", DISPLAY_TIMEZONE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale)


def localized(message) -> str:
    """A domain or service message in the page's language.

    The domain and the services write English `Text`s (sandbox/core/errors.py) that keep
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
    # A parameter named "field" is where the problem is (queries[0].epsilon): shown as words.
    params = {k: (field_path(v) if k == "field" and not isinstance(v, Text) else localized(v))
              if isinstance(v, str) else v for k, v in message.params.items()}
    try:
        return _(message.template).format(**params)
    except (KeyError, IndexError, ValueError):  # a catalog entry that lost a placeholder: English beats nothing
        return message.template.format(**params)


def format_when(value, fmt: str = "medium"):
    """Template filter `dt`: a datetime or ISO string in the display time zone and locale."""
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


def format_number(value, digits: int = 4):
    """Template filter `num`: grouped digits in the locale; tiny values in scientific notation."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value == 0:
        value = 0   # -0.0 (e.g. reserved minus returned) prints as "-0"
    if value != 0 and abs(value) < 10 ** -digits or value != 0 and round(value, digits) == 0:
        return format_decimal(value, format="0.###E0")
    return format_decimal(value, format="#,##0." + "#" * digits)

"""The policy page's forms as drafts: a licence form (add, extend, revoke, purposes) edits the
current policy text (core/policy/licence_edit.py, comments kept); then every draft, typed or
made by a form, goes through the one apply path (reason, base version, second approval).

A conflict keeps the draft and explains it: who applied which version when, and what changed
between the version the draft started from and the one in force."""
from __future__ import annotations

from flask import request
from flask_babel import gettext as _

from sandbox.controller.policy_changes import PolicyChanges, PolicyConflict
from sandbox.controller.web.ui.common import services, user
from sandbox.controller.web.ui.i18n import localized
from sandbox.core.errors import InvalidInput
from sandbox.core.policy import licence_edit as le
from sandbox.core.policy.file import semantic_changes, text_diff, parse_policy

LICENCE_ACTIONS = ("add", "extend", "revoke", "purposes")


def changes() -> PolicyChanges:
    return PolicyChanges(services().parts)


def licence_draft(current_text: str) -> str:
    """The current policy text with the posted licence change made (InvalidInput if it cannot be)."""
    form = request.form
    action, operator = form.get("licence_action", ""), form.get("operator", "").strip()
    if action == "add":
        return le.add_licence(current_text, operator, form.get("expires", ""),
                              le.split_purposes(form.get("purposes", "")))
    if action == "extend":
        return le.extend_licence(current_text, operator, form.get("expires", ""))
    if action == "revoke":
        return le.revoke_licence(current_text, operator)
    if action == "purposes":
        return le.set_purposes(current_text, operator, le.split_purposes(form.get("purposes", "")))
    raise InvalidInput(_("Choose what to do with the licence."), "licence_action")


def apply(dataset: str, text: str, reason: str, base_version) -> dict:
    """Apply through the service; the page's result: applied/proposed, or errors, or a conflict."""
    try:
        out = changes().apply(user(), text, f"policies/{dataset}.yaml", reason, base_version)
    except PolicyConflict as e:
        return {"ok": False, "errors": [localized(e.message)], "conflict": conflict(dataset, e)}
    except InvalidInput as e:
        return {"ok": False, "errors": localized(e).splitlines(), "field": e.field}
    return {"ok": True, "applied": out}


def conflict(dataset: str, e: PolicyConflict) -> dict:
    """Who applied the version in force, when, and its diff against the draft's base."""
    cur = e.current
    by_version = {v["version"]: v for v in changes().versions(user(), dataset)}
    base = by_version.get(e.base)
    filename = f"policies/{dataset}.yaml"
    summary = []
    if cur is not None:
        old = parse_policy(base["content"], filename) if base else None
        summary = [localized(s) for s in semantic_changes(old, parse_policy(cur.content, filename))]
    return {"version": cur.version if cur else None, "by": cur.applied_by if cur else "",
            "at": (cur.decided_at or cur.applied_at) if cur else None, "reason": cur.reason if cur else "",
            "base": e.base, "summary": summary,
            "diff": text_diff(base["content"] if base else None, cur.content, f"v{e.base}", f"v{cur.version}")
            if cur else ""}


def flash_text(applied: dict) -> str:
    if not applied["changed"]:
        return _("The policy is unchanged; nothing applied.")
    if applied["state"] == "proposed":
        return _("Version %(v)s proposed: it takes effect when a second person approves it.", v=applied["version"])
    return _("Policy version %(v)s applied.", v=applied["version"])

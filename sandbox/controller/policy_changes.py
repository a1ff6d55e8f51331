"""Changing a dataset's policy: each change states why, names the version its editor started
from (so a stale editor cannot silently overwrite a change someone just applied), and, where
the policy in force asks for it (`policy_changes: second_approval`), waits as a proposal until
a second person approves or declines it. Proposed and declined versions are never in force
(the repositories' latest_policy reads applied versions only).

Version states: core/policy/versions.py.
"""
from __future__ import annotations

from dataclasses import replace

from sandbox.core import lookups, notices
from sandbox.core import states as st
from sandbox.core import permissions as perm
from sandbox.core.errors import Conflict, InvalidInput, NotFound, Text
from sandbox.core.policy.file import parse_policy, semantic_changes, text_diff
from sandbox.core.policy.versions import APPLIED, decided, first_state
from sandbox.core.ports import Parts
from sandbox.core.records import Event, PolicyVersion

REASON_MAX = 2000


class PolicyConflict(Conflict):
    """The policy in force is not the version the change started from. `current` is the
    version in force (None when there is none yet), `base` the editor's version."""

    def __init__(self, message, current: PolicyVersion | None, base: int | None):
        super().__init__(message)
        self.message, self.current, self.base = message, current, base


def check_reason(reason) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput(Text("reason: say why the policy changes (it is kept with the version and in the "
                                "audit log)"), "reason")
    if len(reason) > REASON_MAX:
        raise InvalidInput(Text("reason: at most {n} characters", n=REASON_MAX), "reason")
    return reason.strip()


def check_base(value) -> int | None:
    """The editor's base version from a form or JSON: a whole number >= 0 (0 = no policy yet)."""
    if value is None or value == "":
        return None
    try:
        base = int(value)
    except (TypeError, ValueError):
        base = -1
    if isinstance(value, bool) or base < 0:
        raise InvalidInput(Text("base_version: send the version number the draft started from"), "base_version")
    return base


class PolicyChanges:
    def __init__(self, parts: Parts):
        self.p = parts

    def apply(self, user, text: str, filename: str, reason: str | None = None,
              base_version: int | None = None) -> dict:
        """Apply (or propose) a new version. `reason` is required from every surface (web,
        API, CLI); None is accepted only from in-process setup code (the admin bootstrap,
        test fixtures) that predates reasons, and is stored as no reason."""
        policy = parse_policy(text, filename)
        reason = "" if reason is None else check_reason(reason)
        base_version = check_base(base_version)
        with self.p.repo.transaction() as tx:
            ds = lookups.dataset(tx, policy.dataset)
            perm.check(user, "policy.apply", perm.Subject(dataset_owner=ds.owner_account))
            last = tx.latest_policy(policy.dataset)
            if base_version is not None and base_version != (last.version if last else 0):
                raise _conflict(last, base_version)
            if last is not None and last.content_hash == policy.content_hash:
                return {"dataset": policy.dataset, "version": last.version, "hash": last.content_hash,
                        "changed": False, "state": APPLIED}
            rows = tx.policy_versions(policy.dataset)
            version = max(r.version for r in rows) + 1 if rows else 1
            state = first_state(parse_policy(last.content, filename) if last else None)
            base = last.version if last else None
            event = Event(user.name, "policy.applied" if state == APPLIED else "policy.proposed", policy.dataset,
                          {"version": version, "hash": policy.content_hash, "reason": reason, "base_version": base})
            tx.add_policy_version(
                PolicyVersion(dataset=policy.dataset, version=version, content=text, content_hash=policy.content_hash,
                              applied_by=user.name, applied_at=self.p.clock(), reason=reason, base_version=base,
                              state=state), event)
            if state != APPLIED:
                reviewers = tuple(u.name for u in tx.users(st.COMPLIANCE) if u.active)
                for notice in notices.policy_proposed(policy.dataset, version, user.name, reviewers, self.p.clock()):
                    tx.add_notice(notice, event)
        return {"dataset": policy.dataset, "version": version, "hash": policy.content_hash, "changed": True,
                "state": state}

    def decide(self, user, dataset: str, version: int, approve: bool, reason: str) -> dict:
        """A second person approves (the version comes into force) or declines a proposal."""
        reason = check_reason(reason)
        with self.p.repo.transaction() as tx:
            ds = lookups.dataset(tx, dataset)
            row = next((v for v in tx.policy_versions(dataset) if v.version == version), None)
            if row is None:
                raise NotFound(f"policy of '{dataset}' has no version {version}")
            perm.check(user, "policy.decide", perm.Subject(dataset_owner=ds.owner_account, proposed_by=row.applied_by))
            target = decided(row.state, version, approve)
            last = tx.latest_policy(dataset)
            if approve and (last.version if last else None) != row.base_version:
                # Approving would silently undo what came into force after the proposal.
                raise _conflict(last, row.base_version, proposal=True)
            # A new record rather than assignments: `.state =` is kept for core.lifecycle's jobs.
            row = replace(row, state=target, decided_by=user.name, decided_at=self.p.clock(), decision_reason=reason)
            tx.save_policy_version(row, Event(user.name, "policy.approved" if approve else "policy.declined", dataset,
                                              {"version": version, "hash": row.content_hash, "reason": reason}))
        return {"dataset": dataset, "version": version, "state": target, "hash": row.content_hash}

    def versions(self, user, dataset: str) -> list[dict]:
        """Every version, newest first, with its diff against the version it started from
        (or the applied one before it) and the plain-language summary (Texts)."""
        with self.p.repo.transaction() as tx:
            ds = lookups.dataset(tx, dataset)
            perm.check(user, "policy.history", perm.Subject(dataset_owner=ds.owner_account))
            rows = tx.policy_versions(dataset)
            current = tx.latest_policy(dataset)
        by_version = {r.version: r for r in rows}
        out, previous_applied = [], None
        for row in rows:
            base = by_version.get(row.base_version) if row.base_version is not None else previous_applied
            out.append(_describe(row, base, dataset, current))
            if row.state == APPLIED:
                previous_applied = row
        return out[::-1]


def _describe(row: PolicyVersion, base: PolicyVersion | None, dataset: str, current) -> dict:
    filename = f"policies/{dataset}.yaml"
    state = row.state
    if state == APPLIED:
        state = "current" if current is not None and current.version == row.version else "superseded"
    new = parse_policy(row.content, filename)
    old = parse_policy(base.content, filename) if base else None
    return {"version": row.version, "state": state, "applied_by": row.applied_by,
            "applied_at": row.applied_at.isoformat(), "reason": row.reason, "base_version": row.base_version,
            "decided_by": row.decided_by, "decided_at": row.decided_at.isoformat() if row.decided_at else None,
            "decision_reason": row.decision_reason, "hash": row.content_hash, "content": row.content,
            "diff": text_diff(base.content if base else None, row.content,
                              f"v{base.version}" if base else "none", f"v{row.version}"),
            "summary": semantic_changes(old, new)}


def _conflict(current: PolicyVersion | None, base: int | None, proposal: bool = False) -> PolicyConflict:
    if current is None:
        message = Text("the dataset has no policy in force, but the change started from version {base}", base=base)
    elif proposal:
        message = Text("version {version} came into force (applied by {by} at {at}) after this change was "
                       "proposed from version {base}; decline it and propose the change again",
                       version=current.version, by=current.applied_by, at=_when(current), base=base)
    else:
        message = Text("the policy changed while you edited: version {version} was applied by {by} at {at}, "
                       "your draft started from version {base}; review the difference and apply again",
                       version=current.version, by=current.applied_by, at=_when(current), base=base)
    return PolicyConflict(message, current, base)


def _when(row: PolicyVersion) -> str:
    at = row.decided_at or row.applied_at
    return at.strftime("%Y-%m-%d %H:%M UTC")

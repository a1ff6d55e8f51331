"""A policy version's states, in one table (as core.states is for jobs).

A version is applied at once, or, where the policy in force asks for a second approval
(`policy_changes: second_approval`), proposed until a second person decides. Applied
versions are superseded by later applied ones (derived, never stored); only applied
versions are ever in force (the repositories' latest_policy reads those alone).
"""
from __future__ import annotations

from sandbox.core.errors import Conflict, Text

APPLIED, PROPOSED, DECLINED = "applied", "proposed", "declined"
TRANSITIONS = {PROPOSED: {APPLIED, DECLINED}}


def first_state(in_force) -> str:
    """The state of a new version: the policy in force (a Policy, or None) decides, so
    removing the rule is itself a change that needs the second approval."""
    return PROPOSED if in_force is not None and in_force.needs_second_approval else APPLIED


def decided(state: str, version: int, approve: bool) -> str:
    """The state a decision moves a version to; Conflict when it is not waiting for one."""
    target = APPLIED if approve else DECLINED
    if target not in TRANSITIONS.get(state, ()):
        raise Conflict(Text("version {version} is {state}, not waiting for a decision", version=version, state=state))
    return target

"""Licence forms as text edits (core/policy/licence_edit.py): each keeps the owner's comments
and layout, changes only the licence it names, and gives a policy that still parses."""
from __future__ import annotations

import difflib
from datetime import date

import pytest

from sandbox.config import REPO_ROOT
from sandbox.core.errors import InvalidInput
from sandbox.core.policy import licence_edit as le
from sandbox.core.policy.file import parse_policy

FILE = "policies/health_visits.yaml"
TEXT = (REPO_ROOT / FILE).read_text(encoding="utf-8")


def changed_lines(old: str, new: str) -> list[str]:
    return [line for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def licence(text: str, operator: str):
    return parse_policy(text, FILE).licence(operator)


def test_extending_changes_only_the_expiry_line_and_keeps_every_comment():
    new = le.extend_licence(TEXT, "operator2", "2027-06-30")
    assert changed_lines(TEXT, new) == ["-    expires: 2026-06-30", "+    expires: 2027-06-30"]
    assert licence(new, "operator2").expires == date(2027, 6, 30)


def test_an_extension_must_be_later_than_the_current_expiry():
    with pytest.raises(InvalidInput, match="later than 2027-12-31"):
        le.extend_licence(TEXT, "operator", date(2027, 1, 1))


def test_revoking_sets_the_flag_whether_or_not_the_licence_had_one():
    new = le.revoke_licence(le.revoke_licence(TEXT, "operator2"), "operator")
    assert licence(new, "operator").revoked and licence(new, "operator2").revoked
    assert changed_lines(TEXT, new) == ["+    revoked: true", "-    revoked: false", "+    revoked: true"]
    with pytest.raises(InvalidInput, match="already revoked"):
        le.revoke_licence(new, "operator")


def test_a_new_licence_goes_at_the_end_of_the_list_before_the_comments_that_follow_it():
    new = le.add_licence(TEXT, "operator3", date(2028, 3, 31), ["transport_planning", "transport_planning", " x "])
    assert changed_lines(TEXT, new) == ["+  - operator: operator3", "+    expires: 2028-03-31",
                                        "+    purposes: [transport_planning, x]"]
    lines = new.splitlines()
    assert lines.index("    purposes: [transport_planning, x]") < lines.index("# 隐私预算（每个运营方）/ privacy budget per operator.")
    assert licence(new, "operator3").purposes == {"transport_planning", "x"}
    with pytest.raises(InvalidInput, match="already has a licence"):
        le.add_licence(new, "operator3", date(2028, 3, 31), ["x"])


def test_a_first_licence_in_an_empty_list_keeps_the_comment_on_its_line():
    empty = TEXT[:TEXT.index("licences:")] + "licences: []  # nobody yet\n\n" + TEXT[TEXT.index("# 隐私预算"):]
    new = le.add_licence(empty, "operator", date(2028, 1, 1), ["p"])
    assert "# nobody yet" in next(line for line in new.splitlines() if line.startswith("licences:"))
    assert licence(new, "operator").expires == date(2028, 1, 1)


def test_changing_purposes_replaces_the_list_in_place():
    new = le.set_purposes(TEXT, "operator", le.split_purposes("public_health_planning，drug_safety, x y"))
    assert changed_lines(TEXT, new) == ["-    purposes: [public_health_planning, medical_insurance_research]",
                                        "+    purposes: [public_health_planning, drug_safety, x, y]"]


@pytest.mark.parametrize("call, field", [
    (lambda: le.extend_licence(TEXT, "nobody", date(2030, 1, 1)), "operator"),
    (lambda: le.add_licence(TEXT, "two words", date(2030, 1, 1), ["p"]), "operator"),
    (lambda: le.add_licence(TEXT, "op9", "31/12/2030", ["p"]), "expires"),
    (lambda: le.add_licence(TEXT, "op9", date(2030, 1, 1), [" "]), "purposes"),
    (lambda: le.revoke_licence("licences: [\n", "operator"), "content"),
    (lambda: le.revoke_licence("dataset: x\n", "operator"), "content"),
])
def test_what_cannot_be_done_says_which_field_to_fix(call, field):
    with pytest.raises(InvalidInput) as e:
        call()
    assert e.value.field == field

"""Licence forms and policy changes in Chromium (issue 17): an owner extends a licence with a
reason; a stale editor gets the conflict, keeps the draft and sees who changed what; the
policy's values and the forms are in Chinese on Chinese pages."""
from __future__ import annotations

import pytest

from tests.conftest import OWNER
from tests.ui.test_browser import follow, sign_in

pytestmark = pytest.mark.bwrap


def current(h) -> dict:
    return h.services.views.current_policy_text("health_visits")


def test_owner_extends_a_licence_with_a_reason(page, sandbox_app):
    h = sandbox_app
    sign_in(page, h, "owner")
    follow(page, "#nav-policies")
    assert "变更生效方式: 立即" in page.inner_text("#policy-health_visits p.small")
    page.goto(f"{h.url}/ui/policies/health_visits")
    before = current(h)
    # Chinese page: the policy's values and the form's choices are words, not codes.
    applied = page.inner_text("#policy-current")
    assert "一名审查员批准" in applied and "无需审批" in applied and "每月" in applied
    assert "one_reviewer" not in applied and "monthly" not in applied
    assert page.inner_text("#policy-changes-rule") == "立即"
    assert "授权延期" in page.inner_text("#licence-action")

    page.select_option("#licence-action", "extend")
    page.fill("#licence-operator", "operator2")
    page.fill("#licence-expires", "2027-06-30")
    with page.expect_navigation():
        page.click("#licence-submit")
    # No reason: refused in Chinese, nothing applied, the form keeps what was typed.
    assert "请说明策略变更的理由" in page.inner_text("#policy-errors")
    assert current(h)["version"] == before["version"]
    assert page.input_value("#licence-operator") == "operator2"

    page.fill("#licence-reason", "renewed contract with the health bureau")
    with page.expect_navigation():
        page.click("#licence-submit")
    assert "已生效" in page.inner_text(".flash")
    after = current(h)
    assert after["version"] == before["version"] + 1
    assert "expires: 2027-06-30" in after["content"] and "expires: 2026-06-30" not in after["content"]
    assert "# 授权运营方及授权场景" in after["content"]            # the owner's comments stay
    assert "2027-06-30" in page.inner_text("table.licences")

    follow(page, "#policy-history-link")
    row = page.inner_text(f"#v{after['version']}-row")
    assert "renewed contract with the health bureau" in row and "生效中" in row
    assert "licences[operator2].expires: 2026-06-30 -> 2027-06-30" in page.inner_text(f"#v{after['version']}")


def test_a_stale_editor_gets_the_conflict_and_keeps_the_draft(page, sandbox_app):
    h = sandbox_app
    sign_in(page, h, "owner")
    page.goto(f"{h.url}/ui/policies/health_visits")
    start = current(h)
    draft = page.input_value("#policy-text").replace("min_group_size: 10", "min_group_size: 12")

    # Meanwhile someone else applies a change.
    other = start["content"].replace("cpus: 2", "cpus: 1")
    h.services.owner.apply_policy(OWNER, other, "policies/health_visits.yaml", "fewer cpus per job",
                                  start["version"])

    page.fill("#policy-text", draft)
    page.fill("#policy-reason", "bigger smallest cells")
    with page.expect_navigation():
        page.click("#policy-apply")
    conflict = page.inner_text("#policy-conflict")
    newer = start["version"] + 1
    assert f"第 {newer} 版由 owner" in conflict and f"基于第 {start['version']} 版" in conflict
    assert "fewer cpus per job" in conflict
    assert "limits.cpus: 2.0 -> 1.0" in page.inner_text("#policy-conflict-summary")
    assert "+  cpus: 1" in page.inner_text("#policy-conflict-diff")
    assert page.input_value("#policy-text") == draft                 # the draft is kept
    assert page.input_value("#policy-reason") == "bigger smallest cells"
    assert current(h)["version"] == newer                           # nothing overwritten

    # Having looked, the owner applies the draft on top of the version in force.
    with page.expect_navigation():
        page.click("#policy-rebase")
    assert "已生效" in page.inner_text(".flash")
    assert current(h)["version"] == newer + 1 and "min_group_size: 12" in current(h)["content"]


def test_under_second_approval_a_revocation_waits_for_compliance(page, sandbox_app):
    h = sandbox_app
    start = current(h)
    h.services.owner.apply_policy(OWNER, start["content"] + "\npolicy_changes: second_approval\n",
                                  "policies/health_visits.yaml", "changes need a second person", start["version"])
    guarded = current(h)
    sign_in(page, h, "owner")
    page.goto(f"{h.url}/ui/policies/health_visits")
    assert page.inner_text("#policy-changes-rule") == "经第二人批准后"
    page.select_option("#licence-action", "revoke")
    page.fill("#licence-operator", "operator2")
    page.fill("#licence-reason", "operator2 left the programme")
    with page.expect_navigation():
        page.click("#licence-submit")
    assert "经第二人批准后生效" in page.inner_text(".flash")
    assert "operator2 left the programme" in page.inner_text("#policy-pending")
    assert current(h)["version"] == guarded["version"]               # not in force yet
    follow(page, "#policy-history-link")
    assert page.locator("form.policy-decide").count() == 0           # the proposer cannot decide

    page.click("#logout")
    page.wait_for_selector("#sign-in")
    sign_in(page, h, "reviewer")
    proposed = guarded["version"] + 1
    page.goto(f"{h.url}/ui/policies/health_visits/history")
    card = page.locator(f"#v{proposed}")
    assert "待批准" in card.inner_text() and "licences[operator2].revoked: 否 -> 是" in card.inner_text()
    card.locator("input[name=reason]").fill("confirmed with the operator")
    with page.expect_navigation():
        card.locator("button[value=approve]").click()
    assert "现已生效" in page.inner_text(".flash")
    assert current(h)["version"] == proposed and "revoked: true" in current(h)["content"]
    assert "confirmed with the operator" in page.inner_text(f"#v{proposed}-row")

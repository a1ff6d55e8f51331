"""Issue 17: each role's landing page (in Chinese), the operator's budget gauge against the API's
numbers, the operator's place among its own waiting jobs, the skip link, and the confirmation
asked before submitting a job or approving a release."""
from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from flask import Flask
from flask_babel import Babel

from sandbox.config import REPO_ROOT
from sandbox.controller.web.ui.i18n import format_number
from sandbox.core.waiting import own_position
from tests.conftest import OWNER
from tests.integration.harness import load_job
from tests.ui.test_browser import sign_in

pytestmark = pytest.mark.bwrap

SPEC_ER = {"mode": "query", "dataset": "enterprise_registry", "purpose": "business_environment_analysis",
           "queries": [{"name": "by_district", "statistic": "count", "group_by": ["district"], "epsilon": 0.5}]}


def zh_number(x) -> str:
    app = Flask(__name__)
    Babel(app, locale_selector=lambda: "zh_CN")
    with app.test_request_context():
        return format_number(x)


def test_the_operator_lands_on_its_jobs_and_a_gauge_whose_numbers_are_the_apis(page, sandbox_app, reviewed_job):
    h = sandbox_app
    sign_in(page, h, "operator")
    assert page.url.endswith("/ui/home") and page.inner_text("h1") == "我的工作概览"
    assert page.locator(f"#landing-job-{reviewed_job}").count() == 1
    assert "我最近的作业" in page.inner_text("#landing-jobs")
    api = page.request.get(f"{h.url}/api/v1/budget/health_visits",
                           headers={"Authorization": f"Bearer {h.tokens['operator']}"}).json()
    assert api["period_spent"] > 0
    gauge = page.locator("#landing-budgets #gauge-health_visits")
    for kind in ("period", "lifetime"):
        row = gauge.locator(f".gauge-row[data-kind={kind}]")
        for part in ("spent", "reserved", "available"):
            assert row.locator(f".v-{part}").inner_text() == zh_number(api[f"{kind}_{part}"]), (kind, part)
    assert "刷新" in gauge.locator(".gauge-refresh").inner_text()
    # The same gauge on the catalog (small), the dataset page and the job's page.
    for path, where in (("/ui/datasets", "#datasets"), ("/ui/datasets/health_visits", "#my-budget"),
                        (f"/ui/jobs/{reviewed_job}", "main")):
        page.goto(h.url + path)
        g = page.locator(f"{where} #gauge-health_visits")
        assert g.locator(".gauge-row[data-kind=period] .v-available").inner_text() == zh_number(api["period_available"])
        assert g.locator("svg.gauge-bar rect.spent").count() >= 1, path


def test_the_job_page_tells_the_operator_its_place_among_its_own_waiting_jobs(page, sandbox_app, reviewed_job):
    h = sandbox_app
    op = h.client("operator")
    sign_in(page, h, "operator")
    before = own_position(op.jobs(), reviewed_job)
    page.goto(f"{h.url}/ui/jobs/{reviewed_job}")
    after = own_position(op.jobs(), reviewed_job)
    text = page.inner_text("#waiting-position")
    n, m = (int(x) for x in re.findall(r"\d+", text)[:2][::-1])   # "…的 m 个作业中的第 n 个"
    assert {"position": n, "of": m} in (before, after)
    assert page.locator("#waiting-visible-after").count() == 1
    assert "共享队列" in page.inner_text("#waiting-why")


def test_the_owner_sees_approvals_burn_and_licences_expiring_soon(page, sandbox_app, reviewed_job):
    h = sandbox_app
    soon = (date.today() + timedelta(days=10)).isoformat()
    text = (REPO_ROOT / "policies" / "health_visits.yaml").read_text(encoding="utf-8")
    text = re.sub(r"wall_seconds: \d+", "wall_seconds: 40", text).replace("expires: 2026-06-30", f"expires: {soon}")
    h.services.owner.apply_policy(OWNER, text, "policies/health_visits.yaml")
    er = (REPO_ROOT / "policies" / "enterprise_registry.yaml").read_text(encoding="utf-8")
    er = re.sub(r"wall_seconds: \d+", "wall_seconds: 40", er).replace("run_approval: auto", "run_approval: owner")
    h.services.owner.apply_policy(OWNER, er, "policies/enterprise_registry.yaml")
    waiting = h.client("operator").submit(SPEC_ER)["job"]["id"]
    sign_in(page, h, "owner")
    assert page.url.endswith("/ui/home") and page.inner_text("h1") == "我的数据集概览"
    assert page.locator(f"#landing-approval-{waiting}").count() == 1
    burn = page.inner_text("#burn-health_visits")
    rows = h.client("owner").consumption("health_visits")["periods"]
    assert "ε" in burn and zh_number(sum(r["epsilon_charged"] for r in rows)) in burn
    expiring = page.locator("#landing-licences .licence-expiring").all_inner_texts()
    assert any("operator2" in t and soon in t and "剩 10 天" in t for t in expiring), expiring
    h.client("owner").run_approval(waiting, "reject", "landing test")


def test_compliance_sees_the_queue_with_mode_waiting_time_and_findings(page, sandbox_app, reviewed_job):
    h = sandbox_app
    sign_in(page, h, "reviewer")
    assert page.url.endswith("/ui/home") and page.inner_text("h1") == "审查概览"
    row = page.locator(f"#landing-review-{reviewed_job}")
    findings = len(h.client("reviewer").review_detail(reviewed_job)["findings"])
    assert row.locator(".findings").inner_text() == str(findings)
    assert "查询" in row.inner_text() and re.search(r"\d", row.locator(".waited").inner_text())


def test_the_skip_link_is_the_first_tab_stop_and_leads_to_the_content(page, sandbox_app):
    h = sandbox_app
    sign_in(page, h, "operator")
    page.goto(f"{h.url}/ui/datasets")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "skip-link"
    assert page.inner_text("#skip-link") == "跳到正文"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "content"


def test_submitting_asks_first_dismissing_keeps_the_page_accepting_submits(page, sandbox_app):
    h = sandbox_app
    op = h.client("operator")
    sign_in(page, h, "operator")
    page.goto(f"{h.url}/ui/jobs/new?dataset=health_visits")
    page.fill("#purpose", "public_health_planning")
    page.fill("#q0_name", "visits_by_district")
    page.check("#query-0 input[value=district]")
    page.fill("#q0_epsilon", "0.1")
    count = len(op.jobs())
    page.confirm_answer = False
    page.click("#submit-job")
    page.wait_for_timeout(1000)
    assert page.dialogs and "提交此作业" in page.dialogs[-1]
    assert "/ui/jobs/new" in page.url and page.input_value("#q0_name") == "visits_by_district"
    assert len(op.jobs()) == count
    page.confirm_answer = True
    with page.expect_navigation():
        page.click("#submit-job")
    page.wait_for_selector("#job-state")
    assert len(op.jobs()) == count + 1 and len(page.dialogs) == 2


def test_approving_a_release_asks_first(page, sandbox_app):
    h = sandbox_app
    job_id = h.client("operator").submit(load_job("health_query.json"))["job"]["id"]
    assert h.wait_state(job_id, {"awaiting_review", "failed"})["state"] == "awaiting_review"
    sign_in(page, h, "reviewer")
    page.goto(f"{h.url}/ui/reviews/{job_id}")
    page.confirm_answer = False
    page.click("#approve")
    page.wait_for_timeout(1000)
    assert page.dialogs and "发布" in page.dialogs[-1]
    assert page.url.endswith(f"/ui/reviews/{job_id}") and page.locator("#approve").count() == 1
    assert h.client("reviewer").job(job_id)["state"] == "awaiting_review"
    page.confirm_answer = True
    page.click("#approve")
    page.wait_for_selector("#review-queue")
    assert h.client("reviewer").job(job_id)["state"] != "awaiting_review" and len(page.dialogs) == 2

"""The inbox (站内信) in Chromium, in Chinese (the default language): an operator's released job
shows there only once the job's outcome is visible, with the unread count in the navigation,
and marking it read clears the count."""
from __future__ import annotations

import time

import pytest

from tests.ui.conftest import VISIBLE_AFTER
from tests.ui.test_browser import follow, sign_in

pytestmark = pytest.mark.bwrap


def test_the_operators_inbox_shows_a_released_job_only_once_its_outcome_is_visible(page, sandbox_app):
    h = sandbox_app
    operator = h.client("operator")
    spec = {"mode": "query", "dataset": "enterprise_registry", "purpose": "business_environment_analysis",
            "queries": [{"name": "by_district", "statistic": "count", "group_by": ["district"], "epsilon": 0.5}]}
    job_id = operator.submit(spec)["job"]["id"]
    assert h.wait_state(job_id, {"released", "failed"})["state"] == "released"
    sign_in(page, h, "operator")
    assert "站内信" in page.inner_text("#nav-inbox")
    follow(page, "#nav-inbox")
    if operator.job(job_id)["state"] == "in_progress":   # decided, not yet visible: nothing shows
        assert page.locator("#notices tr.notice").count() == 0
        assert page.inner_text("#nav-inbox").strip() == "站内信"
    deadline = time.monotonic() + VISIBLE_AFTER + 60
    while operator.job(job_id)["state"] != "released":
        assert time.monotonic() < deadline, "the release never became visible to the operator"
        time.sleep(0.5)
    page.reload()
    row = page.locator('#notices tr.notice.unread[data-kind="released"]')
    assert row.count() == 1
    assert job_id in row.inner_text() and "已发布" in row.inner_text()
    assert "(1)" in page.inner_text("#nav-inbox")
    with page.expect_navigation():
        row.locator("button.mark-read").click()
    assert page.locator('#notices tr.notice.read[data-kind="released"]').count() == 1
    assert page.inner_text("#nav-inbox").strip() == "站内信"
    follow(page, '#notices tr.notice[data-kind="released"] a')
    assert f"/ui/jobs/{job_id}" in page.url

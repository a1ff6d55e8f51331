"""The query page's SQL section in Chromium: an operator writes SQL beside the dataset's schema,
watches the live cost preview (cost, balance and each aggregate's 95% interval), submits, and
after review reads the released tables with a value and its interval in every row."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import VISIBLE_AFTER
from tests.ui.test_browser import assert_fits_1366, sign_in

pytestmark = pytest.mark.bwrap

SQL = ("SELECT district, COUNT(*) AS visits_sql, MEDIAN(cost) AS median_cost_sql "
       "FROM health_visits GROUP BY district")


def test_operator_writes_sql_sees_the_live_preview_and_reads_values_with_intervals(page, sandbox_app):
    h = sandbox_app
    sign_in(page, h, "operator")
    page.goto(f"{h.url}/ui/jobs/new?dataset=health_visits")
    page.click("#sql-tab summary")
    assert "district" in page.inner_text("#sql-schema") and "cost" in page.inner_text("#sql-schema")

    # Live preview: typing is enough (no button); a refusal shows in place, naming the part.
    page.fill("#sql-purpose", "public_health_planning")
    page.fill("#sql-epsilon", "0.4")
    page.fill("#sql-text", "SELECT * FROM health_visits")
    expect(page.locator("#sql-preview #preview-error")).to_contain_text("SELECT *")
    page.fill("#sql-text", SQL)
    expect(page.locator("#sql-preview #cost-epsilon")).to_contain_text("0.4")
    errors = page.locator("#sql-preview #expected-errors tbody tr")
    expect(errors).to_have_count(2)  # one row per aggregate: the count and the median
    assert "visits_sql" in errors.nth(0).inner_text() and "±" in errors.nth(0).inner_text()
    assert "median_cost_sql" in errors.nth(1).inner_text()
    assert_fits_1366(page)

    page.click("#submit-sql")
    page.wait_for_selector("#job-state")
    job_id = page.url.rstrip("/").rsplit("/", 1)[1]
    assert h.wait_state(job_id, {"awaiting_review", "failed"})["state"] == "awaiting_review"
    h.client("reviewer").review(job_id, "approve")

    # Released at start + wall limit: the job page turns to released by itself.
    page.wait_for_selector("#open-release", timeout=(VISIBLE_AFTER + 30) * 1000)
    page.click("#open-release")
    page.wait_for_selector("#downloads")
    for name, value in (("visits_sql", "count"), ("median_cost_sql", "quantile")):
        table = page.locator(f"#table-{name} table")
        header = [c.strip() for c in table.locator("thead th").all_inner_texts()]
        assert header == ["district", value, f"{value}_lower", f"{value}_upper"]
        rows = table.locator("tbody tr")
        assert rows.count() == 14  # every public district
        for i in range(rows.count()):
            cells = [c.replace(",", "") for c in rows.nth(i).locator("td").all_inner_texts()]
            v, lo, hi = (float(x) for x in cells[1:])
            assert lo <= v <= hi
    # The median's chart draws its interval as error bars too.
    assert page.locator("#table-median_cost_sql g.errbar").count() >= 1
    assert_fits_1366(page)

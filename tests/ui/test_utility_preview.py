"""The builder's cost preview states one error measure, the 95% interval, and sets it against a
typical cell assumed from public metadata, warning (in Chinese) where the noise is large (issue 17)."""
from __future__ import annotations

import pytest

from tests.ui.test_browser import ARTIFACTS, sign_in

pytestmark = pytest.mark.bwrap

BINS = ", ".join(str(b) for b in range(0, 101, 2))   # 50 age bins


def test_a_1000_cell_query_at_a_small_epsilon_shows_its_relative_error_and_a_warning(page, sandbox_app):
    h = sandbox_app
    sign_in(page, h, "operator")
    page.goto(f"{h.url}/ui/lang/zh")
    page.goto(f"{h.url}/ui/jobs/new?dataset=health_visits")
    # q0: 20 diagnosis groups x 50 age bins = 1,000 cells at ε 0.05 (± 300 rows on about 1,000).
    page.fill("#q0_name", "fine_histogram")
    page.select_option("#q0_statistic", "histogram")
    page.select_option("#q0_column", "age")
    page.fill("#q0_bins", BINS)
    page.check("#query-0 input[value=diagnosis_group]")
    page.fill("#q0_epsilon", "0.05")
    with page.expect_navigation():
        page.click("#add-query")
    # q1: a mean over 560 cells at ε 0.05: its interval covers more than half the range.
    page.fill("#q1_name", "fine_means")
    page.select_option("#q1_statistic", "mean")
    page.select_option("#q1_column", "cost")
    for g in ("district", "sex", "diagnosis_group"):
        page.check(f"#query-1 input[value={g}]")
    page.fill("#q1_epsilon", "0.05")
    with page.expect_navigation():
        page.click("#preview-button")
    table = page.locator("#expected-errors")
    table.wait_for()
    headers = table.locator("th").all_inner_texts()
    assert any("区间 / 典型单元格" in t for t in headers), headers
    assert not any("预期误差" in t or "Expected error" in t for t in headers), headers   # no mean-absolute column
    histogram = table.locator("tbody tr").nth(0)
    assert histogram.get_attribute("data-utility") == "noticeable"
    cell = histogram.locator("td.utility").inner_text()
    assert "± 30%" in cell and "1,000" in cell and "误差较大" in cell, cell
    means = table.locator("tbody tr").nth(1)
    assert means.get_attribute("data-utility") == "swamped"
    assert "噪声可能淹没信号" in means.locator("td.utility").inner_text()
    warning = page.locator(".utility-warning[data-query=fine_means]").inner_text()
    assert "噪声可能淹没信号" in warning and "减少分组或合并类别" in warning and "更多 ε" in warning, warning
    assert "更少、更宽的分箱" in page.locator(".utility-warning[data-query=fine_histogram]").inner_text()
    assumption = page.inner_text("#utility-assumption")
    assert "1,000,000" in assumption and "公开元数据" in assumption
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "test_utility_preview.png"), full_page=True)

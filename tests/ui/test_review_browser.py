"""The review page in Chromium, on a real reviewed-mode run (bubblewrap): a reviewer signs off
every finding and approves each file (Chinese), another requests changes on one file (English)
and the operator reads only the fixed text of the reason. Screenshots of the page in both
languages go to the artifacts folder (review_page_zh.png, review_page_en.png)."""
from __future__ import annotations

import json

import pytest
from babel.messages.pofile import read_po

from sandbox.config import REPO_ROOT
from sandbox.core.release.reasons import REASONS
from tests.ui.conftest import ARTIFACTS
from tests.ui.test_browser import assert_fits_1366, follow, sign_in, sign_out

pytestmark = pytest.mark.bwrap


def reviewed_job() -> dict:
    spec = json.loads((REPO_ROOT / "jobs" / "reviewed_enterprise.json").read_text())
    code = (REPO_ROOT / "jobs" / spec.pop("program")).read_text()
    return {"spec": spec, "code": code}


# Trusted tables and models run before the program, within one wall-time limit: the module's
# 10 s leave too little on a loaded machine. The operator sees the outcome at start + this.
WALL_SECONDS = 30


def submit(h) -> str:
    h.apply_policy("enterprise_registry", wall_seconds=WALL_SECONDS)
    job_id = h.client("operator").submit(reviewed_job())["job"]["id"]
    assert h.wait_state(job_id, {"awaiting_review", "failed"})["state"] == "awaiting_review"
    detail = h.client("reviewer").review_detail(job_id)
    assert detail["outputs"], detail["run_logs"]     # the run wrote what the page shows
    return job_id


def open_review(page, h, job_id) -> None:
    sign_in(page, h, "reviewer")
    follow(page, "#nav-reviews")
    follow(page, f"#open-review-{job_id}")
    page.wait_for_selector("#review-form")


def files_on_page(page) -> dict[str, int]:
    """Output name -> its index on the page (file-<i>)."""
    return {page.get_attribute(f"#file-{i}", "data-name"): i for i in range(page.locator(".review-output").count())}


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_a_reviewer_signs_off_every_finding_and_approves_each_file_in_chinese(page, sandbox_app):
    h = sandbox_app
    job_id = submit(h)
    detail = h.client("reviewer").review_detail(job_id)
    failing = [o["name"] for o in detail["outputs"] if any(c["status"] == "fail" for c in o["checks"])]
    open_review(page, h, job_id)
    assert page.get_attribute("html", "lang") == "zh-CN"
    # Everything the reviewer judges is on the page: outputs in full, code highlighted, spec,
    # purpose, every check with its help, one sign-off box per finding.
    files = files_on_page(page)
    assert set(files) == {o["name"] for o in detail["outputs"]} and len(files) >= 4
    assert page.locator(".output-content table.output-table").count() >= 2          # trusted tables
    assert "entity type" in page.inner_text(f"#content-{files['notes.txt']}")                   # text in full
    assert page.locator("#code-full .highlight .k").count() > 0                      # pygments
    assert page.inner_text("#purpose") == detail["purpose"] and page.locator("#spec-full .highlight").count() == 1
    helps = page.locator("#checks td.check-help")
    assert helps.count() == page.locator("#checks tr.check").count() >= 10
    assert all(t.strip() for t in helps.all_inner_texts())
    assert "可信代码" in page.inner_text("#checks")
    boxes = page.locator("#checks input[type=checkbox]")
    assert boxes.count() == len(detail["findings"]) >= 2
    assert page.locator("#differencing").is_visible()
    assert_fits_1366(page)

    # Approving before every finding is signed off is refused (400, the page again), naming what is missing.
    page.allow_http_errors = True
    with page.expect_navigation():
        page.click("#approve")
    assert "签核" in page.inner_text(".flash.error")
    for i in range(boxes.count()):
        boxes.nth(i).check()
    page.fill(f"#{boxes.nth(0).get_attribute('id')}-note", "看过了：被抑制的单元格无法由合计推出")
    for name, i in files.items():
        page.check(f"#file-{i}-{'reject' if name in failing else 'approve'}")
        if name in failing:
            page.select_option(f"#file-{i}-reason", "disclosure_risk")
    screenshot(page, "review_page_zh.png")
    with page.expect_navigation():
        page.click("#submit-files")
    page.wait_for_selector("#review-queue")
    state = h.client("reviewer").job(job_id)["state"]
    assert state == ("rejected" if failing else "released"), failing
    if not failing:
        cert = h.client("reviewer").release(job_id)["certificate"]["certificate"]
        assert {(s["output"], s["check"]) for s in cert["reviews"][0]["signoffs"]} == \
            {(f["output"], f["check"]) for f in detail["findings"]}
        assert "被抑制" not in json.dumps(cert, ensure_ascii=False)        # notes stay with compliance
    # After the vote the page shows who signed off what.
    page.goto(f"{h.url}/ui/reviews/{job_id}")
    assert page.locator("#checks td.signoff").filter(has_text="✓ reviewer").count() == len(detail["findings"])


def test_a_reviewer_requests_changes_in_english_and_the_operator_reads_only_the_fixed_text(page, sandbox_app):
    h = sandbox_app
    job_id = submit(h)
    open_review(page, h, job_id)
    with page.expect_navigation():
        page.click("#lang-en")
    page.wait_for_selector("#review-form")
    assert page.get_attribute("html", "lang") == "en"
    assert "computed by trusted code" in page.inner_text("#checks")
    # The job the first test released overlaps this one: same dataset version, same groupings.
    if any(j["mode"] == "reviewed" for j in h.client("reviewer").jobs("released")):
        assert page.locator("#differencing tr.overlapping").count() >= 1
        assert "same grouping" in page.inner_text("#differencing")
    files = files_on_page(page)
    target = files["employees_by_type.csv"]
    for name, i in files.items():
        page.check(f"#file-{i}-{'request_changes' if i == target else 'approve'}")
    page.fill(f"#file-{target}-note", "NOTE-CHANGES-9 merge the two smallest entity types")
    # Only the findings of the approved files need a sign-off.
    for box in page.locator("#checks input[type=checkbox]").all():
        if not box.get_attribute("id").startswith(f"signoff-{target}-"):
            box.check()
    assert page.locator("#file-0-decision").is_visible() and "Request changes" in page.inner_text(f"#file-{target}")
    screenshot(page, "review_page_en.png")
    with page.expect_navigation():
        page.click("#submit-files")
    page.wait_for_selector("#review-queue")
    assert h.client("reviewer").job(job_id)["state"] == "rejected"
    page.goto(f"{h.url}/ui/reviews/{job_id}")
    assert "NOTE-CHANGES-9" in page.inner_text(f"#file-{target}")            # compliance keeps the note
    sign_out(page)

    sign_in(page, h, "operator")
    page.goto(f"{h.url}/ui/jobs/{job_id}")
    page.wait_for_selector("#job-message", timeout=(WALL_SECONDS + 30) * 1000)
    # The language chosen on the sign-in page stays (English here).
    assert page.inner_text("#job-message") == "Rejected by compliance: " + REASONS["changes_requested"]
    assert "NOTE-CHANGES-9" not in page.content()
    with page.expect_navigation():
        page.click("#lang-zh_CN")
    with open(REPO_ROOT / "sandbox/controller/web/translations/zh/LC_MESSAGES/messages.po", "rb") as f:
        zh = read_po(f)
    reason = zh[REASONS["changes_requested"].template].string
    assert page.inner_text("#job-message") == zh["Rejected by compliance: {reason}"].string.format(reason=reason)

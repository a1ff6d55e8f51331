"""End-to-end browser tests: every role's flow by clicking, in Chinese (the default)
and English. Element ids are language-independent; visible text is checked where
the language is the point."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile

import pytest
from babel.messages.pofile import read_po
from playwright.sync_api import expect

from sandbox.config import REPO_ROOT
from sandbox.core.release.reasons import REASONS
from sandbox.adapters.signing import verify_certificate
from tests.integration.harness import load_job
from tests.ui.conftest import ARTIFACTS, VISIBLE_AFTER

pytestmark = pytest.mark.bwrap


def sign_in(page, h, name: str) -> None:
    page.goto(f"{h.url}/ui/login")
    page.fill("#name", name)
    page.fill("#password", h.passwords[name])
    page.click("#sign-in")
    page.wait_for_selector("#whoami")
    assert name in page.inner_text("#whoami")


def follow(page, link: str) -> None:
    """Follow a navigation link and wait for the new page: a bare click returns before
    the next page has loaded, and an element count read then sees the old page."""
    with page.expect_navigation():
        page.click(link)


def sign_out(page) -> None:
    page.click("#logout")
    page.wait_for_selector("#sign-in")


def assert_fits_1366(page) -> None:
    """Usable at 1366x768: no page-level horizontal scrolling (wide tables scroll inside their box)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1366, f"{page.url} is {width}px wide"


def test_operator_reviewer_operator_flow(page, sandbox_app):
    h = sandbox_app
    page.goto(f"{h.url}/ui/")
    assert "/ui/login" in page.url and page.get_attribute("html", "lang") == "zh-CN"
    sign_in(page, h, "operator")

    # Home (the operator's landing page) -> catalog -> dataset: schema, public metadata,
    # classification, mock download.
    assert page.inner_text("h1") == "我的工作概览"
    follow(page, "#nav-datasets")
    assert page.inner_text("h1") == "数据目录"
    page.click("#ds-health_visits")
    schema = page.inner_text("#schema")
    assert "person_id" in schema and "district" in schema and "L3" in page.inner_text("h1")
    assert_fits_1366(page)
    with page.expect_download() as dl:
        page.click("#mock-download")
    header = next(csv.reader(io.StringIO(dl.value.path().read_text(encoding="utf-8"))))
    assert header == [c["name"] for c in h.services.views.get_dataset("health_visits")["columns"]]

    # Job builder: three queries; the live preview shows cost, balance and expected errors.
    page.click("#new-job")
    page.fill("#purpose", "public_health_planning")
    page.fill("#q0_name", "visits_by_district")
    page.check("#query-0 input[value=district]")
    page.fill("#q0_epsilon", "0.3")
    page.click("#add-query")
    page.fill("#q1_name", "cost_by_district")
    page.select_option("#q1_statistic", "sum")
    page.select_option("#q1_column", "cost")
    page.check("#query-1 input[value=district]")
    page.fill("#q1_epsilon", "0.2")
    page.click("#add-query")
    page.fill("#q2_name", "age_histogram")
    page.select_option("#q2_statistic", "histogram")
    page.select_option("#q2_column", "age")
    page.fill("#q2_bins", "0, 18, 40, 65, 100")
    page.fill("#q2_epsilon", "0.1")
    page.locator("#q2_epsilon").dispatch_event("change")
    expect(page.locator("#cost-epsilon")).to_contain_text("0.6")
    assert "4.4" in page.inner_text("#balance-after")
    assert page.locator("#expected-errors tbody tr").count() == 3
    assert "±" in page.inner_text("#expected-errors")
    assert_fits_1366(page)
    page.click("#submit-job")
    page.wait_for_selector("#job-state")
    job_id = page.url.rstrip("/").rsplit("/", 1)[1]
    assert "已提交" in page.inner_text(".flash")

    # The job list refreshes by itself; before release the operator sees only a coarse state.
    follow(page, "#nav-jobs")
    row = f"#job-{job_id}"
    page.wait_for_selector(row)
    internal = h.wait_state(job_id, {"awaiting_review", "failed"})
    assert internal["state"] == "awaiting_review"
    page.wait_for_selector(f"{row} [data-state=in_progress]")
    assert page.locator(f"{row} .release-link").count() == 0  # nothing to open before release
    sign_out(page)

    # Compliance: queue -> review page with every check explained -> approve.
    sign_in(page, h, "reviewer")
    follow(page, "#nav-reviews")
    page.click(f"#open-review-{job_id}")
    checks = page.locator("#checks tr.check")
    assert checks.count() >= 5
    assert page.locator("#checks .badge.pass").count() == checks.count()
    assert "第一个作业" in page.inner_text("#spec-diff")   # the Chinese page says "first job" in Chinese
    # A rejection's reason is chosen from the fixed list; the note is for compliance only.
    assert page.locator("#reason option").count() == len(REASONS) + 1
    assert "仅合规" in page.inner_text("label[for=note]") and page.locator("#reason-warning").count() == 0
    # A DP query: nothing of the real run is on the page before the decision.
    assert page.locator("#diagnostics-withheld").is_visible() and page.locator("#open-diagnostics").count() == 0
    assert page.locator(".output").count() == 3  # one summary per released table
    assert_fits_1366(page)
    page.click("#approve")
    page.wait_for_selector("#review-queue")
    assert page.locator(f"#review-row-{job_id}").count() == 0
    sign_out(page)

    # Operator again: the list turns to "released" without a reload, at start + wall limit.
    sign_in(page, h, "operator")
    follow(page, "#nav-jobs")
    page.evaluate("window.__no_reload = 1")
    page.wait_for_selector(f"{row} [data-state=released]", timeout=(VISIBLE_AFTER + 30) * 1000)
    assert page.evaluate("window.__no_reload") == 1
    page.click(f"{row} .release-link")

    # Release page: a chart per table, error bars for counts and sums, certificate download.
    page.wait_for_selector("#downloads")
    assert page.locator("svg.chart").count() == 3
    assert page.locator("#table-visits_by_district g.errbar").count() == 14
    assert page.locator("#table-cost_by_district g.errbar").count() == 14
    with page.expect_download() as dl:
        page.click("#download-certificate")
    cert = json.loads(dl.value.path().read_text(encoding="utf-8"))
    assert verify_certificate(cert, h.services.views.public_key())
    assert cert["certificate"]["job"] == job_id
    with page.expect_download() as dl:
        page.click("#download-zip")
    with zipfile.ZipFile(dl.value.path()) as z:
        names = z.namelist()
    assert {"visits_by_district.csv", "certificate.json", "release_public_key.pem"} <= set(names)
    assert_fits_1366(page)


def test_a_rejection_reaches_the_operator_as_the_fixed_text_of_its_reason(page, sandbox_app):
    h = sandbox_app
    job_id = h.client("operator").submit(load_job("health_query.json"))["job"]["id"]
    assert h.wait_state(job_id, {"awaiting_review", "failed"})["state"] == "awaiting_review"
    sign_in(page, h, "reviewer")
    page.goto(f"{h.url}/ui/reviews/{job_id}")
    page.allow_http_errors = True               # the refused vote answers 400, with the review page
    page.click("#reject")                       # no reason chosen: back to the page, told what to fix
    page.wait_for_selector(".flash.error")
    assert "run_failed" in page.inner_text(".flash.error") and page.locator("#reject").count() == 1
    page.select_option("#reason", "too_detailed")
    page.fill("#note", "NOTE-7 the district grouping is finer than the purpose needs")
    page.click("#reject")
    page.wait_for_selector("#review-queue")
    # Compliance keeps the note; the run's diagnostics open now that the job is decided.
    page.goto(f"{h.url}/ui/reviews/{job_id}")
    assert "NOTE-7" in page.inner_text("#votes")
    page.click("#open-diagnostics")
    page.wait_for_selector("#diagnostics-note")
    sign_out(page)

    sign_in(page, h, "operator")
    page.goto(f"{h.url}/ui/jobs/{job_id}")
    page.wait_for_selector("#job-message", timeout=(VISIBLE_AFTER + 30) * 1000)
    with open(REPO_ROOT / "sandbox/controller/web/translations/zh/LC_MESSAGES/messages.po", "rb") as f:
        zh = read_po(f)
    reason = zh[REASONS["too_detailed"].template].string
    assert page.inner_text("#job-message") == zh["Rejected by compliance: {reason}"].string.format(reason=reason)
    assert "NOTE-7" not in page.content()
    assert page.inner_text("#job-state .steps li.current") == "已拒绝"   # the outcome, not "released"
    assert_fits_1366(page)


def test_owner_changes_policy_and_approves_runs(page, sandbox_app):
    h = sandbox_app
    sign_in(page, h, "owner")
    follow(page, "#nav-policies")
    assert "operator2" in page.inner_text("#policy-health_visits")  # licences listed
    page.click("#policy-enterprise_registry a")

    # Validate a broken edit: the error names the line; nothing is applied.
    original = page.input_value("#policy-text")
    page.fill("#policy-text", original.replace("run_approval: auto", "run_approval: sometimes"))
    page.click("#policy-validate")
    assert "'sometimes'" in page.inner_text("#policy-errors")  # the field shows as words (field_paths.py)

    # Diff, then apply: owners approve each run of this dataset from now on.
    page.fill("#policy-text", original.replace("run_approval: auto", "run_approval: owner"))
    page.click("#policy-diff")
    # The summary shows the values as words in the page's language (the diff shows the file).
    assert "run_approval: 无需审批 -> 由数据所有方审批" in page.inner_text("#policy-summary")
    assert "+run_approval: owner" in page.inner_text("#policy-diff-text")
    page.fill("#policy-reason", "owners approve each run from now on")
    page.click("#policy-apply")
    page.wait_for_selector(".flash")
    assert "run_approval: owner" in page.input_value("#policy-text")
    assert h.services.views.current_policy_text("enterprise_registry")["content"].count("run_approval: owner") == 1
    assert_fits_1366(page)

    # An operator's job now waits for the owner, who approves it in the browser.
    job_id = h.client("operator").submit(load_job("enterprise_query.json"))["job"]["id"]
    assert h.client("reviewer").job(job_id)["state"] == "awaiting_approval"
    follow(page, "#nav-approvals")
    card = page.locator(f"#approval-{job_id}")
    assert "business_environment_analysis" in card.inner_text()
    card.locator(".approve-run").click()
    page.wait_for_selector(".flash")
    assert page.locator(f"#approval-{job_id}").count() == 0
    assert h.client("reviewer").job(job_id)["state"] != "awaiting_approval"

    # Consumption chart per operator and the metering report.
    follow(page, "#nav-consumption")
    assert page.locator("#consumption-enterprise_registry svg.chart rect").count() >= 1
    follow(page, "#nav-metering")
    assert "enterprise_registry" in page.inner_text("#metering")
    follow(page, "#nav-audit")
    assert page.locator("#audit-ok").count() == 1
    assert "policy.applied" in page.inner_text("#audit-log")
    assert_fits_1366(page)


def test_roles_are_separated(page, sandbox_app):
    h = sandbox_app
    page.allow_http_errors = True
    page.goto(f"{h.url}/ui/reviews")
    assert "/ui/login" in page.url  # signed out: sign in first
    sign_in(page, h, "operator")
    assert page.locator("#nav-reviews").count() == 0
    for path in ("/ui/reviews", "/ui/approvals", "/ui/audit", "/ui/metering", "/ui/consumption"):
        resp = page.goto(f"{h.url}{path}")
        assert resp.status == 403, path
        assert "无权访问" in page.inner_text("#error")
    # A form post without the session's CSRF token is refused; the bearer API needs none.
    resp = page.request.post(f"{h.url}/ui/jobs", form={"action": "submit", "dataset": "health_visits"})
    assert resp.status == 400
    api = page.request.post(f"{h.url}/api/v1/jobs?dry_run=1", data=json.dumps(load_job("health_query.json")),
                            headers={"Authorization": f"Bearer {h.tokens['operator']}",
                                     "Content-Type": "application/json"})
    assert api.status == 200 and api.json()["dry_run"] is True
    sign_out(page)
    sign_in(page, h, "reviewer")
    assert page.goto(f"{h.url}/ui/jobs/new").status == 403
    assert page.goto(f"{h.url}/ui/programs/new").status == 403
    sign_out(page)
    # A wrong password is refused without saying which part was wrong.
    page.fill("#name", "operator")
    page.fill("#password", "not-the-password")
    page.click("#sign-in")
    assert page.inner_text("#login-error") == "用户名或密码错误。"
    page.goto(f"{h.url}/ui/reviews")  # final page for the screenshot: still signed out
    assert "/ui/login" in page.url


def test_both_languages(page, sandbox_app):
    h = sandbox_app
    page.goto(f"{h.url}/ui/login")
    assert page.get_attribute("html", "lang") == "zh-CN" and page.inner_text("h1") == "登录"
    sign_in(page, h, "operator")
    follow(page, "#nav-new")
    page.wait_for_selector("#cost-epsilon")
    zh_date = page.inner_text("#cost")
    assert "年" in zh_date and "可用" in zh_date

    page.click("#lang-en")
    assert page.get_attribute("html", "lang") == "en"
    page.wait_for_selector("#cost-epsilon")
    en_text = page.inner_text("#cost")
    assert "Available now" in en_text and "年" not in en_text
    # The choice is kept in the session across pages and sign-out.
    follow(page, "#nav-datasets")
    assert page.inner_text("h1") == "Data catalog"
    follow(page, "#nav-program")
    assert page.inner_text("h1") == "Program job" and "Output contract" in page.inner_text("#program-form")
    sign_out(page)
    assert page.inner_text("h1") == "Sign in"
    sign_in(page, h, "owner")
    follow(page, "#nav-metering")
    assert page.inner_text("h1") == "Metering report"
    page.click("#lang-zh_CN")
    assert page.inner_text("h1") == "计量报告" and page.get_attribute("html", "lang") == "zh-CN"


def test_operator_uploads_a_program(page, sandbox_app):
    h = sandbox_app
    page.allow_http_errors = True  # refused input answers 400 on purpose
    sign_in(page, h, "operator")
    follow(page, "#nav-program")
    # Offered: datasets whose policy allows program or reviewed mode for this operator.
    assert set(page.locator("#program-dataset option").evaluate_all("os => os.map(o => o.value)")) == {
        "enterprise_registry", "health_visits"}
    page.select_option("#program-dataset", "health_visits")
    page.wait_for_url("**dataset=health_visits**")
    assert page.input_value("#program-mode") == "program"
    assert page.locator("#program-mode option").count() == 1  # L3: no reviewed mode
    example = json.loads(page.input_value("#program-spec"))
    assert example["outputs"][0]["name"] == "mean_cost" and "dataset" not in example
    assert page.input_value("#purpose") == "public_health_planning"

    # Unparseable contract: the service's message (in the page's language), HTTP 400, the user's text kept.
    broken = '{"outputs": [{"name": "mean_cost", '
    page.fill("#program-spec", broken)
    with page.expect_navigation() as nav:
        page.click("#program-preview")
    assert nav.value.status == 400
    assert page.inner_text("#preview-error").startswith("作业规格不是有效的 JSON：")
    assert page.input_value("#program-spec") == broken

    # Fewer blocks than the example's 100 keep the worker's load small in this test.
    contract = json.dumps({**example, "blocks": 10}, indent=2)
    page.fill("#program-spec", contract)
    page.fill("#program-code", "def analyse(df):\n    return [df.cost.mean(\n")
    with page.expect_navigation() as nav:
        page.click("#program-preview")
    assert nav.value.status == 400
    assert page.inner_text("#preview-error").startswith("code：") and "语法错误" in page.inner_text("#preview-error")
    assert "df.cost.mean(" in page.input_value("#program-code")

    # Upload the example program; the dry run shows cost, balance and expected error per output.
    page.set_input_files("#program-file", str(REPO_ROOT / "jobs" / "program_mean_cost.py"))
    with page.expect_navigation() as nav:
        page.click("#program-preview")
    assert nav.value.status == 200
    assert page.input_value("#program-code") == (REPO_ROOT / "jobs" / "program_mean_cost.py").read_text()
    assert page.input_value("#program-spec") == contract
    assert page.inner_text("#admitted") == "可通过准入"
    assert "ε 1" in page.inner_text("#cost-epsilon")
    before = float(page.inner_text("#balance-before").split()[1])
    assert abs(float(page.inner_text("#balance-after").split()[1]) - (before - 1)) < 1e-9
    assert page.locator("#expected-errors tbody tr").count() == 3
    assert "±" in page.inner_text("#expected-errors") and "10" in page.inner_text("#program-plan")
    assert_fits_1366(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "test_operator_uploads_a_program-preview.png"), full_page=True)

    # A form post without the session's CSRF token is refused, like every other form.
    forged = page.request.post(f"{h.url}/ui/programs", form={"action": "submit", "dataset": "health_visits"})
    assert forged.status == 400

    # A purpose outside the licence: the dry run says it would be refused, every reason in Chinese.
    page.fill("#purpose", "tax_audit")
    with page.expect_navigation() as nav:
        page.click("#program-preview")
    assert nav.value.status == 200 and page.inner_text("#admitted") == "将被拒绝"
    assert page.inner_text("#refusal-reasons") == (
        "用途 'tax_audit' 不在运营方 'operator' 对数据集 'health_visits' 的授权范围内；已授权的用途："
        "medical_insurance_research, public_health_planning。")
    page.fill("#purpose", "public_health_planning")

    # Submit: the program runs once on mock data, the job is created, the job page opens.
    page.click("#program-submit")
    page.wait_for_selector("#job-state", timeout=60_000)
    job_id = page.url.rstrip("/").rsplit("/", 1)[1]
    assert "已提交" in page.inner_text(".flash")
    job = h.client("reviewer").job(job_id)
    assert job["mode"] == "program" and job["spec"]["blocks"] == 10 and job["purpose"] == "public_health_planning"
    # The text area sent back after the preview holds exactly the uploaded file.
    uploaded = (REPO_ROOT / "jobs" / "program_mean_cost.py").read_bytes()
    assert job["spec"]["code_sha256"] == hashlib.sha256(uploaded).hexdigest()
    assert "program" in page.inner_text("main")
    assert_fits_1366(page)


def test_reviewed_mode_example_and_conflicting_spec(page, sandbox_app):
    h = sandbox_app
    page.allow_http_errors = True
    sign_in(page, h, "operator")
    page.goto(f"{h.url}/ui/programs/new?dataset=enterprise_registry&mode=reviewed")
    assert page.input_value("#program-mode") == "reviewed"
    assert '"active_by_district"' in page.input_value("#program-spec")   # a trusted table, by name
    assert "def analyse(df, out)" in page.input_value("#program-code")
    page.click("#program-preview")
    assert page.inner_text("#admitted") == "可通过准入"
    # Every file the job will produce: two trusted tables, the trusted model, the program's notes.
    rows = page.locator("#declared-outputs tbody tr")
    assert rows.count() == 4
    assert [rows.nth(i).get_attribute("data-computed-by") for i in range(4)] == ["trusted"] * 3 + ["program"]
    assert "active_by_district.csv" in rows.nth(0).inner_text() and "可信代码" in rows.nth(0).inner_text()
    assert "notes.txt" in rows.nth(3).inner_text()
    # A pasted full spec naming another dataset is refused with a message, not silently changed.
    spec = json.loads(page.input_value("#program-spec"))
    page.fill("#program-spec", json.dumps({**spec, "dataset": "health_visits"}))
    with page.expect_navigation() as nav:
        page.click("#program-preview")
    assert nav.value.status == 400 and "health_visits" in page.inner_text("#preview-error")
    # A dataset whose policy does not allow the mode is named on the page.
    resp = page.goto(f"{h.url}/ui/programs/new?dataset=health_visits&mode=reviewed")
    assert resp.status == 400 and "health_visits" in page.inner_text("#program-context-error")
    assert_fits_1366(page)


def test_password_change(page, sandbox_app, browser):
    h = sandbox_app
    page.allow_http_errors = True
    name, old, new = "reviewer2", h.passwords["reviewer2"], "a-new-passphrase-42"
    elsewhere = browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        other = elsewhere.new_page()
        sign_in(other, h, name)
        sign_in(page, h, name)
        follow(page, "#nav-password")

        # A wrong current password is refused and nothing changes.
        page.fill("#current-password", "not-the-password")
        page.fill("#new-password", new)
        page.fill("#new-password2", new)
        with page.expect_navigation() as nav:
            page.click("#change-password")
        assert nav.value.status == 400
        assert page.inner_text("#password-error") == "当前密码错误。"
        page.fill("#current-password", old)
        page.fill("#new-password", new)
        page.fill("#new-password2", new + "x")
        page.click("#change-password")
        assert page.inner_text("#password-error") == "两次输入的新密码不一致。"
        assert_fits_1366(page)

        page.fill("#current-password", old)
        page.fill("#new-password", new)
        page.fill("#new-password2", new)
        page.click("#change-password")
        page.wait_for_selector("#landing-queue")  # still signed in here, on the start page (landing.py)
        assert "密码已修改" in page.inner_text(".flash")
        h.passwords[name] = new  # later tests in this module sign in with the new one
        # The session in the other browser has ended.
        other.goto(f"{h.url}/ui/reviews")
        assert "/ui/login" in other.url
    finally:
        elsewhere.close()

    sign_out(page)
    page.fill("#name", name)
    page.fill("#password", old)
    page.click("#sign-in")
    assert page.inner_text("#login-error") == "用户名或密码错误。"
    sign_in(page, h, name)

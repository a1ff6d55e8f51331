"""Browser tests of the web UI: Playwright driving Debian's Chromium against the
real app, a real Celery worker and the bubblewrap backend (one running sandbox per
module). CI sets SANDBOX_REQUIRE_BROWSER=1: a missing Chromium then fails the run;
elsewhere the tests skip and the summary says so in red."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.config import REPO_ROOT
from tests.conftest import DEMO_ROWS, make_env, need_backend, require
from tests.integration.harness import load_job, running

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui"
VIEWPORT = {"width": 1366, "height": 768}
# The policies' wall time in these tests: a ceiling, no longer every run's bound (query bounds
# are calibrated: about 11 s with the tests' generous start-up costs).
VISIBLE_AFTER = 40
_skipped: list[str] = []


def _unavailable(reason: str):
    msg = f"browser tests cannot run: {reason}"
    if require("browser"):
        pytest.fail(msg + " (required in CI: SANDBOX_REQUIRE_BROWSER=1)")
    _skipped.append(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium; make test does it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    except Exception as e:  # noqa: BLE001 - reported as the reason the suite cannot run
        pw.stop()
        _unavailable(f"chromium did not start: {e}")
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="module")
def sandbox_app(demo_datasets_dir, tmp_path_factory):
    """One running sandbox (app + worker + bwrap) shared by a module's tests."""
    need_backend("bwrap")
    tmp = tmp_path_factory.mktemp("ui")
    env = make_env(tmp, f"sqlite:///{tmp / 'sandbox.db'}", demo_datasets_dir, "bwrap")
    with running(env, DEMO_ROWS) as h:
        h.apply_policy("health_visits", wall_seconds=VISIBLE_AFTER)
        h.apply_policy("enterprise_registry", wall_seconds=VISIBLE_AFTER)
        h.passwords = json.loads((Path(env["SANDBOX_HOME"]) / "passwords.json").read_text())
        yield h


@pytest.fixture(scope="module")
def reviewed_job(sandbox_app):
    """A health_visits job charged and waiting for review: the budget has something spent."""
    h = sandbox_app
    job_id = h.client("operator").submit(load_job("health_query.json"))["job"]["id"]
    assert h.wait_state(job_id, {"awaiting_review", "failed"})["state"] == "awaiting_review"
    return job_id


@pytest.fixture
def page(browser, request):
    """A fresh browser context at 1366x768. The final page is saved as a screenshot,
    and any console error (a CSP violation, a script error) fails the test."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(20_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.allow_http_errors = False  # set by a test that opens forbidden pages on purpose
    # Submit and release buttons ask first (data-confirm, ui.js). Playwright dismisses dialogs
    # when nobody handles them, which would cancel every submit: one handler answers
    # pg.confirm_answer (accept unless a test says otherwise) and keeps the messages it saw.
    pg.confirm_answer = True
    pg.dialogs = []

    def _answer(dialog):
        pg.dialogs.append(dialog.message)
        dialog.accept() if pg.confirm_answer else dialog.dismiss()
    pg.on("dialog", _answer)
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()
    if pg.allow_http_errors:
        errors = [e for e in errors if not e.startswith("Failed to load resource: the server responded with a status of 4")]
    assert not errors, f"browser console errors: {errors}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _skipped:
        terminalreporter.write_sep("!", "BROWSER TESTS DID NOT RUN: " + _skipped[0], red=True)


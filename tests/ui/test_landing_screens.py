"""Each role's landing page at 1400 px and 390 px, in Chinese and English: nothing overflows
sideways, the page is the role's own landing page in the chosen language, and a full-page
screenshot is kept under test-artifacts/ui/landing-<role>-<lang>-<width>.png (the screenshots
the issue asks to be described; CI keeps them with the other UI artifacts)."""
from __future__ import annotations

import pytest

from tests.ui.conftest import ARTIFACTS
from tests.ui.test_browser import sign_in
from tests.ui.test_comfort_bugs import page_width, set_language

pytestmark = pytest.mark.bwrap

WIDTHS = {1400: {"width": 1400, "height": 900}, 390: {"width": 390, "height": 844}}
LANG_ATTR = {"zh_CN": "zh-CN", "en": "en"}
ROLE = {"operator": "operator", "owner": "owner", "reviewer": "compliance"}


@pytest.mark.parametrize("role", ["operator", "owner", "reviewer"])
def test_landing_page_at_both_widths_in_both_languages(page, sandbox_app, reviewed_job, role):
    h = sandbox_app
    sign_in(page, h, role)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for lang in ("zh_CN", "en"):
        set_language(page, h, lang)
        for width, viewport in WIDTHS.items():
            page.set_viewport_size(viewport)
            page.goto(f"{h.url}/ui/")
            assert page.locator("#landing").count() == 1, f"{role} did not land on a landing page: {page.url}"
            assert page.get_attribute("#landing", "data-role") == ROLE[role]
            assert page.get_attribute("html", "lang").lower().startswith(LANG_ATTR[lang].lower()[:2])
            if role != "owner":   # the owner's page shows the dataset's burn, not jobs
                assert page.locator(f"#landing-job-{reviewed_job}, #landing-review-{reviewed_job}").count() == 1
            assert page_width(page) <= width, f"{role} {lang} landing is {page_width(page)} px wide at {width}"
            page.screenshot(path=str(ARTIFACTS / f"landing-{role}-{lang}-{width}.png"), full_page=True)

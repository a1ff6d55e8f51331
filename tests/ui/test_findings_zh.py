"""The release checks' findings on the compliance review page read in the page's language (issue 17,
bug 10): a DP query job and a reviewed-mode job, each as the reviewer sees it in Chinese (no English
sentence in any finding) and in English (the findings as the checks wrote them)."""
from __future__ import annotations

import re

import pytest

from tests.integration.harness import load_job
from tests.ui.conftest import ARTIFACTS
from tests.ui.test_browser import sign_in
from tests.ui.test_comfort_bugs import ALLOWED_TERMS, _data_words, set_language
from tests.ui.test_review_browser import submit as submit_reviewed

pytestmark = pytest.mark.bwrap

FINDINGS = "() => Array.from(document.querySelectorAll('.check-finding, #failed-findings li, .refused-output li'))" \
           ".map(e => (e.firstChild && e.firstChild.nodeType === 3 ? e.firstChild.textContent : e.textContent).trim())"
HAN = re.compile(r"[\u4e00-\u9fff]")
# Codes a finding quotes from the spec as the operator wrote them: file types and model families,
# and the library that fitted the model.
SPEC_CODES = {"csv", "parquet", "png", "svg", "text", "ols", "logit", "probit", "statsmodels"}


def _english_words(text: str, allowed: set[str]) -> list[str]:
    """Words of English prose: letters only (a code has a digit, _ or .), not a name from the data
    (tables, columns, categories) and not a term the Chinese pages keep (ε, CSV, OpenDP ...)."""
    out = []
    for word in re.findall(r"[A-Za-z][A-Za-z0-9_.'’-]*", text):
        word = word.rstrip(".'’-")
        if len(word) > 1 and not re.search(r"[\d_.]", word) and word not in allowed:
            out.append(word)
    return out


def _findings(page, h, job_id: str) -> list[str]:
    page.goto(f"{h.url}/ui/reviews/{job_id}")
    page.wait_for_selector("#checks")
    return [t for t in page.evaluate(FINDINGS) if t]


@pytest.fixture(scope="module")
def jobs(sandbox_app):
    h = sandbox_app
    dp = h.client("operator").submit(load_job("health_query.json"))["job"]["id"]
    assert h.wait_state(dp, {"awaiting_review", "failed"})["state"] == "awaiting_review"
    return {"dp": dp, "reviewed": submit_reviewed(h)}


@pytest.mark.parametrize("kind", ["dp", "reviewed"])
def test_findings_on_the_review_page_are_chinese_with_no_english_sentence(page, sandbox_app, jobs, kind):
    h = sandbox_app
    allowed = ALLOWED_TERMS | SPEC_CODES | _data_words(h)
    sign_in(page, h, "reviewer")
    findings = _findings(page, h, jobs[kind])
    assert len(findings) >= 5
    assert not [f for f in findings if not HAN.search(f)], [f for f in findings if not HAN.search(f)]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#checks").screenshot(path=str(ARTIFACTS / f"findings_zh_{kind}.png"))
    left = {f: words for f in findings if (words := _english_words(f, allowed))}
    assert not left, "\n".join(f"{words} «{f[:120]}»" for f, words in left.items())

    # The same page in English shows the findings as the checks wrote them (and the CLI reads).
    set_language(page, h, "en")
    english = _findings(page, h, jobs[kind])
    stored = [c["explanation"] for o in h.client("reviewer").review_detail(jobs[kind])["outputs"]
              for c in o["checks"] or []]
    assert len(english) == len(findings) and set(english) <= set(stored)
    set_language(page, h, "zh_CN")

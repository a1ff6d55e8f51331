"""The Chinese catalog covers every UI message, and the committed .mo matches the .po
(a fresh clone serves Chinese without a compile step). Domain and service messages
(errors.Text) are in the catalog too, and the UI shows them in the page's language."""
from __future__ import annotations

import json
import string
from datetime import date, datetime, timezone

import pytest
import yaml
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask_babel import force_locale

from sandbox.config import REPO_ROOT
from sandbox.core.admission import JobRequest, decide
from sandbox.core.errors import InvalidInput, Text
from sandbox.core.ledger import balance, dataset_balance
from sandbox.core.manifest import parse_manifest
from sandbox.core.policy.file import PolicyError, parse_policy
from sandbox.core.specs.query import parse_query_spec
from sandbox.core.errors import Conflict
from sandbox.controller.web.ui import i18n

WEB = REPO_ROOT / "sandbox" / "controller" / "web"
CATALOG = WEB / "translations" / "zh" / "LC_MESSAGES"
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
# Where Text("template", ...) messages are written (babel.cfg extracts them with -k Text).
TEXT_METHODS = [("core/**.py", "python"), ("agent/**.py", "python"), ("controller/**.py", "python")]


def _po():
    with open(CATALOG / "messages.po", "rb") as f:
        return read_po(f)


def _text_messages() -> set[str]:
    return {msg for _f, _l, msg, _c, _x in extract_from_dir(REPO_ROOT / "sandbox", TEXT_METHODS,
                                                             keywords={"Text": None})}


def test_every_ui_message_has_a_chinese_translation():
    po = _po()
    translated = {m.id for m in po if m.id and m.string}
    used = {msg for _f, _l, msg, _c, _x in extract_from_dir(WEB, METHODS,
                                                             keywords={"_": None, "gettext": None, "_l": None})}
    assert used and not (used - translated), f"untranslated: {sorted(used - translated)}"


def test_every_domain_and_service_message_has_a_chinese_translation():
    translated = {m.id for m in _po() if m.id and m.string}
    used = _text_messages()
    assert len(used) > 150 and not (used - translated), f"untranslated: {sorted(used - translated)}"


def _fields(template: str) -> set[tuple[str, str]]:
    return {(name, spec) for _lit, name, spec, _conv in string.Formatter().parse(template) if name is not None}


def test_translated_text_templates_keep_their_placeholders():
    # A Text's translation is formatted with str.format and the Text's params: the same
    # {names} (and no stray braces) or the UI would fall back to English.
    po = _po()
    for msgid in _text_messages():
        msgstr = po[msgid].string
        assert _fields(msgstr) == _fields(msgid), msgid
        params = {name: "x" for name, _spec in _fields(msgid)}
        msgstr.format(**params)


def test_compiled_catalog_matches_the_po_file():
    with open(CATALOG / "messages.mo", "rb") as f:
        mo = read_mo(f)
    po = _po()
    assert {m.id: m.string for m in mo if m.id} == {m.id: m.string for m in po if m.id}


# ---------------------------------------------------------------- i18n.localized

@pytest.fixture(scope="module")
def app():
    app = Flask(__name__)
    i18n.init_babel(app)
    return app


@pytest.fixture
def zh(app):
    """A request in the default locale (Chinese)."""
    with app.test_request_context("/ui/"):
        yield


def _manifest():
    return parse_manifest(yaml.safe_load((REPO_ROOT / "datasets" / "health_visits.yaml").read_text(encoding="utf-8")))


def _refusal(**query) -> InvalidInput:
    spec = {"mode": "query", "dataset": "health_visits", "purpose": "public_health_planning",
            "queries": [{"name": "q1", "statistic": "count", "epsilon": 0.5, **query}]}
    with pytest.raises(InvalidInput) as e:
        parse_query_spec(spec, _manifest())
    return e.value


def _denial():
    p = parse_policy((REPO_ROOT / "policies" / "health_visits.yaml").read_text(encoding="utf-8"),
                     "policies/health_visits.yaml")
    now = datetime(2025, 3, 10, 9, tzinfo=timezone.utc)
    return decide(p, JobRequest(operator="operator", dataset="health_visits", mode="query",
                                purpose="tax_audit", epsilon=6.0), balance([], p.budget, now), date(2025, 3, 10),
                  dataset_balance([], p.budget, now))


def test_a_spec_refusal_in_chinese_and_english(zh):
    e = _refusal(statistic="median")
    english = ("queries[0].statistic: 'median' is not supported; use one of count, sum, mean, histogram, quantile")
    assert str(e) == english
    # The field path reads as words on a Chinese page (ui/field_paths.py), as written on an English one.
    assert i18n.localized(e) == "第 1 个查询 · 统计量：不支持 'median'；请使用以下之一：count, sum, mean, histogram, quantile"
    with force_locale("en"):
        assert i18n.localized(e) == english


def test_nested_texts_are_translated_in_turn(zh):
    e = _refusal(group_by=["person_id"])
    assert str(e).startswith("queries[0].group_by: 'person_id' is an identifier; group only by categorical columns: ")
    assert i18n.localized(e).startswith("第 1 个查询 · 分组：'person_id' 是标识符列；只能按分类列分组：")
    e = _refusal(epsilon=10 ** 40)
    assert i18n.localized(e) == "第 1 个查询 · ε：必须是大于 0 且不超过 10 的有限数值（收到 一个非常大的整数）"


def test_admission_reasons_in_chinese_and_english(zh):
    d = _denial()
    assert d.reasons == (
        "Purpose 'tax_audit' is not licensed for operator 'operator' on 'health_visits'; licensed purposes: "
        "medical_insurance_research, public_health_planning.",
        "Privacy cost epsilon 6 exceeds the 5 epsilon available in the current monthly period; "
        "it refreshes on 2025-04-01.")
    assert [i18n.localized(r) for r in d.reasons] == [
        "用途 'tax_audit' 不在运营方 'operator' 对数据集 'health_visits' 的授权范围内；已授权的用途："
        "medical_insurance_research, public_health_planning。",
        "隐私成本 epsilon 6 超出了本期预算（每月刷新，下次刷新日期为 2025-04-01）中可用的 epsilon 5。"]
    with force_locale("en"):
        assert [i18n.localized(r) for r in d.reasons] == list(d.reasons)


def test_policy_problems_and_service_errors_in_chinese(zh):
    with pytest.raises(PolicyError) as info:
        parse_policy("dataset: x\nmodes: []\n", "policies/x.yaml")
    lines = i18n.localized(info.value).splitlines()
    assert lines[0] == "policies/x.yaml:1: 分级: 为必填项"
    assert "policies/x.yaml:2: 模式: 至少须列出一种模式" in lines
    assert len(lines) == len(str(info.value).splitlines())
    assert i18n.localized(Conflict(Text("job is {state}, not awaiting review", state="queued"))) == \
        "作业当前状态为 queued，不在待审查状态"


def test_plain_strings_pass_unchanged_and_a_broken_translation_falls_back_to_english(zh, monkeypatch):
    assert i18n.localized("已翻译的文字 {x}") == "已翻译的文字 {x}"
    assert i18n.localized(ValueError("a plain error")) == "a plain error"
    monkeypatch.setattr(i18n, "_", lambda s: "坏的 {nope}")
    assert i18n.localized(Text("spec is {size} bytes", size=5)) == "spec is 5 bytes"


def test_a_stored_admission_refusal_reads_in_chinese_from_the_store(zh):
    """A job's message is stored in English and as template + parameters; read back, it is
    still translatable, and a person's typed reason stays as typed."""
    from sandbox.core.errors import join_texts, text_from_data, text_to_data
    reasons = _denial().reasons
    stored = json.loads(json.dumps(text_to_data(Text("Refused at admission: {reasons}",
                                                     reasons=join_texts("; ", reasons)))))
    message = text_from_data(stored)
    assert str(message) == "Refused at admission: " + "; ".join(reasons)
    assert i18n.localized(message).startswith("准入时被拒绝：用途 'tax_audit' 不在运营方 'operator'")
    typed = text_from_data(json.loads(json.dumps(text_to_data(
        Text("Rejected by compliance: {reason}", reason="cell sizes too small")))))
    assert i18n.localized(typed) == "合规审核驳回：cell sizes too small"
    assert text_from_data(None) is None and text_from_data({"template": "{missing}"}) is None


# --- release-check findings (issue 17) ----------------------------------------------------

def test_every_release_check_finding_has_a_chinese_translation():
    translated = {m.id: m.string for m in _po() if m.id and m.string}
    # The release rules, and trusted code's re-encoding of free-form files (its findings go with them).
    where = [("core/release/**.py", "python"), ("agent/reencode.py", "python"), ("agent/modes/reviewed.py", "python")]
    used = {msg for _f, _l, msg, _c, _x in extract_from_dir(REPO_ROOT / "sandbox", where, keywords={"Text": None})}
    assert len(used) > 100 and not (used - set(translated)), f"untranslated: {sorted(used - set(translated))}"
    for msgid in used:
        assert _fields(translated[msgid]) == _fields(msgid), msgid


def _stored(check) -> dict:
    """A check as the store keeps it (JSON), and as the review page reads it back."""
    return json.loads(json.dumps(check.to_dict(), ensure_ascii=False))


def test_a_finding_round_trips_through_storage_and_reads_in_chinese_and_english(zh):
    import pandas as pd

    from sandbox.controller.web.ui.review_render import finding_text
    from sandbox.core.release.tables import check_table
    table = pd.DataFrame({"district": [f"d{i}" for i in range(12)], "count": [3] + [20] * 11})
    found = {c.name: c for c in check_table(table, kind="frequency", forbidden_columns={"district"})}
    small, forbidden = _stored(found["min_cell_count"]), _stored(found["forbidden_columns"])
    assert small["explanation"] == ("1 cell(s) show counts below 10: (d0); merge categories or suppress "
                                    "those cells")   # what the CLI, the API and certificates read
    assert finding_text(small) == "1 个单元格的计数低于 10：(d0)；请合并类别或抑制这些单元格"
    assert finding_text(forbidden) == "列 district 被数据集策略禁止；请从输出中删除"
    with force_locale("en"):
        assert finding_text(small) == small["explanation"]
    # A finding stored before findings kept their template is shown as it is.
    assert finding_text({"name": "x", "status": "fail", "explanation": "an old finding"}) == "an old finding"


def test_nested_findings_read_in_chinese_with_no_english_words_left(zh):
    import re

    import pandas as pd

    from sandbox.controller.web.ui.review_render import finding_text
    from sandbox.core.release.differencing import ReleasedAggregate, check_differencing
    from sandbox.core.release.files import check_file
    many = [(f"d{i}",) for i in range(12)]
    old = ReleasedAggregate("v1", ("区县",), {k: 20.0 for k in many})
    new = ReleasedAggregate("v1", ("区县",), {k: 22.0 for k in many})
    checks = [check_differencing(new, [old], 10), check_file("out.svg", b"<svg><script>x</script></svg>", "svg", 10),
              check_file("a.txt", b"", "png", 10)]
    from sandbox.core.release.tables import check_table
    checks += check_table(pd.DataFrame({"身份证": ["x"] * 3, "n": [1, 2, 3]}), kind="frequency")
    for c in checks:
        shown = finding_text(_stored(c))
        words = [w for w in re.findall(r"[A-Za-z]{4,}", shown) if w not in {"release", "svg", "png", "script"}]
        assert not words, (c.name, shown)

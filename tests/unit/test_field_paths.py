"""Field paths in refusal messages read as words on a Chinese page and as written on an English
one (sandbox/controller/web/ui/field_paths.py, applied by i18n.localized to a `field` parameter)."""
from __future__ import annotations

import pytest
from flask import Flask
from flask_babel import force_locale

from sandbox.controller.web.ui import i18n
from sandbox.controller.web.ui.field_paths import field_path, field_path_html
from sandbox.core.errors import InvalidInput, Text


@pytest.fixture
def zh():
    app = Flask(__name__)
    i18n.init_babel(app)
    with app.test_request_context("/ui/"):   # the default locale: Chinese
        yield


@pytest.mark.parametrize("path, words", [
    ("queries[0].epsilon", "第 1 个查询 · ε"),
    ("columns[2].bounds", "第 3 列 · 取值范围"),
    ("queries[1].where[0].op", "第 2 个查询 · 第 1 个筛选条件 · 比较运算符"),
    ("tables[0].aggregates[2]", "第 1 张表 · 第 3 个统计项"),
    ("licences[1].expires", "第 2 份授权 · 到期日"),
    ("budget.lifetime_epsilon", "预算 · 终身 ε"),
    ("classification", "分级"),
    ("default[3]", "第 4 个默认值"),
    ("models[0].regressors[1]", "第 1 个模型 · 第 2 个自变量"),
])
def test_known_paths_read_as_words_on_a_chinese_page(zh, path, words):
    assert field_path(path) == words


def test_unknown_keys_stay_as_written(zh):
    assert field_path("queries[0].colour") == "第 1 个查询 · colour"
    assert field_path("outputs[0].my_table[2]") == "第 1 个输出 · my_table · 第 3 项"
    assert field_path("colour") == "colour"                       # nothing known: the path as it is
    assert field_path("not a path: x") == "not a path: x"
    assert field_path("") == "" and field_path(None) is None


def test_the_html_form_keeps_unknown_keys_as_code_and_escapes_them(zh):
    assert str(field_path_html("queries[0].colour")) == "第 1 个查询 · <code>colour</code>"
    assert str(field_path_html("<b>")) == "<code>&lt;b&gt;</code>"
    with force_locale("en"):
        assert str(field_path_html("queries[0].epsilon")) == "<code>queries[0].epsilon</code>"


def test_english_pages_keep_the_path(zh):
    with force_locale("en"):
        assert field_path("queries[0].epsilon") == "queries[0].epsilon"


def test_a_refusal_names_its_field_in_words(zh):
    e = InvalidInput(Text("{field}: must be a number greater than 0 and at most {max} (got {value})",
                          field="queries[0].epsilon", max="10", value="0"), "queries[0].epsilon")
    assert i18n.localized(e).startswith("第 1 个查询 · ε：")
    with force_locale("en"):
        assert i18n.localized(e) == "queries[0].epsilon: must be a number greater than 0 and at most 10 (got 0)"
    # Only a parameter named field is a path: the same text elsewhere is data, shown as it is.
    assert i18n.localized(Text("{name} was declared but not written by the program",
                               name="columns[2].bounds")).startswith("columns[2].bounds")

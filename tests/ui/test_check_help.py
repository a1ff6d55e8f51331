"""Every check the release gate can emit is explained on the review page, in English and in
Chinese. The names are read from the code that builds checks (core.release and the agent's
re-encoding), so a new rule without help fails here."""
from __future__ import annotations

import re

from babel.messages.pofile import read_po
from flask import Flask
from flask_babel import Babel, force_locale

from sandbox.config import REPO_ROOT
from sandbox.controller.web.ui.check_help import CHECK_HELP, check_help
from sandbox.controller.web.ui.i18n import TRANSLATIONS

SOURCES = [*(REPO_ROOT / "sandbox" / "core" / "release").glob("*.py"), *(REPO_ROOT / "sandbox" / "agent").rglob("*.py")]
# Check("name", ...) / Check(f"name:{...}", ...), and a name built first: check = f"name:{...}".
_NAMES = [re.compile(r'Check\(\s*f?"([a-z_]+)'), re.compile(r'=\s*f"([a-z_]+):\{'), re.compile(r'"name":\s*f"([a-z_]+):')]


def emitted_check_names() -> set[str]:
    names = set()
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for pattern in _NAMES:
            names |= set(pattern.findall(text))
    # Rules whose check name is the key of a table of texts (Check(f"{rule}:{name}", ...)).
    try:
        from sandbox.core.release import trusted
    except ImportError:
        trusted = None
    names |= set(getattr(trusted, "_RULE_TEXT", {}))
    return names


def test_the_scan_finds_the_known_checks():
    assert {"min_cell_count", "dominance_p", "differencing", "file", "content", "row_level"} <= emitted_check_names()


def test_every_check_the_gate_can_emit_has_help_in_english_and_chinese():
    names = emitted_check_names()
    missing = sorted(names - set(CHECK_HELP))
    assert not missing, f"checks without help on the review page: {missing}"
    with open(TRANSLATIONS / "zh" / "LC_MESSAGES" / "messages.po", "rb") as f:
        po = read_po(f)
    untranslated = sorted(n for n in names if not (po.get(CHECK_HELP[n]._args[0]) and
                                                   po.get(CHECK_HELP[n]._args[0]).string))
    assert not untranslated, f"check help without Chinese: {untranslated}"


def test_help_is_shown_in_the_page_language_for_a_full_check_name():
    app = Flask(__name__)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    Babel(app)
    with app.test_request_context():
        with force_locale("en"):
            english = check_help("dominance_p:employees_by_type.csv")
        with force_locale("zh"):
            chinese = check_help("dominance_p:employees_by_type.csv")
    assert english.startswith("p percent rule") and chinese.startswith("p 百分比规则")
    assert check_help("no_such_rule:x") == ""

"""The Chinese catalog covers every UI message, and the committed .mo matches the .po
(a fresh clone serves Chinese without a compile step)."""
from __future__ import annotations

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from sandbox.config import REPO_ROOT

CATALOG = REPO_ROOT / "sandbox" / "web" / "translations" / "zh" / "LC_MESSAGES"
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]


def _po():
    with open(CATALOG / "messages.po", "rb") as f:
        return read_po(f)


def test_every_ui_message_has_a_chinese_translation():
    po = _po()
    translated = {m.id for m in po if m.id and m.string}
    used = {msg for _f, _l, msg, _c, _x in extract_from_dir(REPO_ROOT / "sandbox" / "web", METHODS,
                                                             keywords={"_": None, "gettext": None, "_l": None})}
    assert used and not (used - translated), f"untranslated: {sorted(used - translated)}"


def test_compiled_catalog_matches_the_po_file():
    with open(CATALOG / "messages.mo", "rb") as f:
        mo = read_mo(f)
    po = _po()
    assert {m.id: m.string for m in mo if m.id} == {m.id: m.string for m in po if m.id}

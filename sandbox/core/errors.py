"""Errors raised by the domain on bad input. Messages say what to fix and never
contain anything computed from raw data.

Messages are written in English as `Text(template, **params)`: a `str` whose value is
`template.format(**params)` (the English text, as the API and the CLI show it), which
keeps the template and the parameters so the web UI can show the message in the
user's language (`sandbox/controller/web/ui/i18n.py: localized`). The templates are literals, so
pybabel extracts them (keyword `Text`, see babel.cfg and docs/ui.md); the domain
itself never translates anything.
"""
from __future__ import annotations

from collections.abc import Iterable


class Text(str):
    """An English message that remembers how it was made.

    ``Text("{n} is too large", n=5)`` is the str ``"5 is too large"`` with
    ``.template == "{n} is too large"`` and ``.params == {"n": 5}``. Parameters are
    the computed parts (names, field paths, numbers already formatted as the English
    text shows them); a parameter may itself be a Text, translated in turn. Every
    str operation (comparison, ``in``, slicing, JSON) sees the English text."""

    template: str
    params: dict

    def __new__(cls, template: str, /, **params) -> Text:
        self = super().__new__(cls, template.format(**params))
        self.template = template
        self.params = params
        return self

    def __getnewargs_ex__(self):
        # pickle and copy rebuild from the template, not from the English text.
        return (self.template,), dict(self.params)


def join_texts(separator: str, items: Iterable[str]) -> Text:
    """``separator.join(items)`` that stays translatable: each item that is a Text is
    translated on its own. (A plain ``separator.join`` gives a plain str, which is
    fine for a message that is only stored.)"""
    items = list(items)
    sep = separator.replace("{", "{{").replace("}", "}}")
    template = sep.join("{p%d}" % i for i in range(len(items)))
    return Text(template, **{f"p{i}": item for i, item in enumerate(items)})


def text_to_data(message: str) -> dict | None:
    """A Text as JSON data (stored with a job's message, so it can be shown translated
    later); None for a plain str, which has nothing to translate."""
    if not isinstance(message, Text):
        return None
    return {"template": message.template,
            "params": {k: text_to_data(v) if isinstance(v, Text) else v for k, v in message.params.items()}}


def text_from_data(data: object) -> Text | None:
    """The Text that text_to_data stored, or None for anything else (an older job)."""
    if not isinstance(data, dict) or not isinstance(data.get("template"), str):
        return None
    params = {k: (text_from_data(v) or v) if isinstance(v, dict) else v
              for k, v in (data.get("params") or {}).items()}
    template = data["template"]  # a variable, so pybabel does not take "template" for a message
    try:
        return Text(template, **params)
    except (KeyError, IndexError, ValueError):
        return None


class InvalidInput(ValueError):
    """Analyst- or owner-supplied input is malformed; the message says what to fix.

    str(e) is the English message; `e.message` is the message as raised (a Text when
    the domain or the services wrote it, which the web UI translates)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        out = {"error": "invalid_input", "message": str(self)}
        if self.field:
            out["field"] = self.field
        return out


class NotFound(Exception):
    """No such object, or one the actor may not know exists (answered alike)."""


class Forbidden(Exception):
    """The actor may not do this (core.permissions says who may)."""


class Conflict(Exception):
    """The object is not in a state that allows this."""

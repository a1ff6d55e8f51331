"""The verdict every release rule gives, and how its explanation names columns and cells.

Explanations go to the compliance reviewer. They name columns and cells by the table's own
public keys and never quote other values (no identifier values, no raw rows); the helpers
here clean and cap what is named.
"""
from __future__ import annotations

from dataclasses import dataclass

from sandbox.core.errors import Text, join_texts, text_to_data

PASS, FAIL, NEEDS_REVIEW = "pass", "fail", "needs_review"
MAX_LISTED = 10                 # cells/columns named per explanation; the rest are counted


@dataclass(frozen=True)
class Check:
    """One rule's verdict: pass / fail / needs_review, with an explanation a person can act on.

    The explanation is an English `Text`; `to_dict` keeps its template and parameters under
    `explanation_i18n` (as jobs keep their message, errors.text_to_data), so the review page can
    show it translated later. `explanation` stays the English text: what the CLI, the API, the
    audit log and certificates read."""
    name: str
    status: str
    explanation: str

    def to_dict(self) -> dict:
        out = {"name": self.name, "status": self.status, "explanation": str(self.explanation)}
        data = text_to_data(self.explanation)
        if data is not None:
            out["explanation_i18n"] = data
        return out


def as_text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def printable(text: str, cap: int = 60) -> str:
    clean = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return clean if len(clean) <= cap else clean[: cap - 1] + "…"


def fmt_key(key: tuple) -> str:
    """A cell key as the reviewer reads it: (兰州市, F)."""
    key = key if isinstance(key, tuple) else (key,)
    return "(" + ", ".join(printable(as_text(v), 40) for v in key) + ")"


def fmt_cells(keys: list[tuple]) -> str:
    return _listed([fmt_key(k) for k in keys[:MAX_LISTED]], len(keys))


def fmt_names(names: list[str]) -> str:
    # An item may be a Text (microdata's "column 2 (named like ...)"), translated in turn.
    return _listed([n if isinstance(n, Text) else printable(n) for n in names[:MAX_LISTED]], len(names))


def _listed(shown: list[str], total: int) -> str:
    """The items joined by commas (names and keys are data, shown as they are), and how many
    more when capped; a Text when anything in it is to be translated."""
    if any(isinstance(x, Text) for x in shown):
        joined = join_texts(", ", shown)
    else:
        joined = ", ".join(shown)
    if total > len(shown):
        return Text("{listed} and {more} more", listed=joined, more=total - len(shown))
    return joined

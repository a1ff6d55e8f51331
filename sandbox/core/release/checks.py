"""The verdict every release rule gives, and how its explanation names columns and cells.

Explanations go to the compliance reviewer. They name columns and cells by the table's own
public keys and never quote other values (no identifier values, no raw rows); the helpers
here clean and cap what is named.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

PASS, FAIL, NEEDS_REVIEW = "pass", "fail", "needs_review"
MAX_LISTED = 10                 # cells/columns named per explanation; the rest are counted


@dataclass(frozen=True)
class Check:
    """One rule's verdict: pass / fail / needs_review, with an explanation a person can act on."""
    name: str
    status: str
    explanation: str

    def to_dict(self) -> dict:
        return asdict(self)


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
    shown = ", ".join(fmt_key(k) for k in keys[:MAX_LISTED])
    return shown + (f" and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else "")


def fmt_names(names: list[str]) -> str:
    shown = ", ".join(printable(n) for n in names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")

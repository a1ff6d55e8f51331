"""How the review page shows each output in full, and the operator's code.

Outputs are what the reviewer judges (released files, not raw data), so they are rendered
whole: CSV and Parquet as tables (Parquet read with pyarrow), PNG and SVG as images from a
data: URI (an <img> never runs an SVG's scripts; the page's CSP allows data: images only),
anything else as text. Rendering is generic over the Output record (name, encoding, content),
so whatever trusted code wrote into an output shows here as it is."""
from __future__ import annotations

import base64
import csv
import io
import json

from markupsafe import Markup

from sandbox.controller.web.ui.i18n import localized
from sandbox.core.errors import text_from_data

MAX_TABLE_ROWS = 5_000       # released tables are capped far lower by the table_size rule
MAX_TEXT_CHARS = 512 * 1024


def render_output(o: dict) -> dict:
    """{"kind": "table", "columns", "rows", "more"} | {"kind": "image", "src"} |
    {"kind": "text", "text"} | {"kind": "unreadable", "why"} | {"kind": "refused", "findings"}."""
    name, content, encoding = o["name"].lower(), o.get("content") or "", o.get("encoding") or "utf-8"
    failing = [c for c in o.get("checks") or [] if c.get("status") == "fail"]
    if not content and failing:
        # Stored empty: trusted code refused it, could not compute it, or the program did not
        # write it. Its failing checks say which; the file cannot be approved.
        return {"kind": "refused", "findings": [finding_text(c) for c in failing]}
    try:
        data = base64.b64decode(content, validate=True) if encoding == "base64" else content.encode("utf-8")
    except ValueError:
        return {"kind": "unreadable", "why": "base64"}
    try:
        if name.endswith(".csv"):
            return _table(list(csv.reader(io.StringIO(data.decode("utf-8")))))
        if name.endswith(".parquet"):
            return _parquet(data)
        if name.endswith(".png") and data.startswith(b"\x89PNG\r\n\x1a\n"):
            return {"kind": "image", "src": "data:image/png;base64," + base64.b64encode(data).decode()}
        if name.endswith(".svg"):
            return {"kind": "image", "src": "data:image/svg+xml;base64," + base64.b64encode(data).decode()}
        if name.endswith(".json"):
            parsed = json.loads(data)
            return _records_table(parsed) or {"kind": "text", "text": json.dumps(parsed, ensure_ascii=False,
                                                                                 indent=2)[:MAX_TEXT_CHARS]}
        return {"kind": "text", "text": data.decode("utf-8")[:MAX_TEXT_CHARS]}
    except Exception:  # noqa: BLE001 - the checks already say what is wrong with a file; show it is unreadable
        return {"kind": "unreadable", "why": name.rsplit(".", 1)[-1]}


def finding_text(check: dict) -> str:
    """A check's finding in the page's language. Checks keep it as template and parameters
    (explanation_i18n, core.release.checks.Check.to_dict); one stored before that, or written
    without a Text, has only its English explanation, shown as it is."""
    return localized(text_from_data(check.get("explanation_i18n")) or check.get("explanation") or "")


def _table(rows: list[list[str]]) -> dict:
    if not rows:
        return {"kind": "table", "columns": [], "rows": [], "more": 0}
    body = rows[1:]
    return {"kind": "table", "columns": rows[0], "rows": body[:MAX_TABLE_ROWS],
            "more": max(0, len(body) - MAX_TABLE_ROWS)}


def _parquet(data: bytes) -> dict:
    import pyarrow.parquet as pq
    table = pq.read_table(io.BytesIO(data))
    shown = table.slice(0, MAX_TABLE_ROWS).to_pylist()
    columns = table.column_names
    return {"kind": "table", "columns": columns, "rows": [["" if r[c] is None else r[c] for c in columns]
                                                          for r in shown],
            "more": max(0, table.num_rows - MAX_TABLE_ROWS)}


def _records_table(parsed) -> dict | None:
    """A JSON object holding one list of flat records (a model's coefficients) as that table,
    with the object's other entries as its caption; None for anything else."""
    if not isinstance(parsed, dict):
        return None
    flat = [k for k, v in parsed.items() if isinstance(v, list) and v and all(
        isinstance(d, dict) and all(not isinstance(x, (list, dict)) for x in d.values()) for d in v)]
    return details_rows(parsed) if len(flat) == 1 else None


def highlight(code: str, language: str = "python") -> Markup:
    """Code as HTML with pygments' classes (styled in ui.css); pygments escapes the text."""
    from pygments import highlight as pyg_highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import JsonLexer, PythonLexer
    lexer = JsonLexer() if language == "json" else PythonLexer()
    return Markup(pyg_highlight(code, lexer, HtmlFormatter(cssclass="highlight", linenos="inline")))


def details_rows(details) -> dict | None:
    """A check's details (e.g. per-cell statistics from trusted code) as a table when they are
    a list of records, else as JSON text."""
    if details in (None, "", [], {}):
        return None
    if isinstance(details, dict):
        # e.g. {"group_by": [...], "cells": [{key, units, ...}, ...]}: the records as the table,
        # the other entries as its caption.
        records = next((k for k, v in details.items() if isinstance(v, list) and v
                        and all(isinstance(d, dict) for d in v)), None)
        if records is not None:
            table = details_rows(details[records])
            table["caption"] = json.dumps({k: v for k, v in details.items() if k != records}, ensure_ascii=False)
            return table
    if isinstance(details, list) and details and all(isinstance(d, dict) for d in details):
        columns = list(dict.fromkeys(k for d in details for k in d))
        return {"kind": "table", "columns": columns,
                "rows": [[_cell(d.get(c)) for c in columns] for d in details[:MAX_TABLE_ROWS]],
                "more": max(0, len(details) - MAX_TABLE_ROWS)}
    return {"kind": "text", "text": json.dumps(details, ensure_ascii=False, indent=2)[:MAX_TEXT_CHARS]}


def _cell(v):
    return json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else ("" if v is None else v)

"""File-level checks on a released file: a plain name, the size limit, an allowed type, and
content that really is the declared type (magic bytes; CSV and text valid UTF-8; SVG free of
scripts and external references). Explanations list the problems, never the content.

Magic bytes prove little on their own: reviewed-mode files reach these checks only after
trusted code decoded and re-wrote them (sandbox.agent.reencode), which drops whatever hides
outside the visible content and refuses SVG.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection

from sandbox.core.errors import Text, join_texts
from sandbox.core.release.checks import FAIL, PASS, Check, printable

FILE_KINDS = ("csv", "parquet", "png", "svg", "text")
_SUFFIXES = {"csv": (".csv",), "parquet": (".parquet", ".pq"), "png": (".png",), "svg": (".svg",),
             "text": (".txt", ".md")}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_SVG_FORBIDDEN = [
    (re.compile(r"<\s*script", re.I), Text("a script element")),
    (re.compile(r"<[^>]*\son[a-z]+\s*=", re.I), Text("an event-handler attribute")),
    (re.compile(r"javascript\s*:", re.I), Text("a javascript: URL")),
    (re.compile(r"<\s*foreignObject", re.I), Text("a foreignObject element")),
    # A plain DOCTYPE (matplotlib writes one) is harmless; an internal subset or ENTITY is XXE.
    (re.compile(r"<!\s*ENTITY|<!DOCTYPE[^>]*\[", re.I), Text("an entity declaration")),
    (re.compile(r"@import", re.I), Text("a CSS @import")),
    (re.compile(r"url\(\s*['\"]?(?!#)", re.I), Text("a url() reference to something outside the file")),
    (re.compile(r"<\s*(iframe|embed|object|audio|video)\b", re.I), Text("an embedded-content element")),
]
_SVG_HREF = re.compile(r"""(?:xlink:)?href\s*=\s*(["'])(.*?)\1""", re.I | re.S)
_SVG_SAFE_HREF = re.compile(r"^(#|data:image/(png|jpeg|gif);base64,)", re.I)


def check_file(name: str, data: bytes, declared_kind: str, max_bytes: int,
               allowed_types: Collection[str] = FILE_KINDS) -> Check:
    """One Check ("file") on an output file: name, size limit, allowed type, and content that
    really is the declared type (magic bytes; CSV/text valid UTF-8; SVG free of scripts and
    external references). The explanation lists every problem found; never the content."""
    problems = []
    shown = printable(name)
    if not name or "/" in name or "\\" in name or name.startswith(".") or shown != name or len(name) > 255:
        problems.append(Text("the file name must be a plain name (no folders, no leading dot, no control "
                             "characters, at most 255 characters)"))
    if declared_kind not in FILE_KINDS:
        problems.append(Text("declared type {kind} is unknown (known: {known})",
                             kind=repr(printable(declared_kind)), known=", ".join(FILE_KINDS)))
    elif declared_kind not in allowed_types:
        problems.append(Text("type {kind} is not allowed here (allowed: {allowed})", kind=declared_kind,
                             allowed=", ".join(sorted(allowed_types))))
    elif not name.lower().endswith(_SUFFIXES[declared_kind]):
        names = ["*" + x for x in _SUFFIXES[declared_kind]]   # one or two
        problems.append(Text("a {kind} file must be named {patterns}", kind=declared_kind,
                             patterns=names[0] if len(names) == 1 else Text("{first} or {second}", first=names[0],
                                                                           second=names[1])))
    if not data:
        problems.append(Text("the file is empty"))
    elif len(data) > max_bytes:
        problems.append(Text("{size} bytes exceed the limit of {max_bytes}", size=len(data), max_bytes=max_bytes))
    elif declared_kind in FILE_KINDS:
        problems += _content_problems(data, declared_kind)
    if problems:
        return Check("file", FAIL, Text("{name}: {problems}", name=shown, problems=join_texts("; ", problems)))
    return Check("file", PASS, Text("{name}: {kind}, {size} bytes, within limits", name=shown, kind=declared_kind,
                                    size=len(data)))


def sniff_kind(data: bytes) -> str | None:
    """The file type its bytes show: png, parquet, svg, csv-or-text ("text"), or None."""
    if data.startswith(_PNG_MAGIC):
        return "png"
    if len(data) >= 12 and data.startswith(b"PAR1") and data.endswith(b"PAR1"):
        return "parquet"
    text = _utf8_text(data)
    if text is None:
        return None
    if re.match(r"\s*(<\?xml[^>]*\?>\s*)?(<!--.*?-->\s*)*(<!DOCTYPE[^>]*>\s*)?(<!--.*?-->\s*)*<svg[\s>]",
                text.lstrip("\ufeff"), re.S | re.I):
        return "svg"
    return "text"


def _content_problems(data: bytes, kind: str) -> list[str]:
    sniffed = sniff_kind(data)
    if kind in ("png", "parquet"):
        return [] if sniffed == kind else [Text("the content is not {kind} (its first bytes say otherwise)",
                                                kind=kind)]
    if sniffed not in ("svg", "text"):
        return [Text("the content is not UTF-8 text without control characters")]
    text = _utf8_text(data)
    if kind == "svg":
        return ([] if sniffed == "svg" else [Text("the content is not an SVG image")]) + _svg_problems(text)
    if kind == "csv":
        return _csv_problems(text)
    return []


def _svg_problems(text: str) -> list[str]:
    out = [Text("the SVG contains {what}", what=what) for pattern, what in _SVG_FORBIDDEN if pattern.search(text)]
    for _, target in _SVG_HREF.findall(text):
        if not _SVG_SAFE_HREF.match(target.strip()):
            out.append(Text("the SVG links to something outside the file (href)"))
            break
    return out


def _csv_problems(text: str) -> list[str]:
    try:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    except csv.Error:
        return [Text("the content does not parse as CSV")]
    rows = [r for r in rows if r]
    if not rows:
        return [Text("the CSV has no header row")]
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        return [Text("CSV rows have differing numbers of fields ({widths})",
                     widths=", ".join(map(str, sorted(widths))))]
    return []


def _utf8_text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(ch) < 32 and ch not in "\t\r\n" for ch in text):
        return None
    return text

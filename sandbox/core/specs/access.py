"""Per-column classification (分类分级) at submission: the one place every job mode passes.

A manifest column may be ``access: hidden`` (no operator may use it) or carry ``modes``
(usable only in those job modes). Every parser (query JSON, SQL compiled to the same query
dict, program, reviewed) first runs against the operator's view of the manifest, which lacks
the restricted columns, so no refusal lists a column the operator may not see; when that
refusal is about a restricted column, the spec is parsed again against the whole manifest
and the compiled dict is checked here, so the 400 names the column and why. Operator code
(program and reviewed modes) that names a restricted column in a string is refused too; the
data those boxes get lacks such columns anyway (sandbox.agent.columnview, sandbox.agent.blocks).
"""
from __future__ import annotations

import ast
from dataclasses import replace
from typing import Callable

from sandbox.core.errors import InvalidInput, Text
from sandbox.core.manifest import Column, Manifest

# The keys of a compiled spec dict whose values name columns (query, SQL, reviewed tables and models).
COLUMN_KEYS = ("column", "group_by", "dependent", "regressors")


def operator_view(manifest: Manifest, mode: str) -> Manifest:
    """The manifest without the columns an operator may not use in `mode`."""
    return replace(manifest, columns=tuple(c for c in manifest.columns if c.usable_in(mode)))


def box_manifest(manifest: Manifest, mode: str) -> Manifest:
    """The manifest a box running operator code reads: the operator's view, plus the privacy
    unit's declaration (the catalog shows its name anyway) so that it still parses; the
    unit's data is not in that box when the unit is restricted."""
    return replace(manifest, columns=tuple(c for c in manifest.columns
                                           if c.usable_in(mode) or c.name == manifest.privacy_unit))


def parse_for_operator(parse: Callable[[Manifest], object], manifest: Manifest, mode: str, code: str | None = None,
                       raw: object = None):
    """`parse(manifest) -> spec` for an operator's job of `mode` (`raw`: the spec as sent),
    refusing restricted columns."""
    if not manifest.restricted(mode):
        return parse(manifest)
    try:
        spec = parse(operator_view(manifest, mode))
    except InvalidInput as refused:
        try:
            whole = parse(manifest)
        except InvalidInput:
            # Wrong on other counts too (say, grouping by a hidden identifier): the spec as
            # sent still tells which restricted column it names.
            check_columns(raw, manifest, mode)
            _check_sql(raw, manifest, mode)
            raise refused from None
        check_columns(whole.to_dict(), manifest, mode)
        raise
    check_code(code, manifest, mode)
    return spec


def check_columns(spec: dict, manifest: Manifest, mode: str) -> None:
    """Refuse a compiled spec dict that names a column not usable in `mode`."""
    restricted = {c.name: c for c in manifest.restricted(mode)}
    for where, name in _column_refs(spec, ""):
        if name in restricted:
            raise InvalidInput(_why(restricted[name], mode, where), where or "spec")


def _check_sql(raw: object, manifest: Manifest, mode: str) -> None:
    """A SQL job that does not compile may still name a restricted column: find it among the
    statements' identifiers (sqlglot's tokenizer, as the SQL compiler uses)."""
    sql = raw.get("sql") if isinstance(raw, dict) else None
    statements = [sql] if isinstance(sql, str) else sql if isinstance(sql, list) else []
    restricted = {c.name: c for c in manifest.restricted(mode)}
    from sqlglot.errors import SqlglotError
    from sqlglot.tokens import Tokenizer, TokenType
    for i, text in enumerate(statements):
        try:
            tokens = Tokenizer().tokenize(text) if isinstance(text, str) else []
        except SqlglotError:
            continue
        for t in tokens:
            if t.token_type in (TokenType.VAR, TokenType.IDENTIFIER) and t.text in restricted:
                where = f"sql[{i}]" if isinstance(sql, list) else "sql"
                raise InvalidInput(_why(restricted[t.text], mode, where), where)


def check_code(code: str | None, manifest: Manifest, mode: str) -> None:
    """Refuse operator code with a string naming a restricted column (say df["name"]): the
    column is not in the data its box gets, and the operator should learn why up front."""
    restricted = {c.name: c for c in manifest.restricted(mode)}
    if not code or not restricted:
        return
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return  # the mode's own code checks report it
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in restricted:
            raise InvalidInput(_why(restricted[node.value], mode, f"code line {node.lineno}"), "code")


def _why(col: Column, mode: str, where: str) -> Text:
    if col.access == "hidden":
        return Text("{field}: column '{name}' is hidden by the data owner's classification; no job may use it",
                    field=where, name=col.name)
    return Text("{field}: column '{name}' may be used only in {modes} jobs, not in {mode} jobs (the data "
                "owner's classification)", field=where, name=col.name, modes=", ".join(col.modes), mode=mode)


def _column_refs(value, where: str):
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if key in COLUMN_KEYS:
                names = item if isinstance(item, list) else [item]
                for name in names:
                    if isinstance(name, str):
                        yield here, name
            else:
                yield from _column_refs(item, here)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _column_refs(item, f"{where}[{i}]")

"""SQL query jobs: compile an analyst's aggregate SQL into the query list of query mode.

A SQL job is {"mode": "query", "dataset", "purpose", "sql": "<statements>" or [...],
"epsilon": e or [e per statement]}. Each statement is parsed with sqlglot (a real SQL
parser, never regular expressions over the query) and turned into the same query dicts
as the JSON form, which sandbox.core.specs.query then validates as usual: so both forms
share one plan (sandbox.core.dp), one cost preview, one runner and one gate, and the job
stored and sent to the box is the compiled list, not the SQL text.

The subset, one dataset and no joins or subqueries:
  SELECT [WITH DIFFERENTIAL_PRIVACY OPTIONS(epsilon => e)] <group columns>, <aggregates>
  FROM <dataset> [WHERE <filters>] [GROUP BY <categorical columns>]
Aggregates: COUNT(*), SUM(c), AVG(c), MEDIAN(c), PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY c)
(or PERCENTILE_CONT(c, q)), and a histogram as WIDTH_BUCKET(c, lo, hi, n) or
WIDTH_BUCKET(c, ARRAY[edges]) selected and grouped next to COUNT(*). Each aggregate is
one released table; a statement's epsilon is split evenly between its aggregates (rounded
down, so the parts never add up to more). WHERE becomes each aggregate's row filters
(comparisons, IN, NOT IN, BETWEEN against literals, joined by AND), which the runner applies
before contribution bounding. Every refusal is an InvalidInput naming the statement and the
part to change. This module parses and refuses; sandbox.core.specs.sql_compile turns WHERE and
the aggregates into query dicts.
"""
from __future__ import annotations

import re

from sandbox.core.errors import InvalidInput, Text
from sandbox.core.manifest import Manifest
from sandbox.core.specs.common import parse_epsilon, refuse_unknown, show
# The compiling half (split_epsilon is still importable from here, as before the split).
from sandbox.core.specs.sql_compile import _aggregate, _name, _where, _width_bucket, split_epsilon

MAX_STATEMENTS = 10
MAX_STATEMENT_CHARS = 4000
SQL_KEYS = ("mode", "dataset", "purpose", "sql", "epsilon")
# BigQuery's form: SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS(epsilon => 1.0, ...) ...
# sqlglot does not parse the clause, so it is lifted off the statement's head first; the
# rest of the statement is still parsed as SQL.
_DP_OPTIONS = re.compile(r"^\s*SELECT\s+WITH\s+DIFFERENTIAL_PRIVACY\s+OPTIONS\s*\(([^()]*)\)", re.I)
_OPTION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:=>|=)\s*(.*?)\s*$", re.S)


def is_sql_spec(data: object) -> bool:
    return isinstance(data, dict) and "sql" in data and "queries" not in data


def compile_sql_spec(data: dict, manifest: Manifest) -> dict:
    """The query-mode spec (mode, dataset, purpose, queries) of a SQL job."""
    refuse_unknown(data, SQL_KEYS, "", Text("a SQL job"))
    statements = split_statements(data.get("sql"))
    epsilons = _statement_epsilons(data.get("epsilon"), len(statements))
    queries: list[dict] = []
    for i, text in enumerate(statements):
        where = f"sql[{i}]"
        body, options = _lift_options(text, where)
        eps = _merge_epsilon(epsilons[i], options.get("epsilon"), where, manifest)
        _check_options(options, where, manifest)
        compiled = compile_statement(body, eps, where, manifest, taken={q["name"] for q in queries})
        for q in compiled:
            # Checked here too, so a refusal names the statement (sql[i]...) rather than queries[j].
            check_query(q, where, manifest)
        queries += compiled
    return {"mode": data.get("mode", "query"), "dataset": data.get("dataset"), "purpose": data.get("purpose"),
            "queries": queries}


def check_query(q: dict, where: str, manifest: Manifest) -> None:
    from sandbox.core.specs.query import _parse_query  # query.py imports this module lazily too

    _parse_query(q, where, manifest)


def split_statements(sql: object) -> list[str]:
    """One string (statements separated by ';') or a list of strings, one statement each."""
    if isinstance(sql, str):
        parts = [p for p in _split_semicolons(sql) if p.strip()]
    elif isinstance(sql, list) and all(isinstance(s, str) for s in sql):
        parts = [s for s in sql if s.strip()]
        if len(parts) != len(sql):
            raise InvalidInput(Text("sql: a statement is empty; remove it"), "sql")
    else:
        raise InvalidInput(Text("sql: give a SELECT statement, or a list of them"), "sql")
    if not 1 <= len(parts) <= MAX_STATEMENTS:
        raise InvalidInput(Text("sql: give between 1 and {max} statements (got {n})", max=MAX_STATEMENTS,
                                n=len(parts)), "sql")
    for i, p in enumerate(parts):
        if len(p) > MAX_STATEMENT_CHARS:
            raise InvalidInput(Text("{field}: at most {max} characters per statement (got {n})", field=f"sql[{i}]",
                                    max=MAX_STATEMENT_CHARS, n=len(p)), f"sql[{i}]")
    return parts


def _split_semicolons(text: str) -> list[str]:
    """Split on ';' outside quotes (a ';' in a string literal is not a separator)."""
    out, cur, quote = [], [], None
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
            cur.append(ch)
        elif ch == ";":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _statement_epsilons(value: object, n: int) -> list[float | None]:
    if value is None:
        return [None] * n
    if isinstance(value, list):
        if len(value) != n:
            raise InvalidInput(Text("epsilon: give one epsilon per statement ({n} statements, {m} epsilons)", n=n,
                                    m=len(value)), "epsilon")
        return [parse_epsilon(v, f"epsilon[{i}]") for i, v in enumerate(value)]
    if n != 1:
        raise InvalidInput(Text("epsilon: with {n} statements give a list of {n} epsilons, one per statement", n=n),
                           "epsilon")
    return [parse_epsilon(value, "epsilon")]


def _lift_options(text: str, where: str) -> tuple[str, dict]:
    m = _DP_OPTIONS.match(text)
    if not m:
        return text, {}
    options = {}
    for item in m.group(1).split(","):
        if not item.strip():
            continue
        om = _OPTION.match(item)
        if not om:
            raise InvalidInput(Text("{field}: OPTIONS: write each option as name => value (got {value})",
                                    field=where, value=show(item.strip())), where)
        options[om.group(1).lower()] = om.group(2)
    return "SELECT " + text[m.end():], options


def _merge_epsilon(given: float | None, option: str | None, where: str, manifest: Manifest) -> float:
    from_option = None
    if option is not None:
        try:
            from_option = float(option)
        except ValueError:
            raise InvalidInput(Text("{field}: OPTIONS epsilon must be a number (got {value})", field=where,
                                    value=show(option)), where) from None
        from_option = parse_epsilon(from_option, f"{where}.epsilon")
    if given is None and from_option is None:
        raise InvalidInput(Text("{field}: no epsilon; give \"epsilon\" in the job (one per statement) or "
                                "OPTIONS(epsilon => ...) in the statement", field=where), where)
    if given is not None and from_option is not None and given != from_option:
        raise InvalidInput(Text("{field}: the job gives epsilon {given} but the statement's OPTIONS give {option}; "
                                "keep one", field=where, given=f"{given:g}", option=f"{from_option:g}"), where)
    return given if given is not None else from_option


def _check_options(options: dict, where: str, manifest: Manifest) -> None:
    for key, value in options.items():
        if key == "epsilon":
            continue
        if key == "privacy_unit_column":
            if value.strip("`\"' ") != manifest.privacy_unit:
                raise InvalidInput(Text("{field}: OPTIONS privacy_unit_column: the privacy unit of {dataset} is "
                                        "'{unit}', fixed by its owner", field=where, dataset=manifest.name,
                                        unit=manifest.privacy_unit), where)
            continue
        if key == "delta":
            try:
                zero = float(value) == 0
            except ValueError:
                zero = False
            if zero:
                continue
        raise InvalidInput(Text("{field}: OPTIONS {key} is not supported; query mode takes epsilon (and "
                                "privacy_unit_column, delta = 0); contribution bounds come from the dataset's "
                                "manifest", field=where, key=show(key)), where)


# ------------------------------------------------------------------ one statement

def compile_statement(text: str, epsilon: float, where: str, manifest: Manifest, *,
                      taken: set[str] = frozenset()) -> list[dict]:
    """The query dicts of one SELECT statement (one per aggregate)."""
    from sqlglot import exp

    tree = _parse(text, where)
    if not isinstance(tree, exp.Select):
        raise InvalidInput(Text("{field}: only SELECT statements are supported; write SELECT <aggregates> FROM "
                                "{dataset} [GROUP BY <categorical columns>]", field=where, dataset=manifest.name),
                           where)
    _refuse_clauses(tree, where, manifest)
    _check_from(tree, where, manifest)
    group_cols, bucket_key = _group_by(tree, where, manifest)
    filters = _where(tree.args.get("where"), where, manifest)

    histogram = None  # (column, edges) from a WIDTH_BUCKET in the select list
    aggregates = []   # (name or None, expression)
    selected_groups = []
    for item in tree.expressions:
        alias = item.alias if isinstance(item, exp.Alias) else None
        node = item.this if isinstance(item, exp.Alias) else item
        if isinstance(node, exp.Star):
            raise InvalidInput(Text("{field}: SELECT * would release rows; select aggregates such as COUNT(*), "
                                    "AVG(column) and the GROUP BY columns", field=where), where)
        if isinstance(node, exp.Column):
            name = node.name
            if name not in group_cols:
                raise InvalidInput(Text("{field}: column {column} is neither aggregated nor in GROUP BY; select "
                                        "only GROUP BY columns and aggregates", field=where, column=show(name)),
                                   where)
            selected_groups.append(name)
            continue
        if isinstance(node, exp.WidthBucket):
            if bucket_key is None or bucket_key not in (alias, node.sql()):
                raise InvalidInput(Text("{field}: WIDTH_BUCKET(...) must also be in GROUP BY (by its alias or "
                                        "position)", field=where), where)
            histogram = _width_bucket(node, where, manifest)
            continue
        aggregates.append((alias, node))
    if bucket_key is not None and histogram is None:
        raise InvalidInput(Text("{field}: GROUP BY {key}: group only by categorical columns, or select that "
                                "WIDTH_BUCKET(...) for a histogram", field=where, key=show(bucket_key)), where)
    if not aggregates:
        raise InvalidInput(Text("{field}: select at least one aggregate: COUNT(*), SUM(column), AVG(column), "
                                "MEDIAN(column) or PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY column)", field=where),
                           where)

    compiled = []
    for alias, node in aggregates:
        q = _aggregate(node, where, manifest)
        if histogram is not None:
            if q["statistic"] != "count":
                raise InvalidInput(Text("{field}: next to WIDTH_BUCKET(...) select only COUNT(*) (a histogram); "
                                        "put other aggregates in another statement", field=where), where)
            q = {"statistic": "histogram", "column": histogram[0], "bins": histogram[1]}
        q["group_by"] = list(group_cols)
        if filters:
            q["where"] = filters
        compiled.append((alias, q))

    share = split_epsilon(epsilon, len(compiled))
    out, names = [], set(taken)
    for alias, q in compiled:
        name = _name(alias, q, where, names)
        names.add(name)
        out.append({"name": name, **q, "epsilon": share})
    return out


def _parse(text: str, where: str):
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        trees = sqlglot.parse(text, read=None)
    except SqlglotError as e:
        detail = " ".join(str(e).replace("\x1b[4m", "").replace("\x1b[0m", "").split())[:200]
        raise InvalidInput(Text("{field}: not valid SQL: {detail}", field=where, detail=detail), where) from None
    except (RecursionError, ValueError, TypeError, IndexError, AttributeError, KeyError):
        # sqlglot is a third-party parser fed untrusted text: whatever it trips on is bad input.
        raise InvalidInput(Text("{field}: not valid SQL; write SELECT <aggregates> FROM <dataset> [GROUP BY ...]",
                                field=where), where) from None
    trees = [t for t in trees if t is not None]
    if len(trees) != 1:
        raise InvalidInput(Text("{field}: give exactly one statement here (got {n})", field=where, n=len(trees)),
                           where)
    return trees[0]


def _refuse_clauses(tree, where: str, manifest: Manifest) -> None:
    from sqlglot import exp

    clauses = (("joins", "JOIN", Text("query one dataset; joins are not supported")),
               ("having", "HAVING", Text("filtering released groups is not supported; every public group is "
                                         "released")),
               ("order", "ORDER BY", Text("every public group is released in a fixed order; remove ORDER BY")),
               ("limit", "LIMIT", Text("every public group is released; remove LIMIT")),
               ("offset", "OFFSET", Text("every public group is released; remove OFFSET")),
               ("with_", "WITH", Text("common table expressions are not supported; query the dataset directly")),
               ("qualify", "QUALIFY", Text("window filters are not supported")),
               ("distinct", "DISTINCT", Text("SELECT DISTINCT would list values from the data; GROUP BY a "
                                             "categorical column instead")))
    for arg, label, why in clauses:
        if tree.args.get(arg):
            raise InvalidInput(Text("{field}: {clause}: {why}", field=where, clause=label, why=why), where)
    for key, value in tree.args.items():
        if value and key not in ("expressions", "from_", "from", "group", "kind", "where"):
            raise InvalidInput(Text("{field}: the {clause} clause is not supported; write SELECT <aggregates> "
                                    "FROM {dataset} [GROUP BY <categorical columns>]", field=where,
                                    clause=key.upper().rstrip("_"), dataset=manifest.name), where)
    inner = [n for n in tree.find_all(exp.Select, exp.Subquery, exp.Union, exp.Window) if n is not tree]
    if inner:
        what = "OVER (...)" if isinstance(inner[0], exp.Window) else Text("a subquery")
        raise InvalidInput(Text("{field}: {what} is not supported; write one SELECT over {dataset}", field=where,
                                what=what, dataset=manifest.name), where)


def _check_from(tree, where: str, manifest: Manifest) -> None:
    from sqlglot import exp

    source = tree.args.get("from_") or tree.args.get("from")
    table = source.this if source is not None else None
    if not isinstance(table, exp.Table) or table.args.get("db") or table.args.get("catalog"):
        raise InvalidInput(Text("{field}: FROM: name the dataset, FROM {dataset}", field=where,
                                dataset=manifest.name), where)
    if table.name != manifest.name:
        raise InvalidInput(Text("{field}: FROM {table}: this job is on {dataset}; write FROM {dataset}",
                                field=where, table=show(table.name), dataset=manifest.name), where)


def _group_by(tree, where: str, manifest: Manifest) -> tuple[list[str], str | None]:
    """The categorical GROUP BY columns, and the key of a WIDTH_BUCKET grouping (its alias or
    SQL text) if there is one."""
    from sqlglot import exp

    group = tree.args.get("group")
    if group is None:
        return [], None
    if any(group.args.get(k) for k in ("rollup", "cube", "grouping_sets")):
        raise InvalidInput(Text("{field}: GROUP BY ROLLUP/CUBE/GROUPING SETS are not supported; list the columns",
                                field=where), where)
    cats = ", ".join(c.name for c in manifest.columns if c.kind == "categorical") or "(none)"
    cols, bucket = [], None
    for g in group.expressions:
        if isinstance(g, exp.Literal) and not g.is_string:
            g = _by_position(tree, g, where)
        if isinstance(g, exp.WidthBucket):
            bucket = g.sql()
            continue
        if not isinstance(g, exp.Column) or g.table:
            raise InvalidInput(Text("{field}: GROUP BY {expr}: group only by categorical columns of {dataset}: "
                                    "{columns}", field=where, expr=show(g.sql()[:80]), dataset=manifest.name,
                                    columns=cats), where)
        name = g.name
        aliased = [s for s in tree.expressions if isinstance(s, exp.Alias) and s.alias == name]
        if aliased and isinstance(aliased[0].this, exp.WidthBucket) and not manifest.has_column(name):
            bucket = name
            continue
        if not manifest.has_column(name):
            raise InvalidInput(Text("{field}: GROUP BY {column}: not a column of {dataset}; group only by "
                                    "categorical columns: {columns}", field=where, column=show(name),
                                    dataset=manifest.name, columns=cats), where)
        col = manifest.column(name)
        if col.kind != "categorical":
            from sandbox.core.specs.query import _kind_phrase
            kind = _kind_phrase(col)
            raise InvalidInput(Text("{field}: GROUP BY {column}: '{column}' is {kind}, so its values are not "
                                    "public; group only by categorical columns: {columns}", field=where,
                                    column=name, kind=kind, columns=cats), where)
        if name in cols:
            raise InvalidInput(Text("{field}: GROUP BY lists {column} twice; list it once", field=where,
                                    column=show(name)), where)
        cols.append(name)
    return cols, bucket


def _by_position(tree, literal, where: str):
    from sqlglot import exp

    try:
        pos = int(literal.this)
    except ValueError:
        pos = 0
    if not 1 <= pos <= len(tree.expressions):
        raise InvalidInput(Text("{field}: GROUP BY {pos}: no select item at that position", field=where,
                                pos=show(literal.this)), where)
    item = tree.expressions[pos - 1]
    return item.this if isinstance(item, exp.Alias) else item

"""SQL query jobs, part two: turn the parts of one parsed SELECT into query-mode dicts.

sandbox.core.specs.sql parses a statement with sqlglot and refuses what is outside the
subset (clauses, FROM, GROUP BY); this module compiles what is left: WHERE into row filters,
each aggregate (COUNT(*), SUM, AVG, MEDIAN, PERCENTILE_CONT, WIDTH_BUCKET histograms) into a
query dict, its released name, and the statement's epsilon split between its aggregates.
Every refusal is still an InvalidInput naming the statement and the part to change.
"""
from __future__ import annotations

import math
import re
from fractions import Fraction

from sandbox.core.errors import InvalidInput, Text
from sandbox.core.manifest import Manifest
from sandbox.core.specs.common import show

NUMERIC_TYPES = ("int64", "float64")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

_COMPARISONS = {"EQ": "=", "NEQ": "!=", "LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}
_FLIPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _where(node, where: str, manifest: Manifest) -> list[dict]:
    """WHERE as query-mode row filters: comparisons, IN, NOT IN and BETWEEN of one column
    against literals, joined by AND (query.py checks the columns and values)."""
    from sqlglot import exp

    if node is None:
        return []
    cond = node.this
    out: list[dict] = []
    stack = [cond]
    while stack:
        c = stack.pop()
        while isinstance(c, exp.Paren):
            c = c.this
        if isinstance(c, exp.And):
            stack += [c.expression, c.this]
            continue
        out.append(_condition(c, where, manifest))
    return out


def _condition(c, where: str, manifest: Manifest) -> dict:
    from sqlglot import exp

    def refuse():
        return InvalidInput(Text("{field}: WHERE {expr}: write conditions like column = 'value', column IN (...), "
                                 "column NOT IN (...), column >= number or column BETWEEN a AND b, joined by AND "
                                 "(no OR, functions or subqueries)", field=where, expr=show(c.sql()[:80])), where)

    negated = isinstance(c, exp.Not)
    inner = c.this if negated else c
    if isinstance(inner, exp.In) and isinstance(inner.this, exp.Column) and not inner.args.get("query") \
            and inner.expressions:
        return {"column": _filter_column(inner.this, where), "op": "not_in" if negated else "in",
                "value": [_literal(v, refuse) for v in inner.expressions]}
    if negated:
        raise refuse()
    if isinstance(c, exp.Between) and isinstance(c.this, exp.Column):
        return {"column": _filter_column(c.this, where), "op": "between",
                "value": [_literal(c.args.get("low"), refuse), _literal(c.args.get("high"), refuse)]}
    op = _COMPARISONS.get(type(c).__name__)
    if op is None:
        raise refuse()
    left, right = c.this, c.expression
    if isinstance(right, exp.Column) and not isinstance(left, exp.Column):
        left, right, op = right, left, _FLIPPED[op]
    if not isinstance(left, exp.Column):
        raise refuse()
    return {"column": _filter_column(left, where), "op": op, "value": _literal(right, refuse)}


def _filter_column(col, where: str) -> str:
    if col.table:
        raise InvalidInput(Text("{field}: WHERE {column}: name the column alone", field=where,
                                column=show(col.sql())), where)
    return col.name


def _literal(node, refuse):
    from sqlglot import exp

    if isinstance(node, exp.Literal) and node.is_string:
        return node.this
    v = _number(node)
    if v is None:
        raise refuse()
    return int(v) if v.is_integer() and abs(v) < 2 ** 53 else v


def _aggregate(node, where: str, manifest: Manifest) -> dict:
    from sqlglot import exp

    if isinstance(node, exp.Count):
        arg = node.this
        if isinstance(arg, exp.Star):
            return {"statistic": "count"}
        raise InvalidInput(Text("{field}: {expr}: only COUNT(*) is supported (it counts rows; a column's count "
                                "or distinct count is not)", field=where, expr=show(node.sql()[:80])), where)
    if isinstance(node, exp.Sum):
        return {"statistic": "sum", "column": _value_column(node.this, node, where, manifest)}
    if isinstance(node, exp.Avg):
        return {"statistic": "mean", "column": _value_column(node.this, node, where, manifest)}
    if isinstance(node, exp.Median):
        return {"statistic": "quantile", "column": _value_column(node.this, node, where, manifest), "q": 0.5}
    if isinstance(node, exp.WithinGroup) and isinstance(node.this, exp.PercentileCont):
        order = node.expression
        keys = order.expressions if isinstance(order, exp.Order) else []
        if len(keys) != 1 or keys[0].args.get("desc"):
            raise InvalidInput(Text("{field}: write PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY column)",
                                    field=where), where)
        return {"statistic": "quantile", "column": _value_column(keys[0].this, node, where, manifest),
                "q": _fraction(node.this.this, node, where)}
    if isinstance(node, exp.PercentileCont) and node.expression is not None:
        return {"statistic": "quantile", "column": _value_column(node.this, node, where, manifest),
                "q": _fraction(node.expression, node, where)}
    if isinstance(node, exp.Anonymous) and node.name.upper() in ("QUANTILE_CONT", "QUANTILE", "PERCENTILE") \
            and len(node.expressions) == 2:
        return {"statistic": "quantile", "column": _value_column(node.expressions[0], node, where, manifest),
                "q": _fraction(node.expressions[1], node, where)}
    fn = node.sql()[:80] if isinstance(node, exp.Expression) else show(node)
    if isinstance(node, exp.Func):
        raise InvalidInput(Text("{field}: {expr}: this function is not supported; use COUNT(*), SUM, AVG, MEDIAN, "
                                "PERCENTILE_CONT or WIDTH_BUCKET", field=where, expr=show(fn)), where)
    raise InvalidInput(Text("{field}: {expr}: select GROUP BY columns and aggregates only (COUNT(*), SUM, AVG, "
                            "MEDIAN, PERCENTILE_CONT)", field=where, expr=show(fn)), where)


def _value_column(arg, node, where: str, manifest: Manifest) -> str:
    from sqlglot import exp

    numeric = ", ".join(c.name for c in manifest.columns
                        if c.kind == "numeric" and c.type in NUMERIC_TYPES and c.bounds is not None) or "(none)"
    if not isinstance(arg, exp.Column) or arg.table:
        raise InvalidInput(Text("{field}: {expr}: aggregate a plain numeric column ({columns}); expressions "
                                "inside aggregates are not supported", field=where, expr=show(node.sql()[:80]),
                                columns=numeric), where)
    name = arg.name
    if not manifest.has_column(name):
        raise InvalidInput(Text("{field}: {expr}: {column} is not a column of {dataset}; numeric columns: "
                                "{columns}", field=where, expr=show(node.sql()[:80]), column=show(name),
                                dataset=manifest.name, columns=numeric), where)
    col = manifest.column(name)
    if col.kind == "identifier":
        raise InvalidInput(Text("{field}: {expr}: '{column}' is an identifier; aggregate a numeric column: "
                                "{columns}", field=where, expr=show(node.sql()[:80]), column=name,
                                columns=numeric), where)
    if col.kind != "numeric" or col.type not in NUMERIC_TYPES or col.bounds is None:
        raise InvalidInput(Text("{field}: {expr}: '{column}' is not a numeric column with public bounds; "
                                "numeric columns: {columns}", field=where, expr=show(node.sql()[:80]), column=name,
                                columns=numeric), where)
    return name


def _number(node) -> float | None:
    from sqlglot import exp

    sign = 1.0
    if isinstance(node, exp.Neg):
        sign, node = -1.0, node.this
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            v = sign * float(node.this)
        except ValueError:
            return None
        return v if math.isfinite(v) else None
    return None


def _fraction(node, agg, where: str) -> float:
    q = _number(node)
    if q is None or not 0 < q < 1:
        raise InvalidInput(Text("{field}: {expr}: the percentile must be a number strictly between 0 and 1",
                                field=where, expr=show(agg.sql()[:80])), where)
    return q


def _width_bucket(node, where: str, manifest: Manifest) -> tuple[str, list[float]]:
    """A histogram's column and bin edges: WIDTH_BUCKET(c, lo, hi, n) gives n equal bins."""
    from sqlglot import exp

    column = _value_column(node.this, node, where, manifest)
    lo_arg = node.args.get("min_value")
    if isinstance(lo_arg, exp.Array) and not node.args.get("max_value"):
        edges = [_number(e) for e in lo_arg.expressions]
    else:
        lo, hi, n = (_number(node.args.get(k)) for k in ("min_value", "max_value", "num_buckets"))
        if lo is None or hi is None or n is None or n != int(n) or not 1 <= n <= 100 or not lo < hi:
            raise InvalidInput(Text("{field}: WIDTH_BUCKET(column, low, high, n): give numbers with low < high and "
                                    "n from 1 to 100 (or WIDTH_BUCKET(column, ARRAY[edges]))", field=where), where)
        n = int(n)
        edges = [lo + (hi - lo) * i / n for i in range(n)] + [hi]
    if any(e is None for e in edges):
        raise InvalidInput(Text("{field}: WIDTH_BUCKET: the bin edges must be numbers", field=where), where)
    return column, [int(e) if float(e).is_integer() else e for e in edges]


def _name(alias: str | None, q: dict, where: str, taken: set[str]) -> str:
    if alias is not None:
        if not _NAME.match(alias):
            raise InvalidInput(Text("{field}: AS {alias}: use letters, digits and _ (start with a letter or _), at "
                                    "most 64 characters", field=where, alias=show(alias)), where)
        if alias in taken:
            raise InvalidInput(Text("{field}: AS {alias}: the name is used by an earlier aggregate; names must be "
                                    "unique", field=where, alias=alias), where)
        return alias
    stat = {"quantile": "median" if q.get("q") == 0.5 else "quantile"}.get(q["statistic"], q["statistic"])
    parts = [stat] + ([q["column"]] if q.get("column") else [])
    if q.get("q") not in (None, 0.5):
        parts.append(f"p{round(q['q'] * 10000)}")
    if q["group_by"]:
        parts += ["by"] + q["group_by"]
    base = "_".join(parts)
    base = base if _NAME.match(base) else stat
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def split_epsilon(epsilon: float, n: int) -> float:
    """epsilon / n, nudged down until n shares, read as the ledger reads them (shortest decimal
    form), add up to at most epsilon: a statement never costs more than it says."""
    share = epsilon / n
    target = Fraction(repr(float(epsilon)))
    while Fraction(repr(share)) * n > target:
        share = math.nextafter(share, 0.0)
    return share

"""Query-mode job specs: an analyst's declarative list of DP queries.

The spec is untrusted input. `parse_query_spec` checks it against the dataset's
public manifest and returns a normalized `QuerySpec`; every refusal is an
`InvalidInput` naming the field and saying what to fix. Nothing here looks at
data, so every message is safe to show the analyst. Reading the spec's text and the
header every mode shares: sandbox.core.specs.common.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sandbox.core.amounts import sum_rounded_up
from sandbox.core.errors import InvalidInput, Text
from sandbox.core.manifest import Column, Manifest
from sandbox.core.specs.common import (CanonicalSpec, MAX_SPEC_BYTES, check_header, check_name, parse_epsilon, parse_purpose,
    refuse_unknown, require_keys, show)

STATISTICS = ("count", "sum", "mean", "histogram", "quantile")
MAX_QUERIES = 20
MAX_GROUP_BY = 3
# Released cells per query (group cells x histogram bins): keeps result files
# small and noise per cell meaningful.
MAX_CELLS = 10_000
MIN_BIN_EDGES, MAX_BIN_EDGES = 2, 101
# q is kept on a 1/10000 grid so the quantile score uses an exact integer alpha.
Q_DENOMINATOR = 10_000

TOP_KEYS = ("mode", "dataset", "purpose", "queries")
QUERY_KEYS = ("name", "statistic", "column", "group_by", "epsilon", "bins", "q", "where")
# Row filters (all must hold): a row-level transformation applied before contribution
# bounding, so one person still moves at most max_rows_per_unit rows (sandbox.core.dp).
MAX_FILTERS = 5
CATEGORY_OPS = ("=", "!=", "in", "not_in")
NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=", "between")
MAX_IN_VALUES = 200
NUMERIC_TYPES = ("int64", "float64")


@dataclass(frozen=True)
class Query:
    name: str
    statistic: str
    epsilon: float
    column: str | None = None
    group_by: tuple[str, ...] = ()
    bins: tuple[float, ...] | None = None
    q: float | None = None
    # (column, op, values): values is a tuple (one item but for in/not_in/between).
    where: tuple[tuple[str, str, tuple], ...] = ()

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "statistic": self.statistic,
            "column": self.column,
            "group_by": list(self.group_by),
            "epsilon": self.epsilon,
        }
        if self.bins is not None:
            d["bins"] = list(self.bins)
        if self.q is not None:
            d["q"] = self.q
        if self.where:  # absent when empty: specs without filters keep their content hash
            d["where"] = [{"column": c, "op": op, "value": list(v) if op in ("in", "not_in", "between") else v[0]}
                          for c, op, v in self.where]
        return d


@dataclass(frozen=True)
class QuerySpec(CanonicalSpec):
    dataset: str
    purpose: str
    queries: tuple[Query, ...]

    @property
    def total_epsilon(self) -> float:
        """The job's charge: the sum of its queries' epsilons, rounded up (never below the
        exact sum as the ledger reads it; basic composition)."""
        return sum_rounded_up(q.epsilon for q in self.queries)

    def to_dict(self) -> dict:
        return {
            "mode": "query",
            "dataset": self.dataset,
            "purpose": self.purpose,
            "queries": [q.to_dict() for q in self.queries],
        }



# ------------------------------------------------------------------ validation

def parse_query_spec(data: object, manifest: Manifest, *, max_bytes: int = MAX_SPEC_BYTES) -> QuerySpec:
    """Validate an analyst's query spec against the manifest; return a QuerySpec.

    A SQL job ("sql" instead of "queries") is compiled to the query list first
    (sandbox.core.specs.sql), then validated like any other: one plan for both forms."""
    _check_size_first(data, max_bytes)
    if isinstance(data, dict) and "sql" in data:
        if "queries" in data:
            raise InvalidInput(Text("sql: give either sql (statements) or queries (a list), not both"), "sql")
        from sandbox.core.specs import sql  # imports sqlglot: only SQL jobs need it
        data = sql.compile_sql_spec(data, manifest)
    check_header(data, manifest, mode="query", allowed=TOP_KEYS, required=TOP_KEYS, who=Text("the spec"),
                 max_bytes=max_bytes)
    purpose = parse_purpose(data["purpose"], Text("these statistics"))

    raw_queries = data["queries"]
    if not isinstance(raw_queries, list):
        raise InvalidInput(Text("queries: must be a list of queries"), "queries")
    if not 1 <= len(raw_queries) <= MAX_QUERIES:
        raise InvalidInput(Text("queries: give between 1 and {max} queries (got {n})", max=MAX_QUERIES,
                                n=len(raw_queries)), "queries")
    queries = []
    names = set()
    for i, raw in enumerate(raw_queries):
        q = _parse_query(raw, f"queries[{i}]", manifest)
        if q.name in names:
            raise InvalidInput(Text("{field}: '{name}' is used by an earlier query; names must be unique",
                                    field=f"queries[{i}].name", name=q.name), f"queries[{i}].name")
        names.add(q.name)
        queries.append(q)
    return QuerySpec(dataset=manifest.name, purpose=purpose, queries=tuple(queries))


def _check_size_first(data: object, max_bytes: int) -> None:
    """The spec's size is checked before the SQL compiler reads it (check_header checks it again)."""
    from sandbox.core.specs.common import _check_size
    _check_size(data, max_bytes)


def _parse_query(raw: object, where: str, manifest: Manifest) -> Query:
    if not isinstance(raw, dict):
        raise InvalidInput(Text("{field}: each query must be a mapping with keys like name, statistic, epsilon",
                                field=where), where)
    refuse_unknown(raw, QUERY_KEYS, where, Text("a query"))
    require_keys(raw, ("name", "statistic", "epsilon"), where, Text("every query"))
    name = check_name(raw["name"], where)
    stat = raw["statistic"]
    if stat not in STATISTICS:
        raise InvalidInput(Text("{field}: {value} is not supported; use one of {allowed}",
                                field=f"{where}.statistic", value=show(stat), allowed=", ".join(STATISTICS)),
                           f"{where}.statistic")
    epsilon = parse_epsilon(raw["epsilon"], f"{where}.epsilon")

    column = None
    if stat == "count":
        if raw.get("column") is not None:
            raise InvalidInput(Text("{field}: count takes no column (it counts rows); remove 'column'",
                                    field=f"{where}.column"), f"{where}.column")
    else:
        column = _parse_value_column(raw.get("column"), stat, f"{where}.column", manifest)

    group_by = _parse_group_by(raw.get("group_by", []), f"{where}.group_by", manifest)

    bins = None
    if stat == "histogram":
        if "bins" not in raw:
            raise InvalidInput(Text("{field}: a histogram needs bins: a list of increasing bin edges",
                                    field=f"{where}.bins"), f"{where}.bins")
        bins = _parse_bins(raw["bins"], f"{where}.bins", manifest.column(column))
    elif "bins" in raw:
        raise InvalidInput(Text("{field}: only a histogram takes bins; remove 'bins'", field=f"{where}.bins"),
                           f"{where}.bins")

    q = None
    if stat == "quantile":
        if "q" not in raw:
            raise InvalidInput(Text("{field}: a quantile needs q, e.g. 0.5 for the median", field=f"{where}.q"),
                               f"{where}.q")
        q = _parse_q(raw["q"], f"{where}.q")
    elif "q" in raw:
        raise InvalidInput(Text("{field}: only a quantile takes q; remove 'q'", field=f"{where}.q"), f"{where}.q")

    where_ = _parse_where(raw.get("where", []), f"{where}.where", manifest)

    cells = 1
    for g in group_by:
        cells *= len(manifest.column(g).categories)
    if bins is not None:
        cells *= len(bins) - 1
    if cells > MAX_CELLS:
        raise InvalidInput(Text("{field}: this query releases {cells} cells; the limit is {limit}. "
                                "Group by fewer columns or use fewer bins", field=f"{where}.group_by", cells=cells,
                                limit=MAX_CELLS), f"{where}.group_by")
    return Query(name=name, statistic=stat, epsilon=epsilon, column=column, group_by=group_by, bins=bins, q=q,
                 where=where_)



def _numeric_columns(manifest: Manifest) -> list[Column]:
    return [c for c in manifest.columns
            if c.kind == "numeric" and c.type in NUMERIC_TYPES and c.bounds is not None]


def _parse_value_column(value: object, stat: str, where: str, manifest: Manifest) -> str:
    numeric = ", ".join(c.name for c in _numeric_columns(manifest)) or Text("(none in this dataset)")
    if value is None:
        raise InvalidInput(Text("{field}: {stat} needs a numeric column: {columns}", field=where, stat=stat,
                                columns=numeric), where)
    if not isinstance(value, str) or not manifest.has_column(value):
        raise InvalidInput(Text("{field}: {value} is not a column of {dataset}; {stat} needs a numeric column: "
                                "{columns}", field=where, value=show(value), dataset=manifest.name, stat=stat,
                                columns=numeric), where)
    col = manifest.column(value)
    if col not in _numeric_columns(manifest):
        raise InvalidInput(Text("{field}: '{column}' is {kind}; {stat} needs a numeric column: {columns}",
                                field=where, column=value, kind=_kind_phrase(col), stat=stat, columns=numeric),
                           where)
    return value


def _parse_group_by(value: object, where: str, manifest: Manifest) -> tuple[str, ...]:
    cats = (", ".join(c.name for c in manifest.columns if c.kind == "categorical")
            or Text("(none in this dataset)"))
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidInput(Text("{field}: must be a list of column names (up to {max}), chosen from: {columns}",
                                field=where, max=MAX_GROUP_BY, columns=cats), where)
    if len(value) > MAX_GROUP_BY:
        raise InvalidInput(Text("{field}: at most {max} columns (got {n})", field=where, max=MAX_GROUP_BY,
                                n=len(value)), where)
    out = []
    for name in value:
        if not isinstance(name, str) or not manifest.has_column(name):
            raise InvalidInput(Text("{field}: {value} is not a column of {dataset}; group only by categorical "
                                    "columns: {columns}", field=where, value=show(name), dataset=manifest.name,
                                    columns=cats), where)
        col = manifest.column(name)
        if col.kind != "categorical":
            raise InvalidInput(Text("{field}: '{column}' is {kind}; group only by categorical columns: {columns}",
                                    field=where, column=name, kind=_kind_phrase(col), columns=cats), where)
        if name in out:
            raise InvalidInput(Text("{field}: '{column}' is listed twice; list each column once", field=where,
                                    column=name), where)
        out.append(name)
    return tuple(out)


def _parse_where(value: object, where: str, manifest: Manifest) -> tuple:
    """Row filters: [{"column", "op", "value"}], all of which a row must pass. Categorical
    columns take =, !=, in, not_in over their public categories; numeric columns with public
    bounds take comparisons and between. Identifiers, dates and text cannot be filtered on."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_FILTERS:
        raise InvalidInput(Text("{field}: give a list of at most {max} filters like {{\"column\": \"sex\", "
                                "\"op\": \"=\", \"value\": \"F\"}}", field=where, max=MAX_FILTERS), where)
    out = []
    for i, f in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(f, dict):
            raise InvalidInput(Text("{field}: a filter is a mapping with column, op and value", field=at), at)
        refuse_unknown(f, ("column", "op", "value"), at, Text("a filter"))
        require_keys(f, ("column", "op", "value"), at, Text("every filter"))
        name, op, v = f["column"], f["op"], f["value"]
        usable = ", ".join(c.name for c in manifest.columns if c.kind == "categorical" or c in _numeric_columns(manifest))
        if not isinstance(name, str) or not manifest.has_column(name):
            raise InvalidInput(Text("{field}: {value} is not a column of {dataset}; filter on: {columns}",
                                    field=f"{at}.column", value=show(name), dataset=manifest.name, columns=usable),
                               f"{at}.column")
        col = manifest.column(name)
        if col.kind == "categorical":
            out.append((name, *_category_filter(op, v, at, col)))
        elif col in _numeric_columns(manifest):
            out.append((name, *_numeric_filter(op, v, at)))
        else:
            raise InvalidInput(Text("{field}: '{column}' is {kind}; filter on categorical or numeric columns: "
                                    "{columns}", field=f"{at}.column", column=name, kind=_kind_phrase(col),
                                    columns=usable), f"{at}.column")
    return tuple(out)


def _category_filter(op: object, v: object, at: str, col: Column) -> tuple[str, tuple]:
    if op not in CATEGORY_OPS:
        raise InvalidInput(Text("{field}: {op} does not apply to the categorical column '{column}'; use one of "
                                "{allowed}", field=f"{at}.op", op=show(op), column=col.name,
                                allowed=", ".join(CATEGORY_OPS)), f"{at}.op")
    many = op in ("in", "not_in")
    values = v if many else [v]
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_IN_VALUES:
        raise InvalidInput(Text("{field}: {op} takes {what}", field=f"{at}.value", op=op,
                                what=Text("a list of categories") if many else Text("one category")), f"{at}.value")
    public = {str(c): c for c in col.categories}
    for x in values:
        if isinstance(x, bool) or not isinstance(x, (str, int, float)) or str(x) not in public:
            raise InvalidInput(Text("{field}: {value} is not a category of '{column}': {allowed}", field=f"{at}.value",
                                    value=show(x), column=col.name,
                                    allowed=", ".join(str(c) for c in col.categories)), f"{at}.value")
    return op, tuple(public[str(x)] for x in values)


def _numeric_filter(op: object, v: object, at: str) -> tuple[str, tuple]:
    if op not in NUMERIC_OPS:
        raise InvalidInput(Text("{field}: {op} does not apply to a numeric column; use one of {allowed}",
                                field=f"{at}.op", op=show(op), allowed=", ".join(NUMERIC_OPS)), f"{at}.op")
    values = v if op == "between" else [v]
    if not isinstance(values, list) or len(values) != (2 if op == "between" else 1):
        raise InvalidInput(Text("{field}: between takes [low, high]", field=f"{at}.value"), f"{at}.value")
    nums = []
    for x in values:
        ok = not isinstance(x, bool) and isinstance(x, (int, float))
        try:
            ok = ok and math.isfinite(float(x))
        except OverflowError:
            ok = False
        if not ok:
            raise InvalidInput(Text("{field}: must be a finite number (got {value})", field=f"{at}.value",
                                    value=show(x)), f"{at}.value")
        nums.append(float(x))
    if op == "between" and nums[0] > nums[1]:
        raise InvalidInput(Text("{field}: between takes [low, high] with low <= high", field=f"{at}.value"),
                           f"{at}.value")
    return op, tuple(nums)


def _parse_bins(value: object, where: str, column: Column) -> tuple[float, ...]:
    lo, hi = column.bounds
    if not isinstance(value, list) or not MIN_BIN_EDGES <= len(value) <= MAX_BIN_EDGES:
        raise InvalidInput(Text("{field}: give a list of {min} to {max} increasing bin edges within [{lo}, {hi}]",
                                field=where, min=MIN_BIN_EDGES, max=MAX_BIN_EDGES, lo=f"{lo:g}", hi=f"{hi:g}"),
                           where)
    edges = []
    for j, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InvalidInput(Text("{field}: bin edges must be numbers (got {value})", field=f"{where}[{j}]",
                                    value=show(v)), where)
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if not math.isfinite(f) or f < lo or f > hi:
            raise InvalidInput(Text("{field}: bin edge {value} is outside the public bounds of '{column}' "
                                    "[{lo}, {hi}]", field=f"{where}[{j}]", value=show(v), column=column.name,
                                    lo=f"{lo:g}", hi=f"{hi:g}"), where)
        if edges and f <= edges[-1]:
            raise InvalidInput(Text("{field}: bin edges must be strictly increasing ({value} follows {previous})",
                                    field=f"{where}[{j}]", value=show(v), previous=f"{edges[-1]:g}"), where)
        edges.append(f)
    return tuple(edges)


def _parse_q(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < 1):
        raise InvalidInput(Text("{field}: must be a number strictly between 0 and 1, e.g. 0.5 for the median "
                                "(got {value})", field=where, value=show(value)), where)
    num = round(value * Q_DENOMINATOR)
    if not 1 <= num <= Q_DENOMINATOR - 1 or abs(num / Q_DENOMINATOR - value) > 1e-12:
        raise InvalidInput(Text("{field}: use at most 4 decimal places, between 0.0001 and 0.9999 (got {value})",
                                field=where, value=show(value)), where)
    return num / Q_DENOMINATOR


def _kind_phrase(col: Column) -> str:
    if col.kind == "identifier":
        return Text("an identifier")
    if col.kind == "numeric" and col.type not in NUMERIC_TYPES:
        return Text("of type {type}", type=col.type)
    return {"categorical": Text("categorical"), "numeric": Text("numeric"), "date": Text("a date"),
            "text": Text("free text")}.get(col.kind, col.kind)



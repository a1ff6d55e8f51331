"""Query-mode job specs: an analyst's declarative list of DP queries.

The spec is untrusted input. `parse_query_spec` checks it against the dataset's
public manifest and returns a normalized `QuerySpec`; every refusal is an
`InvalidInput` naming the field and saying what to fix. Nothing here looks at
data, so every message is safe to show the analyst.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass

from sandbox.core.errors import InvalidInput, Text
from sandbox.core.manifest import Column, Manifest

STATISTICS = ("count", "sum", "mean", "histogram", "quantile")
MAX_SPEC_BYTES = 64 * 1024
MAX_QUERIES = 20
MAX_GROUP_BY = 3
# Released cells per query (group cells x histogram bins): keeps result files
# small and noise per cell meaningful.
MAX_CELLS = 10_000
MAX_EPSILON = 10.0
MIN_BIN_EDGES, MAX_BIN_EDGES = 2, 101
MAX_PURPOSE_CHARS = 200
# q is kept on a 1/10000 grid so the quantile score uses an exact integer alpha.
Q_DENOMINATOR = 10_000
MAX_DEPTH = 8

TOP_KEYS = ("mode", "dataset", "purpose", "queries")
QUERY_KEYS = ("name", "statistic", "column", "group_by", "epsilon", "bins", "q")
NUMERIC_TYPES = ("int64", "float64")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Query:
    name: str
    statistic: str
    epsilon: float
    column: str | None = None
    group_by: tuple[str, ...] = ()
    bins: tuple[float, ...] | None = None
    q: float | None = None

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
        return d


@dataclass(frozen=True)
class QuerySpec:
    dataset: str
    purpose: str
    queries: tuple[Query, ...]

    @property
    def total_epsilon(self) -> float:
        return math.fsum(q.epsilon for q in self.queries)

    def to_dict(self) -> dict:
        return {
            "mode": "query",
            "dataset": self.dataset,
            "purpose": self.purpose,
            "queries": [q.to_dict() for q in self.queries],
        }

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- text input

def load_spec_text(text: str | bytes, *, max_bytes: int = MAX_SPEC_BYTES) -> object:
    """Parse a spec from JSON or YAML text. The size is checked before parsing,
    YAML anchors/aliases and duplicate keys are refused (aliases can expand a small
    file into a huge structure; duplicates silently drop one value)."""
    if isinstance(text, str):
        raw = text.encode("utf-8")
    elif isinstance(text, (bytes, bytearray)):
        raw = bytes(text)
    else:
        raise InvalidInput(Text("spec must be JSON or YAML text"))
    if len(raw) > max_bytes:
        raise InvalidInput(Text("spec is {size} bytes; the limit is {limit} bytes", size=len(raw), limit=max_bytes),
                           "spec")
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(Text("spec must be UTF-8 text"), "spec") from None
    if not body.strip():
        raise InvalidInput(Text("spec is empty"), "spec")
    if body.lstrip().startswith(("{", "[")):
        try:
            return json.loads(body, object_pairs_hook=_no_duplicate_pairs)
        except InvalidInput:
            raise
        except (ValueError, RecursionError) as e:
            raise InvalidInput(Text("spec is not valid JSON: {detail}", detail=_short(e)), "spec") from None
    return _load_yaml(body)


def _no_duplicate_pairs(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise InvalidInput(Text("spec: key '{key}' appears twice; keep one", key=k), "spec")
        out[k] = v
    return out


def _load_yaml(body: str) -> object:
    # PyYAML is a pure data parser; imported here so the module's import stays stdlib-only.
    import yaml

    class _StrictLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.events.AliasEvent):
                raise InvalidInput(Text("spec: YAML anchors and aliases (&, *) are not allowed"), "spec")
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = key_node.value
                if key in seen:
                    raise InvalidInput(Text("spec: key '{key}' appears twice; keep one", key=key), "spec")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    try:
        return yaml.load(body, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except InvalidInput:
        raise
    except (yaml.YAMLError, RecursionError) as e:
        raise InvalidInput(Text("spec is neither valid JSON nor valid YAML: {detail}", detail=_short(e)),
                           "spec") from None


def _short(e: Exception) -> str:
    return " ".join(str(e).split())[:200]


# ------------------------------------------------------------------ validation

def parse_query_spec(data: object, manifest: Manifest, *, max_bytes: int = MAX_SPEC_BYTES) -> QuerySpec:
    """Validate an analyst's query spec against the manifest; return a QuerySpec."""
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


def _parse_query(raw: object, where: str, manifest: Manifest) -> Query:
    if not isinstance(raw, dict):
        raise InvalidInput(Text("{field}: each query must be a mapping with keys like name, statistic, epsilon",
                                field=where), where)
    _refuse_unknown(raw, QUERY_KEYS, where, Text("a query"))
    _require_keys(raw, ("name", "statistic", "epsilon"), where, Text("every query"))
    name = _check_name(raw["name"], where)
    stat = raw["statistic"]
    if stat not in STATISTICS:
        raise InvalidInput(Text("{field}: {value} is not supported; use one of {allowed}",
                                field=f"{where}.statistic", value=_show(stat), allowed=", ".join(STATISTICS)),
                           f"{where}.statistic")
    epsilon = _parse_epsilon(raw["epsilon"], f"{where}.epsilon")

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

    cells = 1
    for g in group_by:
        cells *= len(manifest.column(g).categories)
    if bins is not None:
        cells *= len(bins) - 1
    if cells > MAX_CELLS:
        raise InvalidInput(Text("{field}: this query releases {cells} cells; the limit is {limit}. "
                                "Group by fewer columns or use fewer bins", field=f"{where}.group_by", cells=cells,
                                limit=MAX_CELLS), f"{where}.group_by")
    return Query(name=name, statistic=stat, epsilon=epsilon, column=column, group_by=group_by, bins=bins, q=q)


def check_header(data: object, manifest: Manifest, *, mode: str, allowed: tuple, required: tuple, who: str,
                 max_bytes: int) -> None:
    """What every job spec shares: a mapping of known keys, the required ones present, its
    mode, and this dataset. `who` names the spec in messages (a Text, e.g. Text("the spec"))."""
    _check_size(data, max_bytes)
    if not isinstance(data, dict):
        raise InvalidInput(Text("spec must be a mapping with keys: {keys}", keys=", ".join(required)), "spec")
    _refuse_unknown(data, allowed, "", who)
    for key in required:
        if key not in data:
            raise InvalidInput(Text("{field}: missing; {who} needs {keys}", field=key, who=who,
                                    keys=", ".join(required)), key)
    if data["mode"] != mode:
        raise InvalidInput(Text("mode: must be \"{mode}\" for a {mode} job (got {value})", mode=mode,
                                value=_show(data["mode"])), "mode")
    if data["dataset"] != manifest.name:
        raise InvalidInput(Text("dataset: {value} is not this dataset; use \"{name}\"", value=_show(data["dataset"]),
                                name=manifest.name), "dataset")


def parse_purpose(purpose: object, what: str | None = None) -> str:
    """The licensed purpose a job states (every mode): one line, stripped. `what` says
    what the job asks for (default: "this analysis")."""
    if what is None:
        what = Text("this analysis")
    if not isinstance(purpose, str) or not purpose.strip():
        raise InvalidInput(Text("purpose: give a non-empty text saying why you need {what}", what=what), "purpose")
    purpose = purpose.strip()
    if len(purpose) > MAX_PURPOSE_CHARS:
        raise InvalidInput(Text("purpose: at most {max} characters (got {n})", max=MAX_PURPOSE_CHARS,
                                n=len(purpose)), "purpose")
    if any(ord(ch) < 32 for ch in purpose):
        raise InvalidInput(Text("purpose: remove control characters (newlines, tabs)"), "purpose")
    return purpose


def _require_keys(raw: dict, keys: tuple, where: str, who: str) -> None:
    """Refuse a mapping missing one of `keys`, naming all of them ("every query needs ...")."""
    listed = Text("{first} and {last}", first=", ".join(keys[:-1]), last=keys[-1])
    for key in keys:
        if key not in raw:
            raise InvalidInput(Text("{field}: missing; {who} needs {keys}", field=f"{where}.{key}", who=who,
                                    keys=listed), f"{where}.{key}")


def _check_name(name: object, where: str) -> str:
    """An output or query name: an identifier of at most 64 characters."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInput(Text("{field}: use letters, digits and _ (start with a letter or _), "
                                "at most 64 characters (got {value})", field=f"{where}.name", value=_show(name)),
                           f"{where}.name")
    return name


def _parse_epsilon(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(Text("{field}: must be a number greater than 0 and at most {max} (got {value})",
                                field=where, max=f"{MAX_EPSILON:g}", value=_show(value)), where)
    try:
        eps = float(value)
    except OverflowError:  # a huge int
        eps = math.inf
    if not math.isfinite(eps) or eps <= 0 or eps > MAX_EPSILON:
        raise InvalidInput(Text("{field}: must be a finite number greater than 0 and at most {max} (got {value})",
                                field=where, max=f"{MAX_EPSILON:g}", value=_show(value)), where)
    return eps


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
                                "{columns}", field=where, value=_show(value), dataset=manifest.name, stat=stat,
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
                                    "columns: {columns}", field=where, value=_show(name), dataset=manifest.name,
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
                                    value=_show(v)), where)
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if not math.isfinite(f) or f < lo or f > hi:
            raise InvalidInput(Text("{field}: bin edge {value} is outside the public bounds of '{column}' "
                                    "[{lo}, {hi}]", field=f"{where}[{j}]", value=_show(v), column=column.name,
                                    lo=f"{lo:g}", hi=f"{hi:g}"), where)
        if edges and f <= edges[-1]:
            raise InvalidInput(Text("{field}: bin edges must be strictly increasing ({value} follows {previous})",
                                    field=f"{where}[{j}]", value=_show(v), previous=f"{edges[-1]:g}"), where)
        edges.append(f)
    return tuple(edges)


def _parse_q(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < 1):
        raise InvalidInput(Text("{field}: must be a number strictly between 0 and 1, e.g. 0.5 for the median "
                                "(got {value})", field=where, value=_show(value)), where)
    num = round(value * Q_DENOMINATOR)
    if not 1 <= num <= Q_DENOMINATOR - 1 or abs(num / Q_DENOMINATOR - value) > 1e-12:
        raise InvalidInput(Text("{field}: use at most 4 decimal places, between 0.0001 and 0.9999 (got {value})",
                                field=where, value=_show(value)), where)
    return num / Q_DENOMINATOR


def _kind_phrase(col: Column) -> str:
    if col.kind == "identifier":
        return Text("an identifier")
    if col.kind == "numeric" and col.type not in NUMERIC_TYPES:
        return Text("of type {type}", type=col.type)
    return {"categorical": Text("categorical"), "numeric": Text("numeric"), "date": Text("a date"),
            "text": Text("free text")}.get(col.kind, col.kind)


def _refuse_unknown(mapping: dict, allowed: tuple, where: str, what: str) -> None:
    for key in mapping:
        if key not in allowed:
            field = f"{where}.{key}" if where and isinstance(key, str) else (where or str(key))
            raise InvalidInput(Text("{field}: unknown key {key}; allowed keys for {what}: {keys}", field=field,
                                    key=_show(key), what=what, keys=", ".join(allowed)), field)


def _show(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10 ** 30:
        return Text("a very large integer")  # repr of a huge int is slow, and refused past 4300 digits
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 60 else text[:57] + "..."


def _check_size(data: object, max_bytes: int) -> None:
    """Refuse a spec whose JSON form would exceed max_bytes, walking it with a budget
    (never serializing it whole: shared references could make that enormous)."""
    budget = max_bytes
    stack = [(data, 0)]
    while stack:
        obj, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidInput(Text("spec is nested more than {max} levels deep", max=MAX_DEPTH), "spec")
        if isinstance(obj, dict):
            budget -= 2 + 2 * len(obj)
            for k, v in obj.items():
                budget -= len(str(k)) + 2
                stack.append((v, depth + 1))
        elif isinstance(obj, (list, tuple)):
            budget -= 2 + len(obj)
            stack.extend((v, depth + 1) for v in obj)
        elif isinstance(obj, str):
            budget -= len(obj.encode("utf-8", "replace")) + 2
        elif isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) > 10 ** 30:
            budget -= 32  # don't format giant ints just to measure them
        else:
            budget -= len(repr(obj))
        if budget < 0:
            raise InvalidInput(Text("spec is larger than the limit of {limit} bytes", limit=max_bytes), "spec")

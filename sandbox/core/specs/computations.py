"""Reviewed mode's trusted computations: the `tables` (group-by, aggregates, public filters)
and `models` (OLS/logit/probit) that trusted code runs on the raw data in a box holding no
operator code (sandbox.runner.tables), with the per-cell statistics the disclosure rules need.

Parsed here for the submission and again inside that box, before it reads the data; the rest
of a reviewed spec (the operator's program and its declared files) is in specs/reviewed.py."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sandbox.core.errors import InvalidInput, Text
from sandbox.core.manifest import Column, Manifest
from sandbox.core.specs.common import check_name, show

STATISTICS = ("count", "sum", "mean", "median", "std")   # min/max would print one unit's value
FAMILIES = ("ols", "logit", "probit")
MITIGATIONS = ("none", "suppress", "round")               # ACRO's mitigation options
DEFAULT_ROUND_BASE = 5                                    # ACRO safe_round_base
MAX_TABLES = MAX_MODELS = 16
MAX_GROUP_BY = 4
MAX_AGGREGATES = 8
MAX_WHERE = 8
MAX_REGRESSORS = 20
MAX_CELLS = 10_000
TABLE_KEYS = ("name", "group_by", "aggregates", "where", "mitigation", "round_base")
MODEL_KEYS = ("name", "family", "dependent", "regressors", "where")
NUMERIC_TYPES = ("int64", "float64")
ORDER_OPS = ("<", "<=", ">", ">=")
CATEGORY_OPS = ("==", "!=", "in", "not_in")


@dataclass(frozen=True)
class Predicate:
    """A filter on a public column: categorical (==, !=, in, not_in against its categories),
    numeric (comparisons with a number) or date (comparisons with an ISO date)."""
    column: str
    op: str
    value: object

    def to_dict(self) -> dict:
        return {"column": self.column, "op": self.op, "value": list(self.value) if isinstance(self.value, tuple)
                else self.value}


@dataclass(frozen=True)
class Aggregate:
    statistic: str
    column: str | None = None

    @property
    def label(self) -> str:
        return self.statistic if self.column is None else f"{self.statistic}_{self.column}"

    def to_dict(self) -> dict:
        return {"statistic": self.statistic} if self.column is None else {"statistic": self.statistic,
                                                                          "column": self.column}


@dataclass(frozen=True)
class TableSpec:
    """A table trusted code computes: one row per combination of the group-by columns' public
    categories (so the key set never depends on the data), one column per aggregate."""
    name: str
    group_by: tuple[str, ...]
    aggregates: tuple[Aggregate, ...]
    where: tuple[Predicate, ...] = ()
    mitigation: str = "none"
    round_base: int = DEFAULT_ROUND_BASE

    @property
    def kind(self) -> str:
        return "frequency" if all(a.statistic == "count" for a in self.aggregates) else "magnitude"

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    def to_dict(self) -> dict:
        d = {"name": self.name, "group_by": list(self.group_by), "aggregates": [a.to_dict() for a in self.aggregates]}
        if self.where:
            d["where"] = [p.to_dict() for p in self.where]
        if self.mitigation != "none":
            d["mitigation"] = self.mitigation
        if self.mitigation == "round":
            d["round_base"] = self.round_base
        return d


@dataclass(frozen=True)
class ModelSpec:
    """A regression trusted code fits with statsmodels (categorical regressors as dummies,
    the first category the reference)."""
    name: str
    family: str
    dependent: str
    regressors: tuple[str, ...]
    where: tuple[Predicate, ...] = ()

    @property
    def file_name(self) -> str:
        return f"{self.name}.json"

    def to_dict(self) -> dict:
        d = {"name": self.name, "family": self.family, "dependent": self.dependent,
             "regressors": list(self.regressors)}
        if self.where:
            d["where"] = [p.to_dict() for p in self.where]
        return d


def parse_computations(data: dict, manifest: Manifest) -> tuple[tuple[TableSpec, ...], tuple[ModelSpec, ...]]:
    """The `tables` and `models` of a spec (either may be absent); the trusted box calls this
    again before it reads the data."""
    tables = _parse_list(data.get("tables"), "tables", MAX_TABLES,
                         lambda raw, where: _parse_table(raw, where, manifest))
    models = _parse_list(data.get("models"), "models", MAX_MODELS,
                         lambda raw, where: _parse_model(raw, where, manifest))
    return tables, models


def _parse_list(value: object, field: str, limit: int, parse) -> tuple:
    # An empty list is the same as leaving the key out: a job of tables only may well say
    # "models": [] (the spec still has to declare something, parse_reviewed_spec checks).
    if value is None or value == []:
        return ()
    if not isinstance(value, list) or len(value) > limit:
        raise InvalidInput(Text("{field}: a list of up to {max} entries", field=field, max=limit), field)
    out, names = [], set()
    for i, raw in enumerate(value):
        item = parse(raw, f"{field}[{i}]")
        if item.name in names:
            raise InvalidInput(Text("{field}: '{name}' is used by an earlier entry; names must be unique",
                                    field=f"{field}[{i}].name", name=item.name), f"{field}[{i}].name")
        names.add(item.name)
        out.append(item)
    return tuple(out)


def _mapping(raw: object, where: str, allowed: tuple, required: tuple) -> dict:
    if not isinstance(raw, dict):
        raise InvalidInput(Text("{field}: a mapping with keys {keys}", field=where, keys=", ".join(allowed)), where)
    extra = sorted(set(raw) - set(allowed))
    if extra:
        raise InvalidInput(Text("{field}: unknown key; allowed: {keys}", field=f"{where}.{extra[0]}",
                                keys=", ".join(allowed)), f"{where}.{extra[0]}")
    for key in required:
        if key not in raw:
            raise InvalidInput(Text("{field}: missing; needed: {keys}", field=f"{where}.{key}",
                                    keys=", ".join(required)), f"{where}.{key}")
    return raw


def _parse_table(raw: object, where: str, manifest: Manifest) -> TableSpec:
    raw = _mapping(raw, where, TABLE_KEYS, ("name", "aggregates"))
    name = check_name(raw["name"], where)
    group_by = _parse_group_by(raw.get("group_by", []), f"{where}.group_by", manifest)
    aggs = raw["aggregates"]
    if not isinstance(aggs, list) or not 1 <= len(aggs) <= MAX_AGGREGATES:
        raise InvalidInput(Text("{field}: a list of 1 to {max} aggregates, e.g. [{{\"statistic\": \"count\"}}]",
                                field=f"{where}.aggregates", max=MAX_AGGREGATES), f"{where}.aggregates")
    aggregates = []
    for j, a in enumerate(aggs):
        agg = _parse_aggregate(a, f"{where}.aggregates[{j}]", manifest)
        if agg in aggregates:
            raise InvalidInput(Text("{field}: listed twice", field=f"{where}.aggregates[{j}]"),
                               f"{where}.aggregates[{j}]")
        aggregates.append(agg)
    cells = 1
    for g in group_by:
        cells *= len(manifest.column(g).categories)
    if cells > MAX_CELLS:
        raise InvalidInput(Text("{field}: this table has {cells} cells; the limit is {limit}. Group by fewer "
                                "columns", field=f"{where}.group_by", cells=cells, limit=MAX_CELLS),
                           f"{where}.group_by")
    mitigation = raw.get("mitigation", "none")
    if mitigation not in MITIGATIONS:
        raise InvalidInput(Text("{field}: one of {allowed} (suppress: cells failing a rule are left empty; "
                                "round: values rounded to round_base)", field=f"{where}.mitigation",
                                allowed=", ".join(MITIGATIONS)), f"{where}.mitigation")
    base = raw.get("round_base", DEFAULT_ROUND_BASE)
    if isinstance(base, bool) or not isinstance(base, int) or not 1 <= base <= 1000 or (
            "round_base" in raw and mitigation != "round"):
        raise InvalidInput(Text("{field}: an integer from 1 to 1000, with mitigation round",
                                field=f"{where}.round_base"), f"{where}.round_base")
    return TableSpec(name, group_by, tuple(aggregates), _parse_where(raw.get("where", []), f"{where}.where", manifest),
                     mitigation, base)


def _parse_aggregate(raw: object, where: str, manifest: Manifest) -> Aggregate:
    raw = _mapping(raw, where, ("statistic", "column"), ("statistic",))
    stat = raw["statistic"]
    if stat not in STATISTICS:
        raise InvalidInput(Text("{field}: {value} is not supported; use one of {allowed}", field=f"{where}.statistic",
                                value=show(stat), allowed=", ".join(STATISTICS)), f"{where}.statistic")
    if stat == "count":
        if raw.get("column") is not None:
            raise InvalidInput(Text("{field}: count takes no column (it counts rows); remove 'column'",
                                    field=f"{where}.column"), f"{where}.column")
        return Aggregate("count")
    return Aggregate(stat, _numeric_column(raw.get("column"), f"{where}.column", manifest, stat))


def _numeric_column(value: object, where: str, manifest: Manifest, what: str) -> str:
    numeric = [c.name for c in manifest.columns if c.kind == "numeric" and c.type in NUMERIC_TYPES]
    if not isinstance(value, str) or not manifest.has_column(value) or value not in numeric:
        raise InvalidInput(Text("{field}: {value} is not a numeric column of {dataset}; {what} needs one of: "
                                "{columns}", field=where, value=show(value), dataset=manifest.name, what=what,
                                columns=", ".join(numeric) or "-"), where)
    return value


def _parse_group_by(value: object, where: str, manifest: Manifest) -> tuple[str, ...]:
    cats = ", ".join(c.name for c in manifest.columns if c.kind == "categorical") or "-"
    if not isinstance(value, list) or len(value) > MAX_GROUP_BY:
        raise InvalidInput(Text("{field}: a list of up to {max} categorical columns: {columns}", field=where,
                                max=MAX_GROUP_BY, columns=cats), where)
    out = []
    for name in value:
        if not isinstance(name, str) or not manifest.has_column(name) or manifest.column(name).kind != "categorical":
            raise InvalidInput(Text("{field}: {value} is not a categorical column of {dataset}; group only by: "
                                    "{columns}", field=where, value=show(name), dataset=manifest.name, columns=cats),
                               where)
        if name in out:
            raise InvalidInput(Text("{field}: '{column}' is listed twice; list each column once", field=where,
                                    column=name), where)
        out.append(name)
    return tuple(out)


def _parse_where(value: object, where: str, manifest: Manifest) -> tuple[Predicate, ...]:
    if not isinstance(value, list) or len(value) > MAX_WHERE:
        raise InvalidInput(Text("{field}: a list of up to {max} filters like {{\"column\": \"status\", \"op\": "
                                "\"in\", \"value\": [...]}}", field=where, max=MAX_WHERE), where)
    return tuple(_parse_predicate(p, f"{where}[{i}]", manifest) for i, p in enumerate(value))


def _parse_predicate(raw: object, where: str, manifest: Manifest) -> Predicate:
    raw = _mapping(raw, where, ("column", "op", "value"), ("column", "op", "value"))
    name, op, value = raw["column"], raw["op"], raw["value"]
    public = [c.name for c in manifest.columns if c.kind in ("categorical", "numeric", "date")]
    if not isinstance(name, str) or name not in public:
        # Identifiers and free text are never filtered on: a filter on one picks out a unit.
        raise InvalidInput(Text("{field}: {value} is not a column you may filter on; use one of: {columns}",
                                field=f"{where}.column", value=show(name), columns=", ".join(public)),
                           f"{where}.column")
    col = manifest.column(name)
    ops = CATEGORY_OPS if col.kind == "categorical" else ORDER_OPS + ("==", "!=")
    if op not in ops:
        raise InvalidInput(Text("{field}: {value} is not an operator for '{column}'; use one of {allowed}",
                                field=f"{where}.op", value=show(op), column=name, allowed=", ".join(ops)),
                           f"{where}.op")
    if col.kind == "categorical":
        values = value if op in ("in", "not_in") else [value]
        if not isinstance(values, list) or not values or any(v not in col.categories or isinstance(v, bool)
                                                              != isinstance(col.categories[0], bool) for v in values):
            template = ("{field}: a list of the categories of '{column}': {categories}" if op in ("in", "not_in")
                        else "{field}: one of the categories of '{column}': {categories}")
            raise InvalidInput(Text(template, field=f"{where}.value", column=name,
                                    categories=", ".join(str(c) for c in col.categories)), f"{where}.value")
        return Predicate(name, op, tuple(values) if op in ("in", "not_in") else value)
    if col.kind == "date":
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise InvalidInput(Text("{field}: a date as YYYY-MM-DD", field=f"{where}.value"), f"{where}.value")
        return Predicate(name, op, value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(Text("{field}: a finite number", field=f"{where}.value"), f"{where}.value")
    return Predicate(name, op, value)


def _parse_model(raw: object, where: str, manifest: Manifest) -> ModelSpec:
    raw = _mapping(raw, where, MODEL_KEYS, ("name", "family", "dependent", "regressors"))
    name = check_name(raw["name"], where)
    family = raw["family"]
    if family not in FAMILIES:
        raise InvalidInput(Text("{field}: {value} is not supported; use one of {allowed}", field=f"{where}.family",
                                value=show(family), allowed=", ".join(FAMILIES)), f"{where}.family")
    dep = raw["dependent"]
    if family == "ols":
        dep = _numeric_column(dep, f"{where}.dependent", manifest, Text("an OLS model"))
    elif not _binary(dep, manifest):
        binary = [c.name for c in manifest.columns if _binary(c.name, manifest)]
        raise InvalidInput(Text("{field}: {value} is not a 0/1 column; a {family} model needs a bool column or a "
                                "numeric one bounded by [0, 1]: {columns}", field=f"{where}.dependent",
                                value=show(dep), family=family, columns=", ".join(binary) or "-"),
                           f"{where}.dependent")
    regs = raw["regressors"]
    allowed = [c.name for c in manifest.columns if _regressor(c) and c.name != dep]
    if not isinstance(regs, list) or not 1 <= len(regs) <= MAX_REGRESSORS:
        raise InvalidInput(Text("{field}: a list of 1 to {max} columns from: {columns}", field=f"{where}.regressors",
                                max=MAX_REGRESSORS, columns=", ".join(allowed)), f"{where}.regressors")
    for j, r in enumerate(regs):
        if not isinstance(r, str) or r not in allowed or r in regs[:j]:
            raise InvalidInput(Text("{field}: {value} is not a numeric or categorical column of {dataset} (other "
                                    "than the dependent, each once); use: {columns}", field=f"{where}.regressors[{j}]",
                                    value=show(r), dataset=manifest.name, columns=", ".join(allowed)),
                               f"{where}.regressors[{j}]")
    return ModelSpec(name, family, dep, tuple(regs), _parse_where(raw.get("where", []), f"{where}.where", manifest))


def _binary(name: object, manifest: Manifest) -> bool:
    if not isinstance(name, str) or not manifest.has_column(name):
        return False
    col = manifest.column(name)
    return col.type == "bool" or (col.kind == "numeric" and col.type in NUMERIC_TYPES
                                  and tuple(col.bounds or ()) == (0, 1))


def _regressor(col: Column) -> bool:
    return (col.kind == "numeric" and col.type in NUMERIC_TYPES) or col.kind == "categorical"

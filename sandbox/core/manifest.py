"""Dataset manifests: the public description of a dataset.

Everything in a manifest is public. The DP engine takes contribution bounds
(rows per privacy unit) and value clamps from here, never from the data, and
mock data is generated from the manifest alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from sandbox.core.errors import InvalidInput, Text

COLUMN_KINDS = {"identifier", "categorical", "numeric", "date", "text"}
COLUMN_TYPES = {"int64", "float64", "string", "date", "bool"}
LEVELS = ("L1", "L2", "L3", "L4")
# Per-column classification (分类分级): "hidden" columns are not usable by operators at all
# (absent from their catalog, mock data and boxes running their code); a column's "modes"
# lists the only job modes it may be used in (none listed: every mode).
ACCESS = ("open", "hidden")
MODES = ("query", "program", "reviewed")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    kind: str
    description: str = ""
    categories: tuple = ()
    bounds: tuple | None = None
    access: str = "open"
    modes: tuple = ()

    def usable_in(self, mode: str | None) -> bool:
        """Whether an operator may use this column in a job of `mode` (None: in some mode)."""
        if self.access == "hidden":
            return False
        return mode is None or not self.modes or mode in self.modes

    def to_dict(self) -> dict:
        d = {"name": self.name, "type": self.type, "kind": self.kind, "description": self.description}
        if self.categories:
            d["categories"] = list(self.categories)
        if self.bounds is not None:
            d["bounds"] = list(self.bounds)
        if self.access != "open":
            d["access"] = self.access
        if self.modes:
            d["modes"] = list(self.modes)
        return d


@dataclass(frozen=True)
class Manifest:
    name: str
    title: str
    description: str
    classification: str
    privacy_unit: str
    max_rows_per_unit: int
    columns: tuple[Column, ...]
    default_rows: int = 1_000_000
    title_zh: str = ""
    owner: str = ""
    extra: dict = field(default_factory=dict)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def has_column(self, name: str) -> bool:
        return any(c.name == name for c in self.columns)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def restricted(self, mode: str | None = None) -> list[Column]:
        """The columns an operator may not use in `mode` (None: hidden ones only)."""
        return [c for c in self.columns if not c.usable_in(mode)]

    def operator_columns(self, mode: str | None = None) -> list[dict]:
        """The column list operators read: hidden columns (and, for a mode, the columns
        that mode may not use) left out."""
        return [c.to_dict() for c in self.columns if c.usable_in(mode)]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "title_zh": self.title_zh,
            "description": self.description,
            "classification": self.classification,
            "owner": self.owner,
            "privacy_unit": self.privacy_unit,
            "max_rows_per_unit": self.max_rows_per_unit,
            "default_rows": self.default_rows,
            "columns": [c.to_dict() for c in self.columns],
        }


def _finite_pair(value, where: str) -> tuple:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise InvalidInput(Text("{field}: bounds must be a [lower, upper] pair", field=where), where)
    lo, hi = value
    if isinstance(lo, str) and isinstance(hi, str):  # dates, ISO format
        if lo > hi:
            raise InvalidInput(Text("{field}: lower bound is after upper bound", field=where), where)
        return (lo, hi)
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InvalidInput(Text("{field}: bounds must be finite numbers", field=where), where)
    if lo >= hi:
        raise InvalidInput(Text("{field}: lower bound must be below upper bound", field=where), where)
    return (lo, hi)


def parse_manifest(data: dict) -> Manifest:
    """Validate a manifest dict (from YAML) and return a Manifest."""
    if not isinstance(data, dict):
        raise InvalidInput(Text("manifest must be a mapping"))
    for key in ("name", "classification", "privacy_unit", "max_rows_per_unit", "columns"):
        if key not in data:
            raise InvalidInput(Text("manifest is missing '{key}'", key=key), key)
    if data["classification"] not in LEVELS:
        raise InvalidInput(Text("classification must be one of {allowed}", allowed=", ".join(LEVELS)),
                           "classification")
    k = data["max_rows_per_unit"]
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput(Text("max_rows_per_unit must be a positive integer"), "max_rows_per_unit")
    cols = []
    seen = set()
    for i, raw in enumerate(data["columns"]):
        where = f"columns[{i}]"
        if not isinstance(raw, dict) or "name" not in raw:
            raise InvalidInput(Text("{field}: each column needs a name", field=where), where)
        name = raw["name"]
        if name in seen:
            raise InvalidInput(Text("{field}: duplicate column '{name}'", field=where, name=name), where)
        seen.add(name)
        kind = raw.get("kind")
        typ = raw.get("type")
        if kind not in COLUMN_KINDS:
            raise InvalidInput(Text("{field}: kind must be one of {allowed}", field=where,
                                    allowed=str(sorted(COLUMN_KINDS))), where)
        if typ not in COLUMN_TYPES:
            raise InvalidInput(Text("{field}: type must be one of {allowed}", field=where,
                                    allowed=str(sorted(COLUMN_TYPES))), where)
        cats = tuple(raw.get("categories") or ())
        if kind == "categorical" and not cats:
            raise InvalidInput(Text("{field}: a categorical column needs its public list of categories", field=where),
                               where)
        bounds = None
        if raw.get("bounds") is not None:
            bounds = _finite_pair(raw["bounds"], where)
        if kind == "numeric" and bounds is None:
            raise InvalidInput(Text("{field}: a numeric column needs public bounds", field=where), where)
        access, modes = _parse_access(raw, where)
        cols.append(Column(name=name, type=typ, kind=kind, description=raw.get("description", ""),
                           categories=cats, bounds=bounds, access=access, modes=modes))
    if data["privacy_unit"] not in seen:
        raise InvalidInput(Text("privacy_unit must name a column"), "privacy_unit")
    return Manifest(
        name=data["name"],
        title=data.get("title", data["name"]),
        title_zh=data.get("title_zh", ""),
        description=data.get("description", ""),
        classification=data["classification"],
        owner=data.get("owner", ""),
        privacy_unit=data["privacy_unit"],
        max_rows_per_unit=k,
        default_rows=int(data.get("default_rows", 1_000_000)),
        columns=tuple(cols),
    )


def parse_public_manifest(public: dict) -> Manifest:
    """A manifest from an operator's catalog entry (GET /datasets/NAME), for local mock runs:
    the catalog leaves hidden columns out, the privacy unit's too when the owner hid it, so
    its declaration is put back as a hidden text identifier (mock values only; the runner
    bounds contributions by it, the operator may not use it)."""
    columns = list(public.get("columns") or [])
    unit = public.get("privacy_unit")
    if isinstance(unit, str) and not any(isinstance(c, dict) and c.get("name") == unit for c in columns):
        columns.append({"name": unit, "type": "string", "kind": "identifier", "access": "hidden"})
    return parse_manifest({**public, "columns": columns})


def _parse_access(raw: dict, where: str) -> tuple[str, tuple]:
    access = raw.get("access", "open")
    if access not in ACCESS:
        raise InvalidInput(Text("{field}: access must be one of {allowed}", field=f"{where}.access",
                                allowed=", ".join(ACCESS)), f"{where}.access")
    modes = raw.get("modes")
    if modes is None:
        return access, ()
    if (not isinstance(modes, list) or not modes or any(m not in MODES for m in modes)
            or len(set(modes)) != len(modes)):
        raise InvalidInput(Text("{field}: modes must be a list of job modes out of {allowed}",
                                field=f"{where}.modes", allowed=", ".join(MODES)), f"{where}.modes")
    if access == "hidden":
        raise InvalidInput(Text("{field}: a hidden column is usable in no mode; drop modes or access",
                                field=f"{where}.modes"), f"{where}.modes")
    return access, tuple(modes)

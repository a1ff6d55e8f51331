"""The registration report: how a version's files compare with its manifest, and the
enforcement that turns them into a verified version.

Owner/compliance only: every figure here is computed from raw data (rows, units over the
bound, values outside bounds, unknown categories). Never show it to operators.
"""
from __future__ import annotations

import datetime
import math
import secrets
import tempfile
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from sandbox.agent import ingest
from sandbox.core import datafiles
from sandbox.core.errors import InvalidInput
from sandbox.runner.frames import ARROW_TYPES, scan_files

# How many unknown category values a report lists per column.
_SHOWN = 10
_ENFORCE_ROWS_PER_PASS = 1_000_000

_COMPATIBLE = {
    "int64": pa.types.is_integer,
    "float64": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t),
    "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or (
        pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type))),
    "date": pa.types.is_date,
    "bool": pa.types.is_boolean,
}


class RegistrationRefused(InvalidInput):
    """A version refused at registration; `report` (owner-only) says what is wrong."""

    def __init__(self, message: str, report: dict):
        super().__init__(message, "data")
        self.report = report

    def to_dict(self) -> dict:
        return {**super().to_dict(), "report": self.report}


def _file_schemas(data_dir: Path) -> tuple[list, pa.Schema]:
    files = datafiles.data_files(data_dir)
    if not files:
        raise InvalidInput("data: no Parquet files (*.parquet) found", "data")
    schemas = []
    for f in files:
        try:
            schemas.append(pq.read_schema(f.path))
        except (pa.ArrowInvalid, OSError) as e:
            raise InvalidInput(f"data: {f.name} is not a readable Parquet file ({e})", "data") from None
    first = schemas[0]
    for f, s in zip(files, schemas):
        if s.names != first.names or not all(_same_family(a.type, b.type) for a, b in zip(s, first)):
            raise InvalidInput(f"data: {f.name} has other columns or types than {files[0].name}; every file of a "
                               "version must have the same schema", "data")
    return files, first


def _same_family(a, b) -> bool:
    return any(ok(a) and ok(b) for ok in _COMPATIBLE.values()) or a == b


def schema_report(data_dir: Path, manifest) -> tuple[dict, list, dict]:
    """(schema section of the report, data files, partition columns)."""
    files, schema = _file_schemas(data_dir)
    parts = datafiles.partition_columns(files, ingest.column_types(manifest), set(schema.names))
    present = set(schema.names) | set(parts)
    declared = manifest.column_names
    wrong = {}
    for c in manifest.columns:
        if c.name in schema.names:
            typ = schema.field(c.name).type
            if not _COMPATIBLE[c.type](typ):
                wrong[c.name] = {"manifest": c.type, "file": str(typ)}
    return {"missing_columns": [c for c in declared if c not in present],
            "extra_columns": [c for c in schema.names if c not in declared],
            "wrong_types": wrong,
            "partition_columns": list(parts)}, files, parts


def _bound_literal(col, value):
    if col.type == "date" and isinstance(value, str):
        return pl.lit(datetime.date.fromisoformat(value))
    return pl.lit(value)


def column_report(lf: pl.LazyFrame, manifest) -> dict:
    """Per declared column: nulls; rows below/above its bounds; rows whose value is not one
    of its categories (and up to 10 such values)."""
    exprs, cats = [], []
    for c in manifest.columns:
        exprs.append(pl.col(c.name).null_count().alias(f"{c.name}\0nulls"))
        if c.bounds is not None and c.type in ("int64", "float64", "date"):
            lo, hi = (_bound_literal(c, v) for v in c.bounds)
            exprs.append((pl.col(c.name) < lo).sum().alias(f"{c.name}\0below"))
            exprs.append((pl.col(c.name) > hi).sum().alias(f"{c.name}\0above"))
        if c.categories:
            allowed = pl.Series([_typed(c, v) for v in c.categories])
            exprs.append((pl.col(c.name).is_not_null() & ~pl.col(c.name).is_in(allowed.implode()))
                         .sum().alias(f"{c.name}\0unknown"))
            cats.append((c, allowed))
    row = lf.select(exprs).collect(engine="streaming").row(0, named=True)
    out = {c.name: {} for c in manifest.columns}
    for key, value in row.items():
        name, what = key.split("\0")
        out[name][what] = int(value or 0)
    for c, allowed in cats:
        if out[c.name]["unknown"]:
            values = (lf.select(pl.col(c.name)).filter(pl.col(c.name).is_not_null()
                                                        & ~pl.col(c.name).is_in(allowed.implode()))
                      .unique().head(_SHOWN).collect(engine="streaming").get_column(c.name).to_list())
            out[c.name]["unknown_values"] = sorted(str(v) for v in values)
    return out


def _typed(col, value):
    if col.type == "int64" and not isinstance(value, bool):
        return int(value)
    if col.type == "float64":
        return float(value)
    if col.type == "string":
        return str(value)
    return value


def _scan(files, parts, manifest) -> pl.LazyFrame:
    names = set(pq.read_schema(files[0].path).names) | set(parts)
    return scan_files(files, parts).select([c for c in manifest.column_names if c in names])


def build_report(data_dir: Path, manifest, progress=None) -> dict:
    """The whole registration report of a staged version (owner/compliance only).
    `progress(stage, fraction)` hears which step runs (each is one streaming pass)."""
    step = progress or (lambda _stage, _fraction: None)
    step("reading the schema", 0.0)
    schema, files, parts = schema_report(data_dir, manifest)
    report = {"schema": schema, "privacy_unit": manifest.privacy_unit, "max_rows_per_unit": manifest.max_rows_per_unit}
    if schema["missing_columns"] or schema["wrong_types"]:
        report["rows"] = ingest.row_count(data_dir)
        return report
    step("counting rows per privacy unit", 0.05)
    bound = ingest.verify_unit_bound(data_dir, manifest.privacy_unit, manifest.max_rows_per_unit,
                                     ingest.column_types(manifest))
    step("checking columns against the manifest", 0.6)
    report.update({"rows": bound.rows, "units": bound.units, "units_over_bound": bound.violating_units,
                   "rows_over_bound": bound.rows_over_bound, "max_rows_per_unit_seen": bound.max_rows_per_unit,
                   "null_unit_rows": bound.null_unit_rows,
                   "columns": column_report(_scan(files, parts, manifest), manifest)})
    step("report done", 1.0)
    return report


def problems(report: dict) -> tuple[list[str], list[str]]:
    """(what enforcement cannot fix, what it fixes), each as lines saying what to do."""
    hard, fixable = [], []
    s = report["schema"]
    if s["missing_columns"]:
        hard.append(f"columns declared in the manifest but not in the files: {', '.join(s['missing_columns'])} "
                    "(remove them from the manifest or add them to the data)")
    for name, t in s["wrong_types"].items():
        hard.append(f"column '{name}' is {t['file']} in the files but {t['manifest']} in the manifest "
                    "(fix the manifest's type or the data)")
    for name, col in (report.get("columns") or {}).items():
        if col.get("unknown"):
            hard.append(f"column '{name}': {col['unknown']} rows hold values not in the manifest's categories "
                        f"({', '.join(col.get('unknown_values', []))}): add them to the categories or fix the data")
    if s["extra_columns"]:
        fixable.append(f"columns not declared in the manifest: {', '.join(s['extra_columns'])} "
                       "(declare them, or --enforce drops them)")
    if report.get("null_unit_rows"):
        fixable.append(f"{report['null_unit_rows']} rows have no privacy unit ({report['privacy_unit']}) "
                       "(--enforce drops them)")
    if report.get("units_over_bound"):
        fixable.append(f"{report['units_over_bound']} units have more than {report['max_rows_per_unit']} rows "
                       f"({report['rows_over_bound']} rows over the bound; --enforce keeps a random "
                       f"{report['max_rows_per_unit']} per unit)")
    for name, col in (report.get("columns") or {}).items():
        if col.get("below") or col.get("above"):
            fixable.append(f"column '{name}': {col.get('below', 0)} rows below and {col.get('above', 0)} above its "
                           "bounds (--enforce clamps them)")
    return hard, fixable


def enforce(data_dir: Path, manifest, out_parent: Path, progress=None) -> tuple[Path, dict]:
    """Rewrite the staged version into a new staging folder under out_parent: declared
    columns only (typed as the manifest says), rows with a null unit dropped, values clamped
    to their bounds, and at most k rows per unit kept in an order drawn from a fresh secret
    seed (so which rows are kept is not predictable from storage order). One hash partition
    of the units at a time, so memory stays bounded."""
    _, files, parts = schema_report(data_dir, manifest)
    unit, k = manifest.privacy_unit, manifest.max_rows_per_unit
    seed = secrets.randbits(62)
    schema = pa.schema([pa.field(c.name, getattr(pa, ARROW_TYPES[c.type])()) for c in manifest.columns])
    clamps = []
    for c in manifest.columns:
        if c.bounds is not None and c.type in ("int64", "float64", "date"):
            lo, hi = (_bound_literal(c, v) for v in c.bounds)
            clamps.append(pl.col(c.name).clip(lo, hi))
    lf = _scan(files, parts, manifest).with_columns(clamps)
    rows_in = ingest.row_count(data_dir)
    passes = max(1, math.ceil(rows_in / _ENFORCE_ROWS_PER_PASS))
    out = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_parent))
    parts_out = ingest.PartWriter(out, schema)
    indexed = lf.with_row_index("__row").filter(pl.col(unit).is_not_null())
    for p in range(passes):
        if progress:
            progress("enforcing the bound", p / passes)
        part = indexed.filter((pl.col(unit).hash(ingest._PARTITION_SEED) % passes) == p) if passes > 1 else indexed
        frame = part.collect(engine="streaming")
        kept = (frame.with_columns(__r=pl.col("__row").hash(seed)).sort("__r")
                .filter(pl.int_range(pl.len()).over(unit) < k).sort("__row").drop("__row", "__r"))
        del frame
        if kept.height == 0:
            continue
        parts_out.add(kept)
    parts_out.finish(unit, k)
    return out, {"rows_in": rows_in, "rows_out": parts_out.rows}

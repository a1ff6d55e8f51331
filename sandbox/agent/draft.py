"""Draft a manifest from an owner's Parquet data, for the owner to edit and confirm.

The draft is computed from raw data (categories, percentiles, null counts, rows per unit):
it is for the data owner only, run on the owner's side (`sandbox dataset draft`), never
stored or shown to operators. The owner must review every category list and bound: a
manifest is public, and a bound taken from the data discloses something about it.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl
import yaml

from sandbox.core import datafiles
from sandbox.core.errors import InvalidInput

# A string column with at most this many distinct values is suggested as categorical.
_MAX_CATEGORIES = 50
_PERCENTILES = (0.01, 0.99)


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = datafiles.parquet_files(path)
    if not files:
        raise InvalidInput(f"{path}: no Parquet files (*.parquet)", "path")
    return files


def _type(dtype) -> str | None:
    if dtype.is_integer():
        return "int64"
    if dtype.is_float():
        return "float64"
    if dtype == pl.Boolean:
        return "bool"
    if dtype == pl.Date:
        return "date"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "string"
    return None


def _nice(value: float, integer: bool):
    return int(value) if integer else float(f"{value:.4g}")


def column_profile(lf: pl.LazyFrame, name: str, typ: str, rows: int) -> dict:
    col = pl.col(name)
    stats = lf.select(col.null_count().alias("nulls"), col.n_unique().alias("distinct")).collect().row(0, named=True)
    out = {"name": name, "type": typ, "nulls": int(stats["nulls"]), "distinct": int(stats["distinct"])}
    # Too many values to list, and many per row: a person or entity key, a candidate unit.
    looks_like_id = name.lower().endswith(("_id", "id")) or (
        typ == "string" and stats["distinct"] > _MAX_CATEGORIES and stats["distinct"] >= 0.05 * rows)
    if typ in ("int64", "float64") and not (typ == "int64" and looks_like_id):
        lo, hi = lf.select(col.quantile(_PERCENTILES[0]).alias("lo"), col.quantile(_PERCENTILES[1]).alias("hi")
                           ).collect().row(0)
        if lo is not None and hi is not None:
            lo, hi = _nice(lo, typ == "int64"), _nice(hi, typ == "int64")
            out.update(kind="numeric", bounds=[lo, hi if hi > lo else lo + 1])
            return out
    if typ == "string" and stats["distinct"] <= _MAX_CATEGORIES and not looks_like_id:
        values = lf.select(col.drop_nulls().unique().sort()).collect().get_column(name).to_list()
        out.update(kind="categorical", categories=[str(v) for v in values])
        return out
    if typ == "date":
        lo, hi = lf.select(col.min().alias("lo"), col.max().alias("hi")).collect().row(0)
        out.update(kind="date", bounds=[lo.isoformat(), hi.isoformat()] if lo and hi and lo < hi else None)
        return out
    if typ == "bool":
        out.update(kind="categorical", categories=[False, True])
        return out
    out["kind"] = "identifier" if looks_like_id else "text"
    return out


def unit_profile(lf: pl.LazyFrame, name: str) -> dict:
    """Rows per unit for a candidate privacy unit column."""
    per = lf.filter(pl.col(name).is_not_null()).group_by(name).agg(pl.len().alias("n"))
    row = per.select(pl.len().alias("units"), pl.col("n").max().alias("max"),
                     pl.col("n").median().alias("median"), pl.col("n").quantile(0.99).alias("p99")).collect()
    r = row.row(0, named=True)
    return {"units": int(r["units"]), "max": int(r["max"] or 0), "median": float(r["median"] or 0),
            "p99": int(r["p99"] or 0)}


def _draft_column(c: dict) -> dict:
    out = {key: c[key] for key in ("name", "type", "kind", "categories", "bounds") if c.get(key) is not None}
    if c["kind"] == "identifier":
        # A key that names a person or entity is of no use to aggregate statistics and
        # helps linking records: suggested hidden from operators (the runner still bounds by it).
        out["access"] = "hidden"
    return out


def draft_manifest(path: str | Path, name: str | None = None, unit: str | None = None) -> str:
    """A manifest YAML for the data at path, with the owner-only profile in comments."""
    path = Path(path)
    files = _files(path)
    try:
        lf = pl.scan_parquet(files, hive_partitioning=path.is_dir())
        schema = lf.collect_schema()
        rows = lf.select(pl.len()).collect().item()
    except (pl.exceptions.PolarsError, OSError) as e:
        raise InvalidInput(f"{path}: not readable as Parquet ({e})", "path") from None
    columns, skipped = [], []
    for col, dtype in schema.items():
        typ = _type(dtype)
        if typ is None:
            skipped.append(f"{col} ({dtype})")
            continue
        columns.append(column_profile(lf, col, typ, rows))
    candidates = {c["name"]: unit_profile(lf, c["name"]) for c in columns
                  if c["kind"] == "identifier" or c["name"] == unit}
    if unit is not None and unit not in {c["name"] for c in columns}:
        raise InvalidInput(f"--unit {unit}: no such column (columns: {', '.join(schema.names())})", "unit")
    chosen = unit or (max(candidates, key=lambda c: candidates[c]["units"]) if candidates else None)
    k = max(1, candidates[chosen]["p99"]) if chosen else 1
    manifest = {
        "name": name or path.stem.replace("-", "_"),
        "title": name or path.stem, "description": "", "classification": "L2", "owner": "",
        "privacy_unit": chosen or (columns[0]["name"] if columns else ""),
        "max_rows_per_unit": k,
        "columns": [_draft_column(c) for c in columns],
    }
    head = ["# DRAFT manifest, computed from your data: for you, the data owner, only.",
            "# Review every line before registering: a manifest is PUBLIC (operators read it), and",
            "# categories and bounds taken from the data disclose something about it. Prefer public,",
            "# domain-given bounds and category lists; set the classification (L1-L4) and the owner.",
            "# Identifier-like columns are drafted `access: hidden` (no operator may use them); a column",
            "# may instead carry `modes: [query]` (usable only in those job modes).",
            f"# rows: {rows}"]
    for c in columns:
        head.append(f"#   {c['name']}: {c['type']}, {c['nulls']} null, {c['distinct']} distinct, suggested {c['kind']}")
    for col, prof in candidates.items():
        head.append(f"# rows per unit if the privacy unit is {col}: {prof['units']} units, median {prof['median']}, "
                    f"99th percentile {prof['p99']}, max {prof['max']}")
    if not chosen:
        head.append("# no identifier column found: add the column that identifies a person or entity and name "
                    "it as privacy_unit")
    if skipped:
        head.append(f"# columns left out (types a manifest cannot declare): {', '.join(skipped)}")
    return "\n".join(head) + "\n" + yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True)

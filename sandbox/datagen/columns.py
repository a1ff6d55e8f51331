"""Columns from a public manifest: Arrow types, seeded random streams, the draw helpers the
realistic generators use, and the generic columns (uniform within public bounds and
categories) that mock data and datasets without a realistic generator get.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import yaml

from sandbox.core.manifest import Column, Manifest, parse_manifest

_ARROW_TYPES = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "string": pa.string(),
    "date": pa.date32(),
    "bool": pa.bool_(),
}
# Used only when a manifest's date column carries no public bounds.
_DEFAULT_DATE_BOUNDS = ("2000-01-01", "2024-12-31")

# Pseudonymous ids: an odd multiplier is a bijection modulo 2**40, so distinct
# counters give distinct, non-sequential ids (up to ~1.1e12 units).
_ID_MULT = 0x9E3779B97F4B
_ID_MOD = 1 << 40


# --------------------------------------------------------------------------- manifests

def load_manifest(path: str | Path) -> Manifest:
    """Read and validate one manifest YAML file."""
    with open(path, encoding="utf-8") as fh:
        return parse_manifest(yaml.safe_load(fh))


def arrow_schema(manifest: Manifest) -> pa.Schema:
    """The Arrow schema a dataset described by ``manifest`` must have."""
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.type]) for c in manifest.columns])


def _name_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def random_stream(manifest: Manifest, seed: int, stream: str, index: int) -> np.random.Generator:
    # One independent stream per (dataset, purpose, chunk): chunks never share draws,
    # and mock data never shares draws with the demo dataset.
    return np.random.default_rng(np.random.SeedSequence(
        [seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, _name_key(manifest.name), _name_key(stream), index]))


# --------------------------------------------------------------------------- draw helpers

def probs(categories: tuple, weights: dict, default: float | None = None) -> np.ndarray:
    """Probabilities for the manifest's categories; labels the table does not know
    get ``default`` (the mean known weight if None), so an edited manifest still works."""
    known = [weights[c] for c in categories if c in weights]
    if default is None:
        default = float(np.mean(known)) if known else 1.0
    w = np.array([float(weights.get(c, default)) for c in categories])
    return w / w.sum()


def draw(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(p) - 1)


def day_bounds(col: Column) -> tuple[int, int]:
    lo, hi = col.bounds if col.bounds is not None else _DEFAULT_DATE_BOUNDS
    return int(np.datetime64(str(lo), "D").astype(np.int64)), int(np.datetime64(str(hi), "D").astype(np.int64))


def num_bounds(col: Column, default=(0, 100)) -> tuple:
    return col.bounds if col.bounds is not None else default


def _scrambled_ids(start: int, count: int) -> np.ndarray:
    counters = np.arange(start + 1, start + count + 1, dtype=np.uint64)
    return ((counters * np.uint64(_ID_MULT)) % np.uint64(_ID_MOD)).astype(np.int64)


def split_units(rng: np.random.Generator, n: int, unit_probs: Callable[[int], np.ndarray]) -> np.ndarray:
    """Rows per unit for exactly ``n`` rows: draw counts until they cover ``n``,
    then cut the last unit (it keeps at least one row)."""
    chunks, total = [], 0
    while total < n:
        c = unit_probs(max(16, n - total))
        chunks.append(c)
        total += int(c.sum())
    counts = np.concatenate(chunks)
    cum = np.cumsum(counts)
    last = int(np.searchsorted(cum, n))
    counts = counts[: last + 1].copy()
    counts[-1] -= int(cum[last]) - n
    return counts


def category_array(categories: tuple, idx: np.ndarray, typ: pa.DataType) -> pa.Array:
    return pa.array(list(categories), type=typ).take(pa.array(idx.astype(np.int32)))


# --------------------------------------------------------------------------- generic columns

def _generic_column(col: Column, rng: np.random.Generator, n: int, row_start: int) -> pa.Array:
    """Uniform draws within public bounds/categories; uses nothing but ``col``."""
    typ = _ARROW_TYPES[col.type]
    if col.categories:
        return category_array(col.categories, rng.integers(0, len(col.categories), n), typ)
    if col.kind == "identifier" or col.kind == "text":
        seq = np.arange(row_start + 1, row_start + n + 1, dtype=np.int64)
        if col.type == "int64":
            return pa.array(seq)
        if col.type == "float64":
            return pa.array(seq.astype(np.float64))
        return pa.array([f"{col.name}-{i}" for i in seq], type=typ)
    if col.type == "date" or col.kind == "date":
        lo, hi = day_bounds(col)
        return pa.array(rng.integers(lo, hi + 1, n).astype("datetime64[D]"))
    if col.type == "bool":
        return pa.array(rng.random(n) < 0.5)
    lo, hi = num_bounds(col)
    if col.type == "int64":
        return pa.array(rng.integers(math.ceil(lo), math.floor(hi) + 1, n, dtype=np.int64))
    if col.type == "float64":
        return pa.array(np.round(rng.uniform(lo, hi, n), 2).clip(lo, hi))
    return pa.array([str(v) for v in rng.integers(math.ceil(lo), math.floor(hi) + 1, n)], type=typ)


def unit_column(manifest: Manifest, counts: np.ndarray, unit_start: int, scrambled: bool) -> pa.Array:
    col = manifest.column(manifest.privacy_unit)
    ids = _scrambled_ids(unit_start, len(counts)) if scrambled else np.arange(
        unit_start + 1, unit_start + len(counts) + 1, dtype=np.int64)
    ids = np.repeat(ids, counts)
    if col.type == "int64":
        return pa.array(ids)
    if col.type == "float64":
        return pa.array(ids.astype(np.float64))
    return pa.array([f"u{i:013d}" for i in ids], type=_ARROW_TYPES[col.type])


def _uniform_counts(rng: np.random.Generator, k: int) -> Callable[[int], np.ndarray]:
    # Mean (k+1)/2 rows per unit; ask for enough units to cover the remaining rows.
    return lambda rows: rng.integers(1, k + 1, int(rows / ((k + 1) / 2) * 1.1) + 1)


def generic_chunk(manifest: Manifest, rng: np.random.Generator, n: int, unit_start: int,
                   row_start: int, *, scrambled: bool = False) -> tuple[dict, int]:
    counts = split_units(rng, n, _uniform_counts(rng, manifest.max_rows_per_unit))
    cols = {manifest.privacy_unit: unit_column(manifest, counts, unit_start, scrambled)}
    for col in manifest.columns:
        if col.name != manifest.privacy_unit:
            cols[col.name] = _generic_column(col, rng, n, row_start)
    return cols, len(counts)


def to_table(manifest: Manifest, cols: dict, rng: np.random.Generator, n: int, row_start: int) -> pa.Table:
    """Assemble exactly the manifest's columns with the manifest's types. Columns a
    realistic generator did not produce (an edited manifest) fall back to generic draws."""
    schema = arrow_schema(manifest)
    arrays = []
    for col, field in zip(manifest.columns, schema):
        arr = cols.get(col.name)
        if arr is None:
            arr = _generic_column(col, rng, n, row_start)
        elif not isinstance(arr, pa.Array):
            arr = pa.array(arr)
        if arr.type != field.type:
            arr = arr.cast(field.type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema)


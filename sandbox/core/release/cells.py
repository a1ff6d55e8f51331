"""How the release rules read a table: long form, the key columns (the group-by values)
then the value columns, one row per cell. Cell keys from a CSV and from trusted code are
compared as text, so "2024" and 2024 name the same cell.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from sandbox.core.release.checks import as_text


def flatten(table: pd.DataFrame) -> pd.DataFrame:
    """A meaningful index (named, or not a plain 0..n-1 range) becomes key columns."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError("table must be a pandas DataFrame")
    idx = table.index
    plain = isinstance(idx, pd.RangeIndex) and idx.name is None
    df = table if plain else table.reset_index()
    if isinstance(df.columns, pd.MultiIndex):
        df = df.copy()
        df.columns = [" ".join(str(p) for p in c if str(p)) for c in df.columns]
    return df


def is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def infer_key_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if not is_numeric(df[c])]


def row_keys(df: pd.DataFrame, keys: list[str]) -> list[tuple]:
    return [tuple(r) for r in df[keys].itertuples(index=False, name=None)] if keys else [() for _ in range(len(df))]


def cell_values(df: pd.DataFrame, keys: list[str], values: list[str]) -> Iterable[tuple[tuple, float]]:
    """(cell key, value) for each finite number in the value columns; with several value
    columns the column name joins the key so the reviewer can find the cell."""
    keys_by_row = row_keys(df, keys)
    for col in values:
        for key, v in zip(keys_by_row, df[col].tolist(), strict=True):
            if v is None or isinstance(v, bool):
                continue
            try:
                f = float(v)
            except (TypeError, ValueError):
                continue
            if math.isfinite(f):
                yield (key + (col,) if len(values) > 1 else key), f


def norm_name(name) -> str:
    return str(name).strip().lower()


def norm_key(key: tuple) -> tuple:
    # CSV gives "2024" where trusted code has 2024; compare as text, ints without ".0".
    return tuple(as_text(v) for v in key)


def unique_keys(keys: list[tuple]) -> list[tuple]:
    seen, out = set(), []
    for key in keys:
        norm = norm_key(key)
        if norm not in seen:
            seen.add(norm)
            out.append(key)
    return out

"""Mock data for analysts, built from the public manifest alone (uniform draws within public
bounds and categories). It never reads data.
"""
from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sandbox.core.manifest import Manifest
from sandbox.datagen.columns import arrow_schema, generic_chunk, random_stream, to_table
from sandbox.datagen.layout import COMPRESSION

def generate_mock(manifest: Manifest, rows: int = 1000, *, seed: int = 0) -> pa.Table:
    """Mock data for analysts, built from the public manifest ALONE.

    Never reads real data, files, settings or the environment: the output is a pure
    function of (manifest, rows, seed). Values are uniform draws within the public
    bounds and categories; each privacy unit has 1..max_rows_per_unit rows and ids
    are sequential (1, 2, ...), so mock rows are plainly not real ones.
    """
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise ValueError("rows must be a non-negative integer")
    if rows == 0:
        return arrow_schema(manifest).empty_table()
    rng = random_stream(manifest, seed, "mock", 0)
    cols, _ = generic_chunk(manifest, rng, rows, 0, 0)
    return to_table(manifest, cols, rng, rows, 0)


def write_mock_parquet(manifest: Manifest, path: str | Path, rows: int = 1000, seed: int = 0) -> Path:
    """Write ``generate_mock`` output to one Parquet file (manifest-only, see there)."""
    path = Path(path)
    pq.write_table(generate_mock(manifest, rows, seed=seed), path, compression=COMPRESSION)
    return path


def mock_csv_bytes(manifest: Manifest, rows: int = 1000, seed: int = 0) -> bytes:
    """``generate_mock`` output as UTF-8 CSV with a header (manifest-only, see there)."""
    buf = io.BytesIO()
    pacsv.write_csv(generate_mock(manifest, rows, seed=seed), buf)
    return buf.getvalue()

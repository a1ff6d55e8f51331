"""Split a dataset into k disjoint blocks by privacy unit, for program mode
(sample-and-aggregate). TRUSTED host code, run by the worker inside the domain.

The block of a unit is a keyed hash of that unit's id alone, under a per-job secret
seed: every row lands in exactly one block, all rows of one person in the same block,
and adding or removing a person changes only their own block (what the sensitivity
bound in sandbox.core.specs.program needs). The key is keyed BLAKE2b (RFC 7693, a MAC
by design), so without the seed, which is 32 bytes from the OS CSPRNG and kept in
the domain, the operator can neither predict nor steer which people share a block.

Memory is bounded: Parquet is read in record batches, buffered up to buffer_bytes,
and each flush writes one part file per non-empty block.
"""
from __future__ import annotations

import datetime
import hashlib
import secrets
import shutil
from pathlib import Path

SEED_BYTES = 32
BLOCK_DIR = "block-{:04d}"
PART_FILE = "part-{:05d}.parquet"
DEFAULT_BATCH_ROWS = 256 * 1024
DEFAULT_BUFFER_BYTES = 256 * 1024 * 1024


def new_block_seed() -> bytes:
    """A fresh secret seed for one job. Never derive it from the job id or spec: those
    are known to the operator."""
    return secrets.token_bytes(SEED_BYTES)


def unit_key(value) -> bytes:
    """Canonical bytes of a unit id; the type tag keeps 1 and "1" apart."""
    if value is None:
        return b"n:"
    if isinstance(value, bool):
        return b"b:1" if value else b"b:0"
    if isinstance(value, int):
        return b"i:%d" % value
    if isinstance(value, str):
        return b"s:" + value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytes, bytearray)):
        return b"y:" + bytes(value)
    if isinstance(value, float):
        return b"f:" + (value + 0.0).hex().encode()
    if isinstance(value, (datetime.date, datetime.datetime)):
        return b"d:" + value.isoformat().encode()
    return b"o:" + str(value).encode("utf-8", "surrogatepass")


def block_of(value, seed: bytes, k: int) -> int:
    """The block of one unit id. 2^64 mod k is negligible bias for k <= 1000."""
    digest = hashlib.blake2b(unit_key(value), key=seed, digest_size=8).digest()
    return int.from_bytes(digest, "big") % k


def _check_args(seed: bytes, k: int) -> None:
    if not isinstance(seed, (bytes, bytearray)) or len(seed) < 16 or len(seed) > 64:
        raise ValueError("seed must be 16 to 64 secret bytes (new_block_seed())")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError("k must be a positive integer")


def batch_block_ids(column, seed: bytes, k: int):
    """Block id (uint32 Arrow array) of every row of one Arrow column: the hash runs
    once per distinct unit in the batch, then is looked up for each row. A null unit
    gets a null id (assign_blocks drops those rows)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    uniques = pc.drop_null(pc.unique(column))
    ids = pa.array([block_of(v, seed, k) for v in uniques.to_pylist()], type=pa.uint32())
    positions = pc.index_in(column, value_set=uniques)
    return ids.take(positions)


def assign_blocks(data_dir: Path, unit: str, k: int, seed: bytes, out_dir: Path, *,
                  column_types: dict | None = None, batch_rows: int = DEFAULT_BATCH_ROWS,
                  buffer_bytes: int = DEFAULT_BUFFER_BYTES, drop_columns: tuple = ()) -> list[Path]:
    """Write k block directories under out_dir (created; must not exist or be empty),
    each holding Parquet parts with the dataset's schema (an empty part when no unit
    hashed there). Returns the k directories, block 0 first.

    The files are those registration hashed (sandbox.core.datafiles); hive partition
    columns the manifest declares (``column_types``: name -> type) are written into the
    blocks as ordinary columns. Rows whose unit is null go to no block: no person's
    contribution bound covers them (the query runner drops them too). ``drop_columns`` (the
    columns the owner's classification keeps from program jobs) are left out of the blocks:
    the operator's code never sees them, the unit included once its block is chosen.

    Directories are 0755 and files 0644, so the unprivileged uid inside a box can read
    the one block mounted at /data. On failure out_dir is removed."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from sandbox.core import datafiles
    from sandbox.runner.frames import ARROW_TYPES, with_partition_columns

    _check_args(seed, k)
    files = datafiles.data_files(data_dir)
    if not files:
        raise FileNotFoundError(f"no *.parquet files in {data_dir}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    file_schema = pq.read_schema(files[0].path)
    parts = datafiles.partition_columns(files, column_types or {}, set(file_schema.names))
    schema = file_schema
    for key, typ in parts.items():
        schema = schema.append(pa.field(key, getattr(pa, ARROW_TYPES[typ])()))
    if unit not in schema.names:
        raise KeyError(f"privacy unit column {unit!r} not in the dataset")
    drop = [c for c in drop_columns if c in schema.names]
    for c in drop:
        schema = schema.remove(schema.get_field_index(c))
    dirs = [out_dir / BLOCK_DIR.format(b) for b in range(k)]
    written = [False] * k
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        out_dir.chmod(0o755)
        for d in dirs:
            d.mkdir()
            d.chmod(0o755)

        buffered: list[tuple[pa.RecordBatch, pa.Array]] = []
        size = 0
        flushes = 0

        def flush() -> None:
            nonlocal buffered, size, flushes
            if not buffered:
                return
            table = pa.Table.from_batches([b for b, _ in buffered], schema=schema)
            ids = np.concatenate([i.to_numpy(zero_copy_only=False) for _, i in buffered])
            buffered, size = [], 0
            # A stable sort keeps each block's rows in file order.
            order = np.argsort(ids, kind="stable")
            table = table.take(pa.array(order))
            counts = np.bincount(ids, minlength=k)
            offset = 0
            for b in np.flatnonzero(counts):
                n = int(counts[b])
                path = dirs[b] / PART_FILE.format(flushes)
                pq.write_table(table.slice(offset, n), path)
                path.chmod(0o644)
                written[b] = True
                offset += n
            flushes += 1

        for f in files:
            pf = pq.ParquetFile(f.path)
            if not pf.schema_arrow.equals(file_schema):
                raise ValueError(f"{f.name}: schema differs from {files[0].name}")
            values = datafiles.partition_values(f, parts)
            for batch in pf.iter_batches(batch_size=batch_rows):
                batch = with_partition_columns(batch, values, parts)
                if batch.column(unit).null_count:
                    batch = batch.filter(pc.is_valid(batch.column(unit)))
                ids = batch_block_ids(batch.column(unit), seed, k)
                buffered.append((batch.drop_columns(drop) if drop else batch, ids))
                size += batch.nbytes
                if size >= buffer_bytes:
                    flush()
        flush()
        for b in range(k):
            if not written[b]:
                path = dirs[b] / PART_FILE.format(0)
                pq.write_table(schema.empty_table(), path)
                path.chmod(0o644)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return dirs

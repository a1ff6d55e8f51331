"""Query mode inside the box: the scan path, one pass over the Parquet row groups.

`cell_statistics` computes every query's exact per-cell statistics at once, reading only
the needed columns, group columns as Parquet dictionary indices (no string decoding), each
public category mapped to its cell number once per dictionary and the cells tallied with
numpy.bincount. Memory is one batch per thread whatever the dataset size. It cannot
truncate units, so it is used whenever no unit has more than k rows; it gives what the
Polars path (sandbox.runner.frames) gives, in the same shape.
"""
from __future__ import annotations

import os
from pathlib import Path

from sandbox.core import dp as dpacc
from sandbox.core.manifest import Manifest
from sandbox.core.specs.query import Query
from sandbox.runner.frames import category_key, parquet_footers

SCAN_BATCH_ROWS = 1 << 20


def _is_text(typ) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    return pa.types.is_string(typ) or pa.types.is_large_string(typ)


def _group_type_ok(typ) -> bool:
    # Types whose pyarrow text form equals Polars' (and so category_key's): text, integers, booleans.
    import pyarrow as pa

    return _is_text(typ) or pa.types.is_integer(typ) or pa.types.is_boolean(typ)


def scan_path_supports(query: Query, manifest: Manifest, schema) -> bool:
    """True when cell_statistics computes exactly what aggregate_frame would."""
    import pyarrow as pa

    if query.where:  # row filters are applied by the Polars path only (frames.row_filter)
        return False
    names = set(schema.names)
    if manifest.privacy_unit not in names:  # null units are dropped by reading it (not so a partition column)
        return False
    for g in query.group_by:
        if g not in names or not _group_type_ok(schema.field(g).type):
            return False
    if query.column is not None:
        if query.column not in names:
            return False
        typ = schema.field(query.column).type
        if not (pa.types.is_integer(typ) or pa.types.is_floating(typ)):
            return False
    return True


# A batch is tallied in its own small "slot" space (products of dictionary indices),
# then the slots are added to public cells; past this many slots, rows are mapped to
# public cells one by one instead (large or dirty dictionaries).
MAX_LOCAL_SLOTS = 1 << 16


class _CellTally:
    """Exact per-cell statistics of one query, accumulated batch by batch."""

    def __init__(self, query: Query, plan: dpacc.QueryPlan, manifest: Manifest) -> None:
        import numpy as np

        self.query, self.plan = query, plan
        self.sizes = [len(manifest.column(g).categories) for g in query.group_by]
        self.n_cells = 1
        for size in self.sizes:
            self.n_cells *= size
        stat = query.statistic
        if stat == "histogram":
            self.edges = np.array(query.bins, dtype=np.float64)
            self.width = len(self.edges) - 1
        elif stat == "quantile":
            self.cands = np.array(plan.candidates, dtype=np.float64)
            self.width = len(self.cands) + 1
        else:
            self.width = 1
        self.counts = np.zeros(self.n_cells * self.width, dtype=np.int64)
        self.sums = np.zeros(self.n_cells, dtype=np.float64) if stat in ("sum", "mean") else None
        self.eqs = np.zeros(self.n_cells * (self.width - 1), dtype=np.int64) if stat == "quantile" else None

    def _slots(self, n: int, column_of):
        """Each row's slot, and slot -> public cell (-1: not released). Rows whose group
        value is missing or not a public category land in a slot mapped to -1."""
        import numpy as np

        parts = [column_of(g) for g in self.query.group_by]
        if not parts:
            return np.zeros(n, dtype=np.int32), np.zeros(1, dtype=np.int64)
        n_slots = 1
        for _, gmap in parts:
            n_slots *= len(gmap)
        if n_slots * self.width <= max(MAX_LOCAL_SLOTS, self.n_cells * self.width):
            slot, slot_cell = None, np.zeros(1, dtype=np.int64)
            for (idx, gmap), size in zip(parts, self.sizes):
                slot = idx if slot is None else slot * len(gmap) + idx
                slot_cell = np.where((slot_cell[:, None] < 0) | (gmap[None, :] < 0), -1,
                                     slot_cell[:, None] * size + gmap[None, :]).ravel()
            return slot, slot_cell
        cell = None
        for (idx, gmap), size in zip(parts, self.sizes):
            c = gmap[idx]
            cell = c if cell is None else np.where((cell < 0) | (c < 0), -1, cell * size + c)
        return np.where(cell < 0, self.n_cells, cell), np.append(np.arange(self.n_cells), -1)

    @staticmethod
    def _scatter(target, slot_cell, width, local) -> None:
        """Add per-slot tallies (slot-major, `width` entries per slot) to public cells."""
        import numpy as np

        local = local.reshape(len(slot_cell), width)
        keep = slot_cell >= 0
        np.add.at(target.reshape(-1, width), slot_cell[keep], local[keep])

    def add(self, batch, column_of) -> None:
        """Tally one record batch. column_of(name) gives a group column as (per-row
        index, index -> category number or -1); column_of(("value", name)) gives the
        values as float64 (NaN: missing). Each is computed once per batch and shared."""
        import numpy as np

        q, n, w = self.query, batch.num_rows, self.width
        slot, slot_cell = self._slots(n, column_of)
        v = None
        if q.column is not None:
            lo, hi = self.plan.bounds
            v = column_of(("value", q.column))
            missing = np.isnan(v)
            v = np.clip(v, lo, hi)  # a copy: column_of's array is shared by every query
            if missing.any():  # missing or NaN values leave the row out: an extra, dropped slot
                slot = np.where(missing, len(slot_cell), slot)
                slot_cell = np.append(slot_cell, -1)
                v[missing] = 0.0
        n_slots = len(slot_cell)
        stat = q.statistic
        if stat == "count":
            self._scatter(self.counts, slot_cell, 1, np.bincount(slot, minlength=n_slots))
        elif stat == "sum":
            self._scatter(self.sums, slot_cell, 1, np.bincount(slot, weights=v, minlength=n_slots))
        elif stat == "mean":
            mid = (lo + hi) / 2
            v -= mid  # in place: v is this query's own clipped copy
            slot = slot.astype(np.intp, copy=False)  # bincount's index type: convert once for both
            self._scatter(self.sums, slot_cell, 1, np.bincount(slot, weights=v, minlength=n_slots))
            self._scatter(self.counts, slot_cell, 1, np.bincount(slot, minlength=n_slots))
        elif stat == "histogram":
            edges = self.edges
            inside = (v >= edges[0]) & (v <= edges[-1])
            # bins are [e_i, e_i+1), the last one closed: [e_n-1, e_n]
            b = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, w - 1)
            slot = np.where(inside, slot, len(slot_cell))
            slot_cell = np.append(slot_cell, -1)
            self._scatter(self.counts, slot_cell, w, np.bincount(slot * w + b, minlength=len(slot_cell) * w))
        elif stat == "quantile":
            m = w - 1
            # r = #(candidates <= x); when x is a candidate, it is candidates[r - 1].
            r = np.searchsorted(self.cands, v, side="right")
            self._scatter(self.counts, slot_cell, w, np.bincount(slot * w + r, minlength=n_slots * w))
            eq = (r >= 1) & (self.cands[np.maximum(r - 1, 0)] == v)
            self._scatter(self.eqs, slot_cell, m, np.bincount(slot[eq] * m + (r[eq] - 1), minlength=n_slots * m))
        else:
            raise ValueError(f"unknown statistic {stat!r}")

    def merge(self, other: "_CellTally") -> None:
        self.counts += other.counts
        if self.sums is not None:
            self.sums += other.sums
        if self.eqs is not None:
            self.eqs += other.eqs

    def cells(self) -> list:
        """Same shape as exact_cells."""
        stat, nc, w = self.query.statistic, self.n_cells, self.width
        if stat == "count":
            return [int(x) for x in self.counts]
        if stat == "sum":
            return [float(x) for x in self.sums]
        if stat == "mean":
            return [[float(s), int(n)] for s, n in zip(self.sums, self.counts)]
        if stat == "histogram":
            return [[int(x) for x in self.counts[i * w:(i + 1) * w]] for i in range(nc)]
        m = w - 1
        return [([int(x) for x in self.counts[i * w:(i + 1) * w]], [int(x) for x in self.eqs[i * m:(i + 1) * m]])
                for i in range(nc)]


def _group_column(array, keys):
    """A group column as (per-row index, index -> category number, -1 when missing or
    not public). A dictionary-encoded column keeps its own indices and its (small)
    dictionary is mapped once; other columns are matched row by row."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    value_set = pa.array(list(keys), type=pa.string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        dict_codes = pc.index_in(pc.cast(array.dictionary, pa.string()), value_set=value_set)
        gmap = np.append(dict_codes.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64), -1)
        indices = array.indices
        if indices.null_count:
            indices = indices.fill_null(len(gmap) - 1)  # the appended -1
        return indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False), gmap
    codes = pc.index_in(pc.cast(array, pa.string()), value_set=value_set)
    idx = codes.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32) + 1
    return idx, np.arange(-1, len(keys), dtype=np.int64)


def _values(array):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    # Nulls become NaN, which the tally leaves out, as the Polars path does.
    v = pc.cast(array, pa.float64())
    if isinstance(v, pa.ChunkedArray):
        v = v.combine_chunks()
    return v.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)  # np.clip copies


def _workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def _unit_nulls(meta, rg: int, unit: str) -> int | None:
    """Null count of the unit column in one row group, from the footer's statistics;
    None when the footer does not say."""
    group = meta.row_group(rg)
    for i in range(group.num_columns):
        chunk = group.column(i)
        if chunk.path_in_schema == unit:
            stats = chunk.statistics
            return stats.null_count if stats is not None and stats.has_null_count else None
    return None


def cell_statistics(files: list[Path], queries, plans, manifest: Manifest, *, footers=None) -> list:
    """Exact per-cell statistics of every query in one pass over the data (see the
    module docstring). Row groups are read by a small thread pool; pyarrow decodes
    and numpy tallies with the GIL released, each thread keeps its own tallies.
    `footers` (from parquet_footers(files)) saves parsing each footer again.

    Rows whose privacy unit is null are left out, as in the Polars path: the unit column
    is read only for row groups whose footer does not show it free of nulls."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if footers is None:
        footers = parquet_footers(files)
    unit = manifest.privacy_unit
    group_cols = sorted({g for q in queries for g in q.group_by})
    value_cols = sorted({q.column for q in queries if q.column is not None})
    columns = sorted(set(group_cols) | set(value_cols))
    nulls = [[_unit_nulls(meta, rg, unit) for rg in range(meta.num_row_groups)] for meta in footers]
    if not columns:
        if all(n == 0 for per_file in nulls for n in per_file):
            # only ungrouped counts, no null unit: the row count is in the Parquet footers
            rows = sum(meta.num_rows for meta in footers)
            return [[rows] for _ in queries]
        columns = [unit]

    keys = {g: [category_key(c) for c in manifest.column(g).categories] for g in group_cols}
    schema = footers[0].schema.to_arrow_schema()
    text_cols = [g for g in group_cols if _is_text(schema.field(g).type)]
    units = []
    for f, meta, per_file in zip(files, footers, nulls):
        units.extend((f, meta, rg, per_file[rg] != 0) for rg in range(meta.num_row_groups)
                     if meta.row_group(rg).num_rows)
    n_threads = min(_workers(), len(units) or 1)
    # Fewer row groups than threads (e.g. one file of one row group): let pyarrow decode
    # the columns of a row group in parallel instead.
    column_threads = len(units) < _workers() and len(columns) > 1
    local = threading.local()
    all_tallies: list[list[_CellTally]] = []
    lock = threading.Lock()

    def tallies() -> list[_CellTally]:
        if not hasattr(local, "tallies"):
            local.tallies = [_CellTally(q, p, manifest) for q, p in zip(queries, plans)]
            with lock:
                all_tallies.append(local.tallies)
        return local.tallies

    def work(item) -> None:
        path, meta, rg, may_have_nulls = item
        mine = tallies()
        read = columns if not may_have_nulls or unit in columns else columns + [unit]
        # Text group columns come back as dictionary indices: no per-row string decoding.
        pf = pq.ParquetFile(path, metadata=meta, read_dictionary=text_cols)
        for batch in pf.iter_batches(batch_size=SCAN_BATCH_ROWS, row_groups=[rg], columns=read,
                                     use_threads=column_threads):
            if may_have_nulls and batch.column(unit).null_count:
                batch = batch.filter(pc.is_valid(batch.column(unit)))
            memo: dict = {}

            def column_of(col):
                if col not in memo:
                    if isinstance(col, tuple):
                        memo[col] = _values(batch.column(col[1]))
                    else:
                        memo[col] = _group_column(batch.column(col), keys[col])
                return memo[col]

            for t in mine:
                t.add(batch, column_of)

    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        for _ in pool.map(work, units):
            pass
    if not all_tallies:  # no rows at all
        all_tallies.append([_CellTally(q, p, manifest) for q, p in zip(queries, plans)])
    first = all_tallies[0]
    for other in all_tallies[1:]:
        for a, b in zip(first, other):
            a.merge(b)
    return [t.cells() for t in first]

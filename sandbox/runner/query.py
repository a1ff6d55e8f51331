"""Query mode inside the container: aggregate raw Parquet with Polars, release
through OpenDP.

Trusted code. The accounting (sensitivities, scales) comes from sandbox.core.dp,
computed from the spec and manifest only; every measurement is then checked with
OpenDP's own privacy map before it sees a number. The output shape (every public
cell, zeros filled) never depends on the data.

Two aggregation paths compute the same exact per-cell statistics:
- the scan path (`cell_statistics`): one pass over the Parquet row groups for all
  queries, reading only the needed columns, group columns as Parquet dictionary
  indices (no string decoding), each public category mapped to its cell number once
  per dictionary and the cells tallied with numpy.bincount. Memory is one batch per
  thread whatever the dataset size. Used whenever no unit has to be truncated.
- the Polars path (`aggregate_frame`): lazy scan + filters + clamp + group-by, with
  the per-unit truncation windows. Used when ingest did not verify the bound and
  some unit really has more than k rows, and for group columns of other types.
"""
from __future__ import annotations

import functools
import itertools
import json
import math
import os
import tempfile
from pathlib import Path

from sandbox.core import dp as dpacc
from sandbox.core.manifest import Manifest, parse_manifest
from sandbox.core.specs.query import Query, parse_query_spec

RESULT_FILE = "result.json"


class PrivacyAccountingError(RuntimeError):
    """OpenDP's privacy map disagrees with the closed-form accounting: release nothing."""


# ------------------------------------------------------------------ entry points

def run_query_job(job: dict, *, seed_for_tests=None) -> dict:
    """Run a query job and write out_dir/result.json. Returns the result dict.

    OpenDP draws from the OS CSPRNG and cannot be seeded; a seed is refused rather
    than faked, so tests check the noise statistically instead."""
    if seed_for_tests is not None:
        raise ValueError("OpenDP's samplers cannot be seeded; test noise statistically instead")
    if job.get("kind") != "query":
        raise ValueError(f"not a query job: kind={job.get('kind')!r}")
    bound_verified = job.get("bound_verified")
    if not isinstance(bound_verified, bool):
        raise ValueError("job.bound_verified must be true or false")
    out_dir = Path(job["out_dir"])
    result = compute_release(job["spec"], job["manifest"], Path(job["data_dir"]), bound_verified=bound_verified)
    write_result(out_dir, result)
    return result


def compute_release(spec_data: dict, manifest_data: dict, data_dir: Path, *, bound_verified: bool) -> dict:
    """Aggregate and release every query; returns {"tables": [...]} (nothing written)."""
    import polars as pl

    # Re-validate: the worker validated already, but this code is the last line before raw data.
    manifest = parse_manifest(manifest_data)
    spec = parse_query_spec(spec_data, manifest)
    plans = dpacc.plan(spec, manifest)
    files = dataset_files(data_dir)
    over_limit = None if bound_verified else over_limit_units(pl.scan_parquet(files), manifest)
    truncate = over_limit is not None and over_limit.height > 0
    # Each file's footer is parsed once per job: the schema, the row counts (an ungrouped
    # count needs nothing else) and the row groups of the scan all come from it.
    footers = _footers(files)
    schema = footers[0].schema.to_arrow_schema()
    fast = [not truncate and scan_path_supports(q, manifest, schema) for q in spec.queries]
    exact: list = [None] * len(spec.queries)
    if any(fast):
        idx = [i for i, ok in enumerate(fast) if ok]
        cells = cell_statistics(files, [spec.queries[i] for i in idx], [plans[i] for i in idx], manifest,
                                footers=footers)
        for i, c in zip(idx, cells):
            exact[i] = c
    slow = [i for i, ok in enumerate(fast) if not ok]
    if slow:
        scan = pl.scan_parquet(files)
        frames = [aggregate_frame(scan, spec.queries[i], plans[i], manifest, over_limit=over_limit) for i in slow]
        if truncate:
            # Truncation windows are memory-hungry: run them one query at a time.
            aggregates = [f.collect(engine="streaming") for f in frames]
        else:
            aggregates = pl.collect_all(frames, engine="streaming")
        for i, agg in zip(slow, aggregates):
            exact[i] = exact_cells(spec.queries[i], plans[i], agg, manifest)
    tables = [release_cells(q, p, e, manifest) for q, p, e in zip(spec.queries, plans, exact)]
    return {"tables": tables}


def write_result(out_dir: Path, result: dict) -> None:
    """Write result.json atomically, so a failure leaves nothing in out_dir."""
    body = json.dumps(result, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".result-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the host side may read as another uid
        os.replace(tmp, out_dir / RESULT_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dataset_files(data_dir: Path) -> list[Path]:
    files = sorted(Path(data_dir).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no *.parquet files in {data_dir}")
    return files


def scan_dataset(data_dir: Path):
    import polars as pl

    return pl.scan_parquet(dataset_files(data_dir))


def _footers(files: list[Path]) -> list:
    """Each file's Parquet footer (pyarrow FileMetaData), in file order."""
    import pyarrow.parquet as pq

    return [pq.read_metadata(f) for f in files]


# ------------------------------------------------------------------ scan path

SCAN_BATCH_ROWS = 1 << 20


def _is_text(typ) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    return pa.types.is_string(typ) or pa.types.is_large_string(typ)


def _group_type_ok(typ) -> bool:
    # Types whose pyarrow text form equals Polars' (and so _category_key's): text, integers, booleans.
    import pyarrow as pa

    return _is_text(typ) or pa.types.is_integer(typ) or pa.types.is_boolean(typ)


def scan_path_supports(query: Query, manifest: Manifest, schema) -> bool:
    """True when cell_statistics computes exactly what aggregate_frame would."""
    import pyarrow as pa

    names = set(schema.names)
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


def cell_statistics(files: list[Path], queries, plans, manifest: Manifest, *, footers=None) -> list:
    """Exact per-cell statistics of every query in one pass over the data (see the
    module docstring). Row groups are read by a small thread pool; pyarrow decodes
    and numpy tallies with the GIL released, each thread keeps its own tallies.
    `footers` (from _footers(files)) saves parsing each footer again."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    if footers is None:
        footers = _footers(files)
    group_cols = sorted({g for q in queries for g in q.group_by})
    value_cols = sorted({q.column for q in queries if q.column is not None})
    columns = sorted(set(group_cols) | set(value_cols))
    if not columns:  # only ungrouped counts: the row count is in the Parquet footers
        rows = sum(meta.num_rows for meta in footers)
        return [[rows] for _ in queries]

    keys = {g: [_category_key(c) for c in manifest.column(g).categories] for g in group_cols}
    schema = footers[0].schema.to_arrow_schema()
    text_cols = [g for g in group_cols if _is_text(schema.field(g).type)]
    units = []
    for f, meta in zip(files, footers):
        units.extend((f, meta, rg) for rg in range(meta.num_row_groups) if meta.row_group(rg).num_rows)
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

    def work(unit) -> None:
        path, meta, rg = unit
        mine = tallies()
        # Text group columns come back as dictionary indices: no per-row string decoding.
        pf = pq.ParquetFile(path, metadata=meta, read_dictionary=text_cols)
        for batch in pf.iter_batches(batch_size=SCAN_BATCH_ROWS, row_groups=[rg], columns=columns,
                                     use_threads=column_threads):
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


# ------------------------------------------------------------------ aggregation

def _category_key(value) -> str:
    # Group columns are compared as text; Polars renders booleans as true/false.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def over_limit_units(scan, manifest: Manifest):
    """Units with more than k rows in the raw data (usually none): one streaming
    group-by on the unit column, so the per-query work below touches only their rows."""
    import polars as pl

    return (scan.group_by(pl.col(manifest.privacy_unit).alias("__unit")).agg(pl.len().alias("__rows"))
            .filter(pl.col("__rows") > manifest.max_rows_per_unit).select("__unit")
            .collect(engine="streaming"))


def aggregate_frame(scan, query: Query, plan: dpacc.QueryPlan, manifest: Manifest, *, over_limit=None):
    """The lazy aggregation of one query: exact per-cell statistics of the rows that
    pass public filters, with values clamped. `over_limit` (from over_limit_units) is
    given when ingest did not verify the bound; those units keep k rows each."""
    import polars as pl

    truncate = over_limit is not None and over_limit.height > 0

    groups = [f"__g{i}" for i in range(len(query.group_by))]
    exprs = [pl.col(g).cast(pl.String).alias(alias) for g, alias in zip(query.group_by, groups)]
    filters = [pl.col(alias).is_in([_category_key(c) for c in manifest.column(g).categories])
               for g, alias in zip(query.group_by, groups)]
    if query.column is not None:
        lo, hi = plan.bounds
        exprs.append(pl.col(query.column).cast(pl.Float64, strict=False).alias("__v"))
        # Missing or NaN values leave the row out (a row-level rule, so stability holds).
        filters.append(pl.col("__v").is_not_null() & pl.col("__v").is_not_nan())
    if not exprs:
        # An ungrouped count reads no column, and a zero-column frame has no rows: keep one
        # (it also gives the truncation's row hash something to hash).
        exprs.append(pl.col(manifest.privacy_unit).alias("__row"))
    if truncate:
        exprs.append(pl.col(manifest.privacy_unit).alias("__unit"))

    lf = scan.select(exprs)
    if filters:
        lf = lf.filter(pl.all_horizontal(filters))
    if query.column is not None:
        # + 0.0 turns -0.0 into 0.0, so hashing and sorting agree with numeric equality.
        lf = lf.with_columns(pl.col("__v").clip(lo, hi) + 0.0)
    if truncate:
        # Units within the bound pass untouched; an over-limit unit keeps the k rows whose
        # content hashes lowest, a choice that depends on that unit's rows alone (not on
        # file order or other units), so adding or removing a unit still moves <= k rows.
        within = lf.join(over_limit.lazy(), on="__unit", how="anti")
        over = (lf.join(over_limit.lazy(), on="__unit", how="semi")
                .with_columns(pl.struct(pl.all().exclude("__unit")).hash(seed=0).alias("__h"))
                .filter(pl.col("__h").rank("ordinal").over("__unit") <= manifest.max_rows_per_unit)
                .drop("__h"))
        lf = pl.concat([within, over]).drop("__unit")

    stat = query.statistic
    if stat == "count":
        aggs = [pl.len().alias("__n")]
    elif stat == "sum":
        aggs = [pl.col("__v").sum().alias("__sum")]
    elif stat == "mean":
        mid = (lo + hi) / 2
        aggs = [(pl.col("__v") - mid).sum().alias("__sum"), pl.len().alias("__n")]
    elif stat == "histogram":
        edges = pl.Series(list(query.bins), dtype=pl.Float64)
        nbins = len(query.bins) - 1
        lf = lf.filter(pl.col("__v").is_between(query.bins[0], query.bins[-1])).with_columns(
            # bins are [e_i, e_i+1), the last one closed: [e_n-1, e_n]
            (pl.lit(edges).search_sorted(pl.col("__v"), side="right").cast(pl.Int64) - 1)
            .clip(0, nbins - 1).alias("__bin"))
        groups = groups + ["__bin"]
        aggs = [pl.len().alias("__n")]
    elif stat == "quantile":
        cands = pl.Series(list(plan.candidates), dtype=pl.Float64)
        # r = #(candidates <= x); when x is a candidate, it is candidates[r - 1].
        lf = lf.with_columns(
            pl.lit(cands).search_sorted(pl.col("__v"), side="right").cast(pl.Int64).alias("__r"),
            pl.col("__v").is_in(pl.lit(cands).implode()).alias("__eq"))
        groups = groups + ["__r", "__eq"]
        aggs = [pl.len().alias("__n")]
    else:
        raise ValueError(f"unknown statistic {stat!r}")

    if groups:
        return lf.group_by(groups).agg(aggs)
    return lf.select(aggs)


def public_cells(query: Query, manifest: Manifest) -> list[tuple]:
    """Every public group cell, in manifest category order."""
    return list(itertools.product(*(manifest.column(g).categories for g in query.group_by)))


def _cell_index(query: Query, manifest: Manifest) -> dict:
    return {tuple(_category_key(v) for v in cell): i for i, cell in enumerate(public_cells(query, manifest))}


def exact_cells(query: Query, plan: dpacc.QueryPlan, agg, manifest: Manifest) -> list:
    """Turn the aggregated frame into one exact entry per public cell (zeros filled).

    count/histogram -> int counts (histogram: list per cell over bins); sum -> float;
    mean -> (shifted_sum, count); quantile -> (hist_by_right_rank, eq_counts)."""
    index = _cell_index(query, manifest)
    ng = len(query.group_by)
    n_cells = len(index)
    stat = query.statistic
    if stat == "count":
        out = [0] * n_cells
    elif stat == "sum":
        out = [0.0] * n_cells
    elif stat == "mean":
        out = [[0.0, 0] for _ in range(n_cells)]
    elif stat == "histogram":
        out = [[0] * (len(query.bins) - 1) for _ in range(n_cells)]
    else:
        m = len(plan.candidates)
        out = [([0] * (m + 1), [0] * m) for _ in range(n_cells)]
    for row in agg.iter_rows(named=True):
        key = tuple(row[f"__g{i}"] for i in range(ng))
        i = index.get(key)
        if i is None:  # cannot happen after the is_in filter; never add a cell from data
            continue
        if stat == "count":
            out[i] += int(row["__n"])
        elif stat == "sum":
            out[i] += float(row["__sum"] or 0.0)
        elif stat == "mean":
            out[i][0] += float(row["__sum"] or 0.0)
            out[i][1] += int(row["__n"])
        elif stat == "histogram":
            out[i][int(row["__bin"])] += int(row["__n"])
        else:
            r, eq, n = int(row["__r"]), int(row["__eq"]), int(row["__n"])
            hist, eqs = out[i]
            hist[r] += n
            if eq:
                eqs[r - 1] += n  # x == candidates[r - 1]
    return out


def quantile_scores(hist_by_rank: list[int], eq_counts: list[int], num: int, den: int) -> list[int]:
    """OpenDP's quantile score per candidate c_i: |den * #(x < c_i) - num * (n - #(x = c_i))|.

    hist_by_rank[r] counts rows with exactly r candidates <= x, so
    #(x < c_i) = sum(hist_by_rank[:i + 1])."""
    n = sum(hist_by_rank)
    scores = []
    lt = 0
    for i, eq in enumerate(eq_counts):
        lt += hist_by_rank[i]
        scores.append(abs(den * lt - num * (n - eq)))
    return scores


# ------------------------------------------------------------------ release

def _opendp():
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


@functools.cache
def _input_space(atom: str) -> tuple:
    """(input domain, input metric) of the measurements below. These are type descriptors
    only (no data, no scale): built once per process, since each costs ~0.3 ms in OpenDP's
    Python bindings, a third of an ungrouped count's release. The measurement itself,
    and its privacy-map check, is still built for every query."""
    dp = _opendp()
    if atom == "i64":  # integer counts
        return dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64")
    if atom == "f64":  # sums of clamped values
        return dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float)
    if atom == "u64":  # quantile scores
        return dp.vector_domain(dp.atom_domain(T="u64")), dp.linf_distance(T="u64", monotonic=False)
    raise ValueError(f"no input space for {atom!r}")


def _checked(meas, d_in, epsilon: float):
    """OpenDP's own privacy map must confirm the closed-form accounting."""
    loss = meas.map(d_in)
    if not loss <= epsilon:
        raise PrivacyAccountingError(f"privacy map gives {loss} > epsilon {epsilon} at d_in={d_in}")
    return meas


def integer_laplace(scale: float, sensitivity: int, epsilon: float):
    """Discrete Laplace on a vector of integer counts (OpenDP make_laplace, i64)."""
    dp = _opendp()
    meas = dp.m.make_laplace(*_input_space("i64"), scale=scale)
    return _checked(meas, int(sensitivity), epsilon)


def float_laplace(scale: float, sensitivity: float, epsilon: float):
    dp = _opendp()
    meas = dp.m.make_laplace(*_input_space("f64"), scale=scale)
    return _checked(meas, float(sensitivity), epsilon)


def exponential_selection(scale: float, score_sensitivity: int, epsilon: float):
    """Noisy min over non-negative integer scores (OpenDP make_noisy_max, negate): for pure DP
    OpenDP adds exponential noise (permute-and-flip), at least as accurate as Gumbel noise."""
    dp = _opendp()
    meas = dp.m.make_noisy_max(*_input_space("u64"), dp.max_divergence(), scale=scale, negate=True)
    return _checked(meas, int(score_sensitivity), epsilon)


def release_table(query: Query, plan: dpacc.QueryPlan, agg, manifest: Manifest) -> dict:
    """Release a query from its aggregated Polars frame (see aggregate_frame)."""
    return release_cells(query, plan, exact_cells(query, plan, agg, manifest), manifest)


def release_cells(query: Query, plan: dpacc.QueryPlan, exact: list, manifest: Manifest) -> dict:
    """Release a query from its exact per-cell statistics (shape as exact_cells)."""
    cells = public_cells(query, manifest)
    stat = query.statistic
    group_cols = list(query.group_by)

    if stat == "count":
        part = plan.parts[0]
        noisy = integer_laplace(part.scale, part.sensitivity, part.epsilon)(exact)
        columns = group_cols + ["count"]
        rows = [list(cell) + [int(v)] for cell, v in zip(cells, noisy)]
    elif stat == "histogram":
        part = plan.parts[0]
        flat = [c for per_cell in exact for c in per_cell]
        noisy = integer_laplace(part.scale, part.sensitivity, part.epsilon)(flat)
        nb = len(query.bins) - 1
        columns = group_cols + ["bin_lower", "bin_upper", "count"]
        rows = [list(cell) + [query.bins[b], query.bins[b + 1], int(noisy[i * nb + b])]
                for i, cell in enumerate(cells) for b in range(nb)]
    elif stat == "sum":
        part = plan.parts[0]
        noisy = float_laplace(part.scale, part.sensitivity, part.epsilon)([float(v) for v in exact])
        columns = group_cols + ["sum"]
        rows = [list(cell) + [float(v)] for cell, v in zip(cells, noisy)]
    elif stat == "mean":
        sum_part, count_part = plan.parts
        if math.fsum(p.epsilon for p in plan.parts) > plan.epsilon:
            raise PrivacyAccountingError("mean parts exceed the query's epsilon")
        noisy_sum = float_laplace(sum_part.scale, sum_part.sensitivity, sum_part.epsilon)(
            [float(s) for s, _ in exact])
        noisy_n = integer_laplace(count_part.scale, count_part.sensitivity, count_part.epsilon)(
            [int(n) for _, n in exact])
        lo, hi = plan.bounds
        mid = (lo + hi) / 2
        columns = group_cols + ["mean"]
        rows = [list(cell) + [min(hi, max(lo, mid + s / max(n, 1)))]
                for cell, s, n in zip(cells, noisy_sum, noisy_n)]
    elif stat == "quantile":
        part = plan.parts[0]
        num, den = plan.alpha
        meas = exponential_selection(part.scale, part.sensitivity, part.epsilon)
        columns = group_cols + ["quantile"]
        rows = []
        for cell, (hist, eqs) in zip(cells, exact):
            idx = meas(quantile_scores(hist, eqs, num, den))
            rows.append(list(cell) + [plan.candidates[idx]])
    else:
        raise ValueError(f"unknown statistic {stat!r}")

    table = {
        "name": query.name,
        "statistic": stat,
        "column": query.column,
        "group_by": group_cols,
        "columns": columns,
        "rows": rows,
        "epsilon": plan.epsilon,
        "mechanism": plan.mechanism,
        "noise_scale": plan.noise_scale,
        "sensitivity": plan.sensitivity,
        "expected_abs_error": plan.expected_abs_error,
        "parts": [p.to_dict() for p in plan.parts],
    }
    if query.q is not None:
        table["q"] = query.q
    return table

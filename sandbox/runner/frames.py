"""Query mode inside the box: the Parquet files, and the Polars aggregation path.

The Polars path (`aggregate_frame`): lazy scan + public filters + clamp + group-by, with
the per-unit truncation windows that bound each unit's contribution to k rows. Used when
ingest did not verify the bound and some unit really has more than k rows (see
`over_limit_units`), and for group columns the scan path (sandbox.runner.scan) does not
read. Both paths give the same exact per-cell statistics (`exact_cells`' shape).
"""
from __future__ import annotations

import itertools
import secrets
from pathlib import Path

from sandbox.core import datafiles
from sandbox.core import dp as dpacc
from sandbox.core.manifest import Manifest
from sandbox.core.specs.query import Query


# ------------------------------------------------------------------ the dataset

def dataset_files(data_dir: Path) -> list[Path]:
    """The version's Parquet files (sandbox.core.datafiles: the rule registration hashed)."""
    files = datafiles.parquet_files(data_dir)
    if not files:
        raise FileNotFoundError(f"no *.parquet files in {data_dir}")
    return files


def dataset_parts(data_dir: Path, manifest: Manifest | None, file_columns=None):
    """(files, partition columns name -> manifest type) of a dataset version. file_columns
    (the first file's column names) is read from its footer when not given."""
    files = datafiles.data_files(data_dir)
    if not files:
        raise FileNotFoundError(f"no *.parquet files in {data_dir}")
    if manifest is None or not any(f.partition for f in files):
        return files, {}
    if file_columns is None:
        import pyarrow.parquet as pq

        file_columns = pq.read_schema(files[0].path).names
    types = {c.name: c.type for c in manifest.columns}
    return files, datafiles.partition_columns(files, types, set(file_columns))


POLARS_TYPES = {"int64": "Int64", "float64": "Float64", "string": "String", "date": "Date", "bool": "Boolean"}
ARROW_TYPES = {"int64": "int64", "float64": "float64", "string": "string", "date": "date32", "bool": "bool_"}


def scan_files(files: list[datafiles.DataFile], partitions: dict):
    """One lazy frame over the files; partition columns (dataset_parts) become literal
    columns of each file's rows, typed as the manifest says. Polars' own hive inference is
    off: it types values from the data and treats a list of files differently from a folder."""
    import polars as pl

    if not partitions:
        return pl.scan_parquet([f.path for f in files], hive_partitioning=False)
    return pl.concat([pl.scan_parquet(f.path, hive_partitioning=False).with_columns(
        [pl.lit(v, dtype=getattr(pl, POLARS_TYPES[partitions[k]])).alias(k)
         for k, v in datafiles.partition_values(f, partitions).items()]) for f in files], how="vertical")


def scan_dataset(data_dir: Path, manifest: Manifest | None = None):
    """The dataset as one lazy frame, with its partition columns when the manifest is given."""
    return scan_files(*dataset_parts(data_dir, manifest))


def with_partition_columns(batch, values: dict, partitions: dict):
    """A pyarrow RecordBatch or Table with the partition columns appended (constant per file)."""
    import pyarrow as pa

    for key, typ in partitions.items():
        batch = batch.append_column(key, pa.repeat(pa.scalar(values[key], getattr(pa, ARROW_TYPES[typ])()),
                                                   batch.num_rows))
    return batch


def parquet_footers(files: list[Path]) -> list:
    """Each file's Parquet footer (pyarrow FileMetaData), in file order."""
    import pyarrow.parquet as pq

    return [pq.read_metadata(f) for f in files]


# ------------------------------------------------------------------ aggregation

def category_key(value) -> str:
    # Group columns are compared as text; Polars renders booleans as true/false.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def row_filter(where: tuple, manifest: Manifest):
    """A query's row filters as one Polars predicate (all must hold; a null value passes
    none, as in SQL). Categorical columns compare as text (category_key), numeric ones as floats."""
    import polars as pl

    preds = []
    for column, op, values in where:
        if manifest.column(column).kind == "categorical":
            col = pl.col(column).cast(pl.String)
            hit = col.is_in([category_key(v) for v in values])
            preds.append(hit if op in ("=", "in") else (~hit & col.is_not_null()))
            continue
        col = pl.col(column).cast(pl.Float64, strict=False)
        if op == "between":
            pred = col.is_between(values[0], values[1])
        else:
            v = values[0]
            pred = {"=": col == v, "!=": col != v, "<": col < v, "<=": col <= v, ">": col > v, ">=": col >= v}[op]
        preds.append(pred & col.is_not_nan())
    return pl.all_horizontal(preds)


def over_limit_units(scan, manifest: Manifest):
    """Units with more than k rows in the raw data (usually none): one streaming
    group-by on the unit column, so the per-query work below touches only their rows.
    Rows with a null unit are not a unit: every query drops them (aggregate_frame)."""
    import polars as pl

    return (scan.filter(pl.col(manifest.privacy_unit).is_not_null())
            .group_by(pl.col(manifest.privacy_unit).alias("__unit")).agg(pl.len().alias("__rows"))
            .filter(pl.col("__rows") > manifest.max_rows_per_unit).select("__unit")
            .collect(engine="streaming"))


def aggregate_frame(scan, query: Query, plan: dpacc.QueryPlan, manifest: Manifest, *, over_limit=None,
                    order_seed: int | None = None):
    """The lazy aggregation of one query: exact per-cell statistics of the rows that
    pass public filters, with values clamped. `over_limit` (from over_limit_units) is
    given when ingest did not verify the bound; those units keep k rows each, chosen by
    a random order from `order_seed` (a secret drawn per run when not given)."""
    import polars as pl

    truncate = over_limit is not None and over_limit.height > 0
    # Rows whose unit is null belong to no known person, so no contribution bound can hold
    # for them (joins never match a null key): they are dropped, here, in the scan path and
    # by the block splitter. Dropping (rather than one "null unit") makes them count for
    # nothing at all, the same rule ingest's enforce_unit_bound applies.
    scan = scan.filter(pl.col(manifest.privacy_unit).is_not_null())
    if query.where:
        # Before any bounding: a row-level filter keeps a subset of each unit's rows, so a
        # unit still contributes at most k rows and every sensitivity holds unchanged.
        scan = scan.filter(row_filter(query.where, manifest))

    groups = [f"__g{i}" for i in range(len(query.group_by))]
    exprs = [pl.col(g).cast(pl.String).alias(alias) for g, alias in zip(query.group_by, groups)]
    filters = [pl.col(alias).is_in([category_key(c) for c in manifest.column(g).categories])
               for g, alias in zip(query.group_by, groups)]
    if query.column is not None:
        lo, hi = plan.bounds
        exprs.append(pl.col(query.column).cast(pl.Float64, strict=False).alias("__v"))
        # Missing or NaN values leave the row out (a row-level rule, so stability holds).
        filters.append(pl.col("__v").is_not_null() & pl.col("__v").is_not_nan())
    if not exprs:
        # An ungrouped count reads no column, and a zero-column frame has no rows: keep one.
        exprs.append(pl.col(manifest.privacy_unit).alias("__row"))
    if truncate:
        exprs.append(pl.col(manifest.privacy_unit).alias("__unit"))

    lf = scan.select(exprs)
    if filters:
        lf = lf.filter(pl.all_horizontal(filters))
    if query.column is not None:
        # + 0.0 turns -0.0 into 0.0, so grouping and sorting agree with numeric equality.
        lf = lf.with_columns(pl.col("__v").clip(lo, hi) + 0.0)
    if truncate:
        # Units within the bound pass untouched; an over-limit unit keeps the k rows that come
        # first in a random order drawn per run from a secret seed, never from the data: a
        # uniformly random k of its rows, independent of the other units, so adding or removing
        # a unit still moves <= k rows, and no value is favoured (keeping the lowest content
        # hashes biased means by several times the noise).
        seed = secrets.randbits(64) if order_seed is None else order_seed
        within = lf.join(over_limit.lazy(), on="__unit", how="anti")
        over = (lf.join(over_limit.lazy(), on="__unit", how="semi")
                .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).shuffle(seed=seed).alias("__h"))
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
    return {tuple(category_key(v) for v in cell): i for i, cell in enumerate(public_cells(query, manifest))}


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

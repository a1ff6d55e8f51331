"""Query mode inside the container: aggregate raw Parquet with Polars, release
through OpenDP.

Trusted code. The accounting (sensitivities, scales) comes from sandbox.domain.dp,
computed from the spec and manifest only; every measurement is then checked with
OpenDP's own privacy map before it sees a number. The data work per query is one
lazy scan (projection pushdown) + row filters + clamp + one group-by; the output
shape (every public cell, zeros filled) never depends on the data.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import tempfile
from pathlib import Path

from sandbox.domain import dp as dpacc
from sandbox.domain.manifest import Manifest, parse_manifest
from sandbox.domain.spec import Query, parse_query_spec

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
    scan = scan_dataset(data_dir)
    over_limit = None if bound_verified else over_limit_units(scan, manifest)
    frames = [aggregate_frame(scan, q, p, manifest, over_limit=over_limit) for q, p in zip(spec.queries, plans)]
    if over_limit is not None and over_limit.height > 0:
        # Truncation windows are memory-hungry: run them one query at a time.
        aggregates = [f.collect(engine="streaming") for f in frames]
    else:
        aggregates = pl.collect_all(frames, engine="streaming")
    tables = [release_table(q, p, agg, manifest) for q, p, agg in zip(spec.queries, plans, aggregates)]
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


def scan_dataset(data_dir: Path):
    import polars as pl

    files = sorted(Path(data_dir).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no *.parquet files in {data_dir}")
    return pl.scan_parquet(files)


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


def _checked(meas, d_in, epsilon: float):
    """OpenDP's own privacy map must confirm the closed-form accounting."""
    loss = meas.map(d_in)
    if not loss <= epsilon:
        raise PrivacyAccountingError(f"privacy map gives {loss} > epsilon {epsilon} at d_in={d_in}")
    return meas


def integer_laplace(scale: float, sensitivity: int, epsilon: float):
    """Discrete Laplace on a vector of integer counts (OpenDP make_laplace, i64)."""
    dp = _opendp()
    meas = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=scale)
    return _checked(meas, int(sensitivity), epsilon)


def float_laplace(scale: float, sensitivity: float, epsilon: float):
    dp = _opendp()
    meas = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float),
                             scale=scale)
    return _checked(meas, float(sensitivity), epsilon)


def exponential_selection(scale: float, score_sensitivity: int, epsilon: float):
    """Gumbel noisy min over non-negative integer scores (OpenDP make_noisy_max, negate)."""
    dp = _opendp()
    meas = dp.m.make_noisy_max(dp.vector_domain(dp.atom_domain(T="u64")),
                               dp.linf_distance(T="u64", monotonic=False), dp.max_divergence(),
                               scale=scale, negate=True)
    return _checked(meas, int(score_sensitivity), epsilon)


def release_table(query: Query, plan: dpacc.QueryPlan, agg, manifest: Manifest) -> dict:
    cells = public_cells(query, manifest)
    exact = exact_cells(query, plan, agg, manifest)
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

"""Query mode inside the box: aggregate raw Parquet exactly, then release through
OpenDP measurements (sandbox.privacy).

Trusted code. The accounting (sensitivities, scales) comes from sandbox.core.dp,
computed from the spec and manifest only; every measurement is then checked with
OpenDP's own privacy map before it sees a number. The output shape (every public
cell, zeros filled) never depends on the data.

Two aggregation paths compute the same exact per-cell statistics: the scan path
(sandbox.runner.scan, one pass over the row groups for all queries) whenever no unit
has to be truncated, else the Polars path (sandbox.runner.frames, with the per-unit
truncation windows), which also takes group columns of other types.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import tempfile
from pathlib import Path

from sandbox.core import dp as dpacc
from sandbox.core.manifest import Manifest, parse_manifest
from sandbox.core.specs.query import Query, parse_query_spec
from sandbox.privacy.measurements import (PrivacyAccountingError, exponential_selection, float_laplace,
    integer_laplace)
from sandbox.runner import frames, scan

RESULT_FILE = "result.json"


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
    files = frames.dataset_files(data_dir)
    # Each file's footer is parsed once per job: the schema, the row counts (an ungrouped
    # count needs nothing else) and the row groups of the scan all come from it.
    footers = frames.parquet_footers(files)
    schema = footers[0].schema.to_arrow_schema()
    # Partition columns (hive folders) are read by the Polars path only: the scan path
    # reads columns of the files, so a query on a partition column is not "fast".
    lazy = frames.scan_files(*frames.dataset_parts(data_dir, manifest, schema.names))
    over_limit = None if bound_verified else frames.over_limit_units(lazy, manifest)
    truncate = over_limit is not None and over_limit.height > 0
    # One secret per run orders the rows an over-limit unit may keep (frames.aggregate_frame).
    order_seed = secrets.randbits(64)
    fast = [not truncate and scan.scan_path_supports(q, manifest, schema) for q in spec.queries]
    exact: list = [None] * len(spec.queries)
    if any(fast):
        idx = [i for i, ok in enumerate(fast) if ok]
        cells = scan.cell_statistics(files, [spec.queries[i] for i in idx], [plans[i] for i in idx], manifest,
                                     footers=footers)
        for i, c in zip(idx, cells):
            exact[i] = c
    slow = [i for i, ok in enumerate(fast) if not ok]
    if slow:
        lazies = [frames.aggregate_frame(lazy, spec.queries[i], plans[i], manifest, over_limit=over_limit,
                                         order_seed=order_seed) for i in slow]
        if truncate:
            # Truncation windows are memory-hungry: run them one query at a time.
            aggregates = [f.collect(engine="streaming") for f in lazies]
        else:
            aggregates = pl.collect_all(lazies, engine="streaming")
        for i, agg in zip(slow, aggregates):
            exact[i] = frames.exact_cells(spec.queries[i], plans[i], agg, manifest)
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


# ------------------------------------------------------------------ release

def quantile_scores(hist_by_rank: list[int], eq_counts: list[int], num: int, den: int, shift: int = 0) -> list[int]:
    """OpenDP's quantile score per candidate c_i: |den * #(x < c_i) - num * (n - #(x = c_i))|.

    hist_by_rank[r] counts rows with exactly r candidates <= x, so
    #(x < c_i) = sum(hist_by_rank[:i + 1]). A public `shift` (score units: den per row) aims
    the score shift/den rows lower (positive) or higher (negative): an interval end. A
    constant inside |.| leaves the sensitivity as it is."""
    n = sum(hist_by_rank)
    scores = []
    lt = 0
    for i, eq in enumerate(eq_counts):
        lt += hist_by_rank[i]
        scores.append(abs(den * lt - num * (n - eq) + shift))
    return scores


def quantile_end_scores(hist_by_rank: list[int], eq_counts: list[int], num: int, den: int, shift: int,
                        side: str) -> list[int]:
    """Scores of an interval end's selection (side "lower" or "upper"), shift = dp.quantile_bound_shift.

    The end aims T = 2 * shift score units below (above) the quantile, so a candidate on the
    wrong side scores more than T. The outermost candidate (L for the lower end, U for the
    upper) is always on the right side; when the target lies past it (a small cell: too few rows
    to go T below) it scores `shift`, not its distance, so the wrong side still sits `shift`
    above it and is picked with probability <= 2.5%. Past the target it keeps its distance, as
    max(shift, distance): a max with a constant adds nothing to the sensitivity."""
    lower = side == "lower"
    target = 2 * shift
    scores = quantile_scores(hist_by_rank, eq_counts, num, den, target if lower else -target)
    at = 0 if lower else -1
    # Signed distance past the target: OpenDP's score without |.|, shifted (see quantile_scores).
    n = sum(hist_by_rank)
    lt = hist_by_rank[0] if lower else n - hist_by_rank[-1]
    f = den * lt - num * (n - eq_counts[at])
    beyond = -(f + target) if lower else f - target
    scores[at] = max(shift, beyond)
    return scores


def release_table(query: Query, plan: dpacc.QueryPlan, agg, manifest: Manifest) -> dict:
    """Release a query from its aggregated Polars frame (see frames.aggregate_frame)."""
    return release_cells(query, plan, frames.exact_cells(query, plan, agg, manifest), manifest)


def release_cells(query: Query, plan: dpacc.QueryPlan, exact: list, manifest: Manifest) -> dict:
    """Release a query from its exact per-cell statistics (shape as frames.exact_cells)."""
    cells = frames.public_cells(query, manifest)
    stat = query.statistic
    group_cols = list(query.group_by)

    # Every value is followed by its 95% interval (dpacc.count_cell, sum_cell, mean_cell: from
    # the public scale and the released noisy numbers only, post-processing; a quantile's ends
    # are noisy selections of their own, dpacc.quantile_cell).
    if stat == "count":
        part = plan.parts[0]
        noisy = integer_laplace(part.scale, part.sensitivity, part.epsilon)(exact)
        columns = group_cols + ["count", "count_lower", "count_upper"]
        rows = [list(cell) + dpacc.count_cell(int(v), part.scale) for cell, v in zip(cells, noisy)]
    elif stat == "histogram":
        part = plan.parts[0]
        flat = [c for per_cell in exact for c in per_cell]
        noisy = integer_laplace(part.scale, part.sensitivity, part.epsilon)(flat)
        nb = len(query.bins) - 1
        columns = group_cols + ["bin_lower", "bin_upper", "count", "count_lower", "count_upper"]
        rows = [list(cell) + [query.bins[b], query.bins[b + 1]] + dpacc.count_cell(int(noisy[i * nb + b]), part.scale)
                for i, cell in enumerate(cells) for b in range(nb)]
    elif stat == "sum":
        part = plan.parts[0]
        noisy = float_laplace(part.scale, part.sensitivity, part.epsilon)([float(v) for v in exact])
        columns = group_cols + ["sum", "sum_lower", "sum_upper"]
        rows = [list(cell) + dpacc.sum_cell(float(v), part.scale) for cell, v in zip(cells, noisy)]
    elif stat == "mean":
        sum_part, count_part = plan.parts
        if math.fsum(p.epsilon for p in plan.parts) > plan.epsilon:
            raise PrivacyAccountingError("mean parts exceed the query's epsilon")
        noisy_sum = float_laplace(sum_part.scale, sum_part.sensitivity, sum_part.epsilon)(
            [float(s) for s, _ in exact])
        noisy_n = integer_laplace(count_part.scale, count_part.sensitivity, count_part.epsilon)(
            [int(n) for _, n in exact])
        columns = group_cols + ["mean", "mean_lower", "mean_upper"]
        rows = [list(cell) + dpacc.mean_cell(float(s), int(n), plan)
                for cell, s, n in zip(cells, noisy_sum, noisy_n)]
    elif stat == "quantile":
        if math.fsum(p.epsilon for p in plan.parts) > plan.epsilon:
            raise PrivacyAccountingError("quantile parts exceed the query's epsilon")
        num, den = plan.alpha
        value, lower, upper = (exponential_selection(p.scale, p.sensitivity, p.epsilon) for p in plan.parts)
        # Each end aims far enough off that its own noise keeps it on its side (public shift).
        shift = dpacc.quantile_bound_shift(plan.parts[1].scale, len(plan.candidates))
        columns = group_cols + ["quantile", "quantile_lower", "quantile_upper"]
        rows = []
        cands = plan.candidates
        for cell, (hist, eqs) in zip(cells, exact):
            v = cands[value(quantile_scores(hist, eqs, num, den))]
            lo = cands[lower(quantile_end_scores(hist, eqs, num, den, shift, "lower"))]
            hi = cands[upper(quantile_end_scores(hist, eqs, num, den, shift, "upper"))]
            rows.append(list(cell) + dpacc.quantile_cell(v, lo, hi))
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
        "interval": plan.interval,
        "parts": [p.to_dict() for p in plan.parts],
    }
    if query.q is not None:
        table["q"] = query.q
    return table

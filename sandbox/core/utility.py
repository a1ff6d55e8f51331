"""Utility preview: a query's 95% interval next to the size of a typical cell, from public
metadata only (issue 17).

The interval's half-width (sandbox.core.intervals, the measure the release carries) says how far
the noise strays; whether that is much depends on how big the released numbers are. The real
row count is computed from the data (Dataset.rows) and must never reach an operator, so the
size of a typical cell is an ASSUMPTION from the public manifest:

- rows: the manifest's `default_rows` (what the mock data is generated with; parse_manifest
  puts 1,000,000 where a manifest names none), before any row filter (`where`), and assuming
  the rows already respect max_rows_per_unit (the runner drops a unit's rows beyond it).
- count / histogram: rows spread evenly over the public cells (categories x bins), at least
  one row per cell. The noise is in rows (sensitivity max_rows_per_unit), so the ratio is
  the half-width over that count.
- sum: that count times a typical value, the midpoint of the clamp bounds (a quarter of their
  width when the midpoint is 0).
- mean, quantile: relative to the width of the clamp bounds (the range a value may take);
  a mean's half-width is estimated for a cell of the typical count, a quantile's from its
  rank interval over that count, the values spread evenly over the bounds. Capped at 100%:
  the released interval never leaves the bounds.

Real cells are uneven: small ones have a larger relative error than the typical one.
Nothing here imports a framework; the controller adds the result to the dry run.
"""
from __future__ import annotations

from sandbox.core.dp import QueryPlan
from sandbox.core.intervals import ERROR_BAR_LEVEL, noise_halfwidth
from sandbox.core.manifest import Manifest

DEFAULT_ROWS = 1_000_000   # parse_manifest's default_rows when a manifest names none
NOTICEABLE = 0.10          # above: the error is a visible part of a typical cell
SWAMPED = 0.50             # above: the noise may swamp the signal
LEVELS = ("ok", "noticeable", "swamped")


def assumed_rows(manifest: Manifest) -> int:
    """The public row count the preview assumes (never the registered Dataset.rows)."""
    rows = manifest.default_rows
    if isinstance(rows, bool) or not isinstance(rows, int) or rows <= 0:
        return DEFAULT_ROWS
    return rows


def typical_count(rows: int, cells: int) -> float:
    """Rows in a typical cell: the rows spread evenly over the cells, at least one."""
    return max(1.0, rows / max(1, cells))


def typical_value(lower: float, upper: float) -> float:
    """A typical clamped value for a sum: the bounds' midpoint, or a quarter of their width
    when that is 0 (bounds symmetric around 0)."""
    return abs(lower + upper) / 2 or (upper - lower) / 4


def level_of(relative: float | None) -> str:
    if relative is None or relative <= NOTICEABLE:
        return "ok"
    return "noticeable" if relative <= SWAMPED else "swamped"


def _mean_halfwidth(plan: QueryPlan, n: float) -> float:
    """Approximate 95% half-width of a mean over n rows: the shifted sum's and the count's
    97.5% noise (as mean_cell takes them), the sum's values a quarter of the range off the midpoint."""
    sum_part, count_part = plan.parts
    lo, hi = plan.bounds
    level = 1 - (1 - ERROR_BAR_LEVEL) / 2
    ts = noise_halfwidth("laplace", sum_part.scale, level) or 0.0
    tc = noise_halfwidth("discrete_laplace", count_part.scale, level) or 0.0
    return (ts + tc * (hi - lo) / 4) / max(n - tc, 1.0)


def _quantile_relative(plan: QueryPlan, n: float) -> float:
    """The quantile interval's rank half-width as a share of the cell's rows (values spread
    evenly over the bounds, so the same share of the range), plus one step of the grid."""
    iv = plan.interval or plan.interval_of()
    ranks = iv.get("bound_shift_rows") or iv.get("rank_error_rows") or 0.0
    step = 1 / max(1, len(plan.candidates or ()) - 1)
    return ranks / n + step


def advice(plan: QueryPlan) -> list[str]:
    """What would shrink the relative error: codes the renderers word."""
    out = []
    if plan.group_by:
        out += ["fewer_groups", "coarser_categories"]
    if plan.statistic == "histogram":
        out.append("fewer_bins")
    out.append("more_epsilon")
    return out


def preview(plan: QueryPlan, manifest: Manifest) -> dict:
    """The utility preview of one query: its 95% half-width next to a typical cell.

    reference: "count" (rows), "sum" (the cell's sum) or "range" (the bounds' width);
    relative: halfwidth / reference_value; level: ok, noticeable or swamped."""
    rows = assumed_rows(manifest)
    n = typical_count(rows, plan.cells)
    hw = (plan.interval or {}).get("halfwidth")
    if plan.statistic in ("count", "histogram"):
        reference, ref = "count", n
    elif plan.statistic == "sum":
        reference, ref = "sum", n * typical_value(*plan.bounds)
    else:
        lo, hi = plan.bounds
        reference, ref = "range", hi - lo
        if plan.statistic == "mean":
            hw = _mean_halfwidth(plan, n)
        else:
            hw = _quantile_relative(plan, n) * ref
        hw = min(hw, ref)
    relative = hw / ref if hw is not None and ref > 0 else None
    level = level_of(relative)
    return {"assumed_rows": rows, "typical_cell_rows": n, "reference": reference, "reference_value": ref,
            "halfwidth": hw, "relative": relative, "level": level,
            "advice": advice(plan) if level != "ok" else [],
            "basis": "public metadata: the manifest's default_rows spread evenly over the public cells"}

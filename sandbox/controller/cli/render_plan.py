"""What `sandbox submit --dry-run` prints: cost, balance before and after, and one line per
query with its 95% interval and its utility (the interval next to a typical cell, from public
metadata; core/utility.py), or a program's blocks and outputs. Split from render.py, which has
the other commands' tables and the shared helpers."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text as Styled

from sandbox.controller.cli.render import _t, _table, num, reason_text

def _error_text(q: dict) -> str:
    """The query's 95% interval half-width where one number holds for every cell; a mean's is
    per cell, so the utility preview's estimate for a typical cell ("≈"); a quantile's value
    interval is per cell too, and its rank error is shown here."""
    iv = q.get("interval") or {}
    if iv.get("halfwidth") is not None:
        return f"± {num(iv['halfwidth'])}"
    u = q.get("utility") or {}
    if q.get("statistic") == "mean" and u.get("halfwidth") is not None:
        return f"≈ ± {num(u['halfwidth'])}"
    if iv.get("rank_error_rows") is not None:
        return f"± {num(iv['rank_error_rows'])} ranks"
    return "per cell" if iv else "-"


def _percent(r: float) -> str:
    return "<0.1%" if r < 0.001 else f"{num(100 * r, 2 if r < 0.1 else 3)}%"


def _relative_text(u: dict) -> str:
    """The half-width next to a typical cell (core/utility.py): "30%"; a mean's or a quantile's
    next to the width of its bounds: "53% range"."""
    if u.get("relative") is None:
        return "-"
    return _percent(u["relative"]) + (" range" if u.get("reference") == "range" else "")


WARNINGS = {"noticeable": "large", "swamped": "SWAMPED"}
ADVICE = {"fewer_groups": "fewer groups or coarser categories", "fewer_bins": "fewer, wider bins",
          "more_epsilon": "more ε"}


def _utility_notes(queries: list[dict]) -> list:
    """What to do about each flagged query, and the assumption every relative figure rests on."""
    notes = []
    for q in queries:
        u = q.get("utility") or {}
        if u.get("level") in WARNINGS:
            what = ("the noise may swamp the signal" if u["level"] == "swamped"
                    else "the interval is a large part of a typical cell")
            todo = ", ".join(ADVICE[a] for a in u.get("advice") or [] if a in ADVICE and a != "coarser_categories")
            notes.append(Styled(f"{q.get('name')}: {what}; try {todo}.",
                                style="red" if u["level"] == "swamped" else "yellow"))
    rows = next((q["utility"].get("assumed_rows") for q in queries if q.get("utility")), None)
    if rows is not None:
        notes.append(Styled(f"relative: half-width / a typical cell, assumed: {num(rows)} rows (public default_rows, "
                            "else 1,000,000) spread evenly over the cells; means, quantiles: / the bounds' range",
                            style="dim"))
    return notes


def _balance_row(t: Table, label: str, b: dict | None) -> None:
    b = b or {}
    jobs = b.get("period_jobs_available")
    t.add_row(label, num(b.get("period_available")), num(b.get("lifetime_available")),
              num(b.get("delta_available")), "-" if jobs is None else str(jobs))


def dry_run(doc: dict):
    parts = []
    cost = doc.get("cost") or {}
    head = Styled()
    ok = doc.get("admitted", True)
    head.append("Dry run: nothing reserved. ", style="bold")
    head.append("Would be admitted.\n" if ok else "Would be refused:\n", style="green" if ok else "red")
    for r in doc.get("reasons") or []:
        head.append(f"  - {reason_text(r)}\n")
    head.append(f"Cost: ε {num(cost.get('epsilon'))}, δ {num(cost.get('delta'))}")
    parts.append(head)
    t = _table("balance (available)", "ε period", "ε lifetime", "δ", "jobs left")
    _balance_row(t, "before", doc.get("balance_before"))
    _balance_row(t, "after", doc.get("balance_after"))
    parts.append(t)
    if doc.get("dataset_cap_blocks"):
        parts.append(Styled("The dataset-wide cap is (nearly) used up: jobs may be refused until it refreshes.",
                          style="yellow"))
    queries = doc.get("queries")
    if isinstance(queries, list) and queries:
        level = next((q["interval"].get("level") for q in queries if q.get("interval")), 0.95)
        # The warning column only when a query has one: the table stays one line per query.
        warned = any((q.get("utility") or {}).get("level") in WARNINGS for q in queries)
        q_t = _table("query", "statistic", "ε", f"{100 * level:g}% interval", "relative", *(["warning"] * warned))
        for q in queries:
            by = q.get("group_by") or []
            stat = str(q.get("statistic") or "") + (f" of {q['column']}" if q.get("column") else "")
            stat += f" by {', '.join(by)}" if by else ""
            u = q.get("utility") or {}
            q_t.add_row(_t(q.get("name")), _t(stat), num(q.get("epsilon")), _t(_error_text(q)),
                        _t(_relative_text(u)), *([_t(WARNINGS.get(u.get("level"), ""))] * warned))
        parts.append(q_t)
        parts.extend(_utility_notes(queries))
        parts.append(Styled("interval: value ± half-width, as the release states it (means, quantiles: per cell "
                            "in the release; here ≈ a typical cell's, a quantile's rank error)", style="dim"))
    elif isinstance(queries, dict) and "k" in queries:
        parts.append(_program_plan(queries))
    elif isinstance(queries, dict) and queries.get("outputs") is not None:
        names = ", ".join(str(o.get("name")) for o in queries["outputs"])
        parts.append(Styled(f"Outputs for review: {names}\n{queries.get('privacy') or ''}".rstrip()))
    parts.append(Styled("`--json` prints the whole plan (mechanisms, noise scales, quantile candidates).",
                      style="dim"))
    return Group(*parts)


def _program_plan(p: dict):
    """A program job's outputs (sample-and-aggregate over k blocks): noise per output and its
    95% error, a median's as ranks among the k block values."""
    t = _table("output", "aggregate", "ε", "95% interval")
    for o in p.get("outputs") or []:
        err = (f"± {num(o['error_95'])}" if o.get("error_95") is not None else
               f"± {num(o['rank_error_95'])} ranks of {p.get('k')}" if o.get("rank_error_95") is not None else "-")
        t.add_row(_t(o.get("name")), _t(o.get("aggregate")), num(o.get("epsilon")), err)
    return Group(Styled(f"{p.get('k')} blocks; noise only: the estimator's own error on about 1/k of the data "
                      "comes on top"), t)

"""The disclosure rules on the tables and models trusted code computed (pure domain code).

sandbox.runner.tables computes each declared table with, per cell, its rows, contributing
privacy units and, per magnitude column, the per-unit contributions' total, two largest,
number negative and whether every row agrees; and fits each model with its residual degrees
of freedom. That box holds no operator code, so these statistics decide the release here:
threshold (ACRO safe_threshold, the policy's min_group_size), zeros, n-k dominance (2, 0.9),
p% (0.10), all values the same, negative values, model degrees of freedom (10). ACRO's
mitigations are offered per table: `suppress` empties the cells that fail a rule (primary
suppression, as ACRO), `round` rounds every value to a base and, as in ACRO, sends the table
to review; rounding does not hide a dominated magnitude, so dominance failures stay failures.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

from sandbox.core.errors import Text
from sandbox.core.release.checks import FAIL, NEEDS_REVIEW, PASS, Check, fmt_cells, fmt_names
from sandbox.core.release.differencing import ReleasedAggregate, check_differencing
from sandbox.core.release.tables import (DEFAULT_MIN_DF, DEFAULT_NK, DEFAULT_P_PERCENT, DEFAULT_THRESHOLD, CellStats,
    _check_dof, nk_dominated, p_dominated)


@dataclass(frozen=True)
class Rules:
    """The rule parameters; ACRO's defaults (acro/default.yaml) unless the policy says more."""
    threshold: int = DEFAULT_THRESHOLD
    nk: tuple[int, float] = DEFAULT_NK
    p_percent: float = DEFAULT_P_PERCENT
    min_df: int = DEFAULT_MIN_DF
    zeros_are_disclosive: bool = True
    forbidden_columns: frozenset = frozenset()


@dataclass
class Judged:
    """One trusted output: the file as released, its checks, the trusted statistics kept for
    compliance, and (tables with a count) the released counts for later differencing."""
    file_name: str
    content: str | None
    checks: list[Check]
    statistics: dict = field(default_factory=dict)
    released: ReleasedAggregate | None = None


# ------------------------------------------------------------------ tables

def cell_stats(result: dict) -> tuple[dict, dict]:
    """(key -> CellStats of contributing units, column -> key -> CellStats of its per-unit
    contributions) from a table result of the trusted box."""
    units, magnitude = {}, {}
    for cell in result["cells"]:
        key = tuple(cell["key"])
        units[key] = CellStats(n_contributors=cell["units"], total=float(cell["rows"]))
        for col, m in cell["magnitude"].items():
            magnitude.setdefault(col, {})[key] = CellStats(
                n_contributors=m["n"], total=m["total"], top1=m["top1"], top2=m["top2"] if m["n"] > 1 else 0.0,
                n_negative=m["n_negative"])
    return units, magnitude


def judge_table(table, result: dict, rules: Rules, *, version: str, previous: list[ReleasedAggregate]) -> Judged:
    """Apply every rule to a trusted table (`table` a specs.computations.TableSpec, `result` what
    the trusted box computed for it) and build the CSV that would be released."""
    name = table.file_name
    if "error" in result:
        return Judged(name, None, [Check(f"computed:{name}", FAIL,
                                         Text("trusted code could not compute {name} ({error}); "
                                              "change the table (fewer groups, other filters) and resubmit",
                                              name=name, error=str(result["error"])))])
    units, magnitude = cell_stats(result)
    threshold, (n, k) = rules.threshold, rules.nk
    failing: dict[str, list] = {}   # rule -> keys of the cells it fails
    # A magnitude column counts the units with a value there; a cell can have many units but
    # few behind one column's sum.
    failing["min_cell_count"] = [key for key, s in units.items() if any(
        0 < n < threshold for n in [s.n_contributors] + [m[key].n_contributors for m in magnitude.values()])]
    failing["zero_cells"] = ([key for key, s in units.items() if s.n_contributors == 0]
                             if rules.zeros_are_disclosive else [])
    negative, same = [], []
    nk_fail, p_fail = [], []
    for col, stats in magnitude.items():
        for key, s in stats.items():
            if s.n_contributors == 0:
                continue
            if s.has_negative:
                negative.append(key)   # ACRO: dominance is not defined there; a person judges
                continue
            if nk_dominated(s, n, k):
                nk_fail.append(key)
            if p_dominated(s, rules.p_percent):
                p_fail.append(key)
        same += [tuple(c["key"]) for c in result["cells"] if c["magnitude"].get(col, {}).get("all_same")
                 and c["magnitude"][col]["n"] > 0]
    if magnitude:
        failing["dominance_nk"], failing["dominance_p"] = _unique(nk_fail), _unique(p_fail)
        failing["values_same"] = _unique(same)

    suppressed = set()
    if table.mitigation == "suppress":
        suppressed = {key for keys in failing.values() for key in keys}
    checks = [_forbidden(name, [*table.group_by, *(a.column for a in table.aggregates if a.column)], rules),
              Check(f"computed:{name}", PASS,
                    Text("computed by trusted code from the raw data in a box without operator code: "
                         "{n} cells of ({grouping})", n=len(units),
                         grouping=", ".join(table.group_by) or Text("total")))]
    for rule, keys in failing.items():
        checks.append(_rule_check(rule, name, keys, table, threshold, n, k, rules.p_percent))
    if magnitude:
        checks.append(Check(f"negative_values:{name}", NEEDS_REVIEW if negative else PASS,
                            Text("{n} cell(s) involve negative contributions: "
                                 "{cells}; dominance rules are not defined there, so judge whether "
                                 "one contributor can be inferred", n=len(_unique(negative)),
                                 cells=fmt_cells(_unique(negative))) if negative
                            else Text("no negative contributions")))
    if suppressed:
        checks.append(Check(f"suppression:{name}", NEEDS_REVIEW,
                            Text("{n} cell(s) were suppressed (left empty): {cells}. "
                                 "Only cells failing a rule are suppressed (primary suppression, as ACRO); confirm "
                                 "that the other cells and totals released elsewhere do not let them be recomputed",
                                 n=len(suppressed), cells=fmt_cells(sorted(suppressed, key=str)))))
    if table.mitigation == "round":
        checks.append(Check(f"rounding:{name}", NEEDS_REVIEW,
                            Text("every value is rounded to a multiple of {base}; as in ACRO, a rounded table "
                                 "goes to review: confirm the rounding hides the small cells", base=table.round_base)))
    content, released_counts = _csv(table, result, suppressed)
    released = None
    if any(a.statistic == "count" for a in table.aggregates):
        released = ReleasedAggregate(version, tuple(table.group_by), released_counts, label=name)
        d = check_differencing(released, previous, threshold)
        checks.append(Check(f"differencing:{name}", d.status, d.explanation))
    stats = {"source": "trusted", "group_by": list(table.group_by), "rows_without_unit": None,
             "cells": [{"key": c["key"], "rows": c["rows"], "units": c["units"], "magnitude": c["magnitude"],
                        "suppressed": tuple(c["key"]) in suppressed,
                        "failed": sorted(r for r, keys in failing.items() if tuple(c["key"]) in set(keys))}
                       for c in result["cells"]]}
    return Judged(name, content, checks, stats, released)


def _unique(keys: list) -> list:
    return list(dict.fromkeys(keys))


# What the failing cells of a rule are (after "N cell(s)"), and the rule's pass text. Percentages
# are formatted before they reach Text: a translation keeps only the {names}.
_RULE_TEXT = {
    "min_cell_count": lambda t, n, k, p: Text("have fewer than {threshold} contributing units", threshold=t),
    "zero_cells": lambda t, n, k, p: Text("are empty (zero): a zero reveals that everyone in the group shares the "
                                          "other attributes"),
    "dominance_nk": lambda t, n, k, p: Text("are dominated: the largest {n} units make up {k} or more of the total",
                                            n=n, k=format(k, ".0%")),
    "dominance_p": lambda t, n, k, p: Text("are dominated: the others add up to less than {p} of the largest unit",
                                           p=format(p, ".0%")),
    "values_same": lambda t, n, k, p: Text("hold one value for every row, so each contributor's value is revealed"),
}

_PASS_TEXT = {
    "min_cell_count": lambda t, n, k, p: Text("every cell has {threshold} or more contributing units (or none)",
                                              threshold=t),
    "zero_cells": lambda t, n, k, p: Text("no empty (zero) cell"),
    "dominance_nk": lambda t, n, k, p: Text("no cell is dominated by its largest {n} units ({k} rule)",
                                            n=n, k=format(k, ".0%")),
    "dominance_p": lambda t, n, k, p: Text("no cell is dominated under the p-percent rule ({p})", p=format(p, ".0%")),
    "values_same": lambda t, n, k, p: Text("no cell holds one value for every row"),
}


def _rule_check(rule: str, name: str, keys: list, table, threshold: int, n: int, k: float, p: float) -> Check:
    if not keys:
        return Check(f"{rule}:{name}", PASS, _PASS_TEXT[rule](threshold, n, k, p))
    listed = dict(n=len(keys), what=_RULE_TEXT[rule](threshold, n, k, p), cells=fmt_cells(keys))
    if table.mitigation == "suppress":
        return Check(f"{rule}:{name}", PASS, Text("{n} cell(s) {what}: {cells}; they are suppressed (left empty) "
                                                  "in the released table", **listed))
    if table.mitigation == "round" and rule in ("min_cell_count", "zero_cells"):
        return Check(f"{rule}:{name}", NEEDS_REVIEW,
                     Text("{n} cell(s) {what}: {cells}; their values are rounded to a multiple of "
                          "{base}, so a reviewer must judge whether that hides them", base=table.round_base, **listed))
    return Check(f"{rule}:{name}", FAIL, Text("{n} cell(s) {what}: {cells}; merge categories, filter differently, "
                                              "or declare mitigation: suppress for this table", **listed))


def _forbidden(name: str, columns: list[str], rules: Rules) -> Check:
    wanted = {c.strip().lower() for c in rules.forbidden_columns}
    hits = [c for c in columns if c.strip().lower() in wanted]
    if hits:
        return Check(f"forbidden_columns:{name}", FAIL, Text("column(s) {names} are forbidden by the dataset's "
                                                             "policy; remove them from the computation",
                                                             names=fmt_names(hits)))
    return Check(f"forbidden_columns:{name}", PASS, Text("no column the policy forbids"))


def _csv(table, result: dict, suppressed: set) -> tuple[str, dict]:
    """The released table (long form: group-by values, then one column per aggregate) and its
    released counts by key (the first count column; suppressed cells absent)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(result["columns"])
    count_at = next((i for i, a in enumerate(table.aggregates) if a.statistic == "count"), None)
    counts = {}
    for cell in result["cells"]:
        key = tuple(cell["key"])
        values = [None] * len(cell["values"]) if key in suppressed else [
            _rounded(v, table.round_base) if table.mitigation == "round" else v for v in cell["values"]]
        if count_at is not None and values[count_at] is not None:
            counts[key] = float(values[count_at])
        w.writerow(list(cell["key"]) + ["" if v is None else _fmt(v) for v in values])
    return buf.getvalue(), counts


def _rounded(v, base: int):
    if v is None:
        return None
    r = round(v / base) * base
    return int(r) if isinstance(v, int) or float(r).is_integer() else r


def _fmt(v) -> str:
    # Sums of whole numbers print as whole numbers; other floats as Python's shortest exact form.
    if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53:
        return str(int(v))
    return repr(v) if isinstance(v, float) else str(v)


def released_aggregate(spec, name: str, content: str, version: str) -> ReleasedAggregate | None:
    """The released counts of a trusted table as the differencing check keeps them (the first
    count column, by the table's group-by; suppressed cells absent), read back from the
    released CSV; None for any other output. For compliance to record at release, next to
    the free-form frequency tables (gate.frequency_aggregate)."""
    table = next((t for t in spec.tables if t.file_name == name), None)
    if table is None or not any(a.statistic == "count" for a in table.aggregates):
        return None
    width = len(table.group_by)
    at = width + next(i for i, a in enumerate(table.aggregates) if a.statistic == "count")
    rows = list(csv.reader(io.StringIO(content)))[1:]
    cells = {tuple(r[:width]): float(r[at]) for r in rows if len(r) > at and r[at] != ""}
    return ReleasedAggregate(version, tuple(table.group_by), cells, label=name)


# ------------------------------------------------------------------ models

def judge_model(model, result: dict, rules: Rules) -> Judged:
    """Degrees of freedom from statsmodels (in the trusted box), the units behind each level of
    a categorical regressor (a dummy of few units is close to their own values), convergence."""
    name = model.file_name
    if "error" in result:
        return Judged(name, None, [Check(f"computed:{name}", FAIL,
                                         Text("trusted code could not fit {name} ({error}); check the "
                                              "regressors (collinear columns, a category no row has) and resubmit",
                                              name=name, error=str(result["error"])))])
    checks = [_forbidden(name, [model.dependent, *model.regressors], rules),
              Check(f"computed:{name}", PASS, Text("fitted by trusted code (statsmodels {family}) on "
                                                   "{nobs} rows in a box without operator code",
                                                   family=model.family, nobs=result["nobs"]))]
    dof = _check_dof(int(result["df_resid"]) if result["df_resid"] is not None else None, rules.min_df)
    checks.append(Check(f"{dof.name}:{name}", dof.status, dof.explanation))
    small = [(r, level) for r, levels in result["levels"].items() for level, units in levels.items()
             if 0 < units < rules.threshold]
    checks.append(Check(f"regressor_levels:{name}", FAIL if small else PASS,
                        Text("{n} level(s) of categorical regressors have fewer than {threshold} units: "
                             "{cells}; their coefficients are close to those units' own values. Merge "
                             "categories or filter them out", n=len(small), threshold=rules.threshold,
                             cells=fmt_cells(small)) if small else
                        Text("every level of a categorical regressor has {threshold} or more units (or none)",
                             threshold=rules.threshold)))
    if result.get("warnings"):
        checks.append(Check(f"fit_warnings:{name}", NEEDS_REVIEW,
                            Text("statsmodels warned while fitting ({warnings}); judge whether the "
                                 "estimates are meaningful", warnings=", ".join(result["warnings"]))))
    released = {k: result[k] for k in ("family", "dependent", "regressors", "nobs", "df_model", "df_resid",
                                       "coefficients", "fit")}
    content = json.dumps({"model": model.name, **released}, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    stats = {"source": "trusted", "units": result["units"], "levels": result["levels"],
             "df_resid": result["df_resid"], "warnings": result.get("warnings", [])}
    return Judged(name, content, checks, stats)

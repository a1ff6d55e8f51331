"""Reviewed mode's trusted computations inside the box: the tables and models a reviewed job
declares, computed from the raw data with the per-cell statistics the disclosure rules need.

This box holds no operator code (a run of its own, apart from the operator's program), so
what it writes to /out/trusted.json is trusted by the host: the released values and the
statistics that decide whether they may be released come from the same computation.

Rows whose privacy unit is null belong to no known unit: they are left out of every table and
model, as in query mode (sandbox.runner.frames.aggregate_frame); their number is reported to
compliance. Counting them as units would inflate contributor counts.
"""
from __future__ import annotations

import itertools
import json
import math
import warnings
from pathlib import Path

from sandbox.core.specs.reviewed import TRUSTED_RESULT_FILE as RESULT_FILE
TOP_N = 2   # largest per-unit contributions kept per cell: ACRO's n-k rule uses n=2, the p% rule two


def run_trusted_tables(job: dict) -> dict:
    from sandbox.core.manifest import parse_manifest
    from sandbox.core.specs.computations import parse_computations
    from sandbox.runner.reviewed import load_frame

    manifest = parse_manifest(job["manifest"])
    # Re-validated here: this code is the last line before the raw data.
    tables, models = parse_computations(job["computations"], manifest)
    unit = manifest.privacy_unit
    needed = {unit}
    for t in tables:
        needed |= set(t.group_by) | {a.column for a in t.aggregates if a.column} | {p.column for p in t.where}
    for m in models:
        needed |= {m.dependent, *m.regressors} | {p.column for p in m.where}
    df = load_frame(job, manifest, sorted(needed))
    missing_unit = df[unit].isna()
    result = {"rows_without_unit": int(missing_unit.sum()), "tables": [], "models": []}
    df = df[~missing_unit]
    for t in tables:
        result["tables"].append(_guarded(t.name, lambda: table_result(df, t, manifest)))
    for m in models:
        result["models"].append(_guarded(m.name, lambda: model_result(df, m, manifest)))
    out = Path(job.get("out_dir", "/out")) / RESULT_FILE
    out.write_text(json.dumps(result, allow_nan=False, ensure_ascii=False), encoding="utf-8")
    return result


def _guarded(name: str, compute) -> dict:
    # One table or model that cannot be computed (a singular design, perfect separation) must
    # not take the others down; only the exception's type is kept (its text may quote data).
    try:
        return compute()
    except Exception as e:  # noqa: BLE001
        return {"name": name, "error": type(e).__name__}


def _filtered(df, where, manifest):
    import pandas as pd

    mask = pd.Series(True, index=df.index)
    for p in where:
        col = df[p.column]
        if manifest.column(p.column).kind == "date":
            col = pd.to_datetime(col, errors="coerce")
            value = pd.Timestamp(p.value)
        else:
            value = p.value
        if p.op == "in":
            m = col.isin(list(value))
        elif p.op == "not_in":
            m = ~col.isin(list(value)) & col.notna()
        else:
            m = {"==": col.eq, "!=": col.ne, "<": col.lt, "<=": col.le, ">": col.gt, ">=": col.ge}[p.op](value)
            m = m & col.notna()
        mask &= m.fillna(False).astype(bool)
    return df[mask]


def _num(x):
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def table_result(df, table, manifest) -> dict:
    """Every public cell (the product of the group-by columns' categories, zeros included) with
    its values and statistics: rows, contributing units and, per magnitude aggregate, the
    per-unit contributions' total, two largest, number negative, and whether all rows agree."""
    unit = manifest.privacy_unit
    d = _filtered(df, table.where, manifest)
    keys = list(table.group_by)
    cats = [list(manifest.column(g).categories) for g in keys]
    for g, c in zip(keys, cats):
        d = d[d[g].isin(c)]   # a value outside the public categories is no cell of a released table
    if not keys:
        d = d.assign(__all=0)
        keys, cats = ["__all"], [[0]]
    grouped = d.groupby(keys, sort=False, dropna=False)
    rows = grouped.size()
    units = grouped[unit].nunique()
    magnitudes = {}
    for a in table.aggregates:
        if a.column is None or a.column in magnitudes:
            continue
        dx = d[d[a.column].notna()]
        per_unit = dx.groupby(keys + [unit], sort=False)[a.column].sum().rename("v").reset_index()
        per_unit = per_unit.sort_values("v", ascending=False, kind="stable")
        by_cell = per_unit.groupby(keys, sort=False)["v"]
        row_stats = dx.groupby(keys, sort=False)[a.column].agg(["sum", "mean", "median", "std", "min", "max"])
        magnitudes[a.column] = {"n": by_cell.size(), "total": by_cell.sum(), "top": by_cell.apply(
            lambda s: s.head(TOP_N).tolist()), "neg": by_cell.apply(lambda s: int((s < 0).sum())), "rows": row_stats}
    cells = []
    for combo in itertools.product(*cats):
        k = combo if len(keys) > 1 else combo[0]
        n_rows = int(rows.get(k, 0))
        cell = {"key": [] if table.group_by == () else list(combo), "rows": n_rows, "units": int(units.get(k, 0)),
                "values": [], "magnitude": {}}
        for a in table.aggregates:
            if a.column is None:
                cell["values"].append(n_rows)
                continue
            m = magnitudes[a.column]
            present = k in m["rows"].index
            cell["values"].append(_num(m["rows"].loc[k, a.statistic]) if present else None)
            if a.column not in cell["magnitude"]:
                top = list(m["top"].get(k, [])) if present else []
                cell["magnitude"][a.column] = {
                    "n": int(m["n"].get(k, 0)), "total": _num(m["total"].get(k, 0.0)) or 0.0,
                    "top1": _num(top[0]) if top else 0.0, "top2": _num(top[1]) if len(top) > 1 else 0.0,
                    "n_negative": int(m["neg"].get(k, 0)),
                    "all_same": bool(present and m["rows"].loc[k, "min"] == m["rows"].loc[k, "max"])}
        cells.append(cell)
    return {"name": table.name, "group_by": list(table.group_by),
            "columns": list(table.group_by) + [a.label for a in table.aggregates], "cells": cells}


def model_result(df, model, manifest) -> dict:
    """Fit with statsmodels; residual degrees of freedom, coefficients, standard errors and fit
    statistics as statsmodels computes them, and the units behind each categorical level."""
    import pandas as pd
    import statsmodels.api as sm

    unit = manifest.privacy_unit
    d = _filtered(df, model.where, manifest)[[unit, model.dependent, *model.regressors]].dropna()
    parts, levels = [], {}
    for r in model.regressors:
        col = manifest.column(r)
        if col.kind == "categorical":
            cat = pd.Categorical(d[r], categories=list(col.categories))
            parts.append(pd.get_dummies(cat, prefix=r, drop_first=True, dtype=float).set_index(d.index))
            levels[r] = {str(c): int(d.loc[cat == c, unit].nunique()) for c in col.categories}
        else:
            parts.append(d[[r]].astype(float))
    x = sm.add_constant(pd.concat(parts, axis=1), has_constant="add")
    y = d[model.dependent].astype(float)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if model.family == "ols":
            fit = sm.OLS(y, x).fit()
        else:
            fit = (sm.Logit if model.family == "logit" else sm.Probit)(y, x).fit(disp=0)
    ci = fit.conf_int()
    coefficients = [{"term": str(term), "coef": _num(fit.params[term]), "std_err": _num(fit.bse[term]),
                     "statistic": _num(fit.tvalues[term]), "p_value": _num(fit.pvalues[term]),
                     "ci_lower": _num(ci.loc[term, 0]), "ci_upper": _num(ci.loc[term, 1])} for term in fit.params.index]
    if model.family == "ols":
        fitstats = {"r_squared": fit.rsquared, "adj_r_squared": fit.rsquared_adj, "f_statistic": fit.fvalue,
                    "f_p_value": fit.f_pvalue, "log_likelihood": fit.llf, "aic": fit.aic, "bic": fit.bic}
    else:
        fitstats = {"pseudo_r_squared": fit.prsquared, "log_likelihood": fit.llf, "ll_null": fit.llnull,
                    "llr_p_value": fit.llr_pvalue, "aic": fit.aic, "bic": fit.bic}
    return {"name": model.name, "family": model.family, "dependent": model.dependent,
            "regressors": list(model.regressors), "nobs": int(fit.nobs), "units": int(d[unit].nunique()),
            "df_model": _num(fit.df_model), "df_resid": _num(fit.df_resid), "coefficients": coefficients,
            "fit": {k: _num(v) for k, v in fitstats.items()}, "levels": levels,
            "warnings": sorted({w.category.__name__ for w in caught})}

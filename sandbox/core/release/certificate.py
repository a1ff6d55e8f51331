"""What a release certificate says about each released statistic, in its own words.

The certificate hashes result.json, but a reader of the certificate alone should still learn,
per released table, which mechanism made the numbers, with what noise scale and epsilon, and
how the 95% interval next to each value was made. The facts come from the released tables
(written by the trusted runner from the plan in sandbox.core.dp, then checked by the gate),
so the certificate states the same measure as the release and the cost preview.
"""
from __future__ import annotations

import json

MECHANISM_WORDS = {
    "discrete_laplace": "OpenDP discrete Laplace noise",
    "laplace": "OpenDP Laplace noise",
    "exponential": "OpenDP noisy-min selection (exponential mechanism) over a public candidate grid",
}

_VALUE = {"count": "count", "histogram": "count", "sum": "sum", "mean": "mean", "quantile": "quantile"}


def released_statistics(result_text: str | bytes | None, queries: list[dict]) -> list[dict]:
    """One entry per released query table: the statistic, its mechanism and noise, and its 95%
    interval method, in spec order. [] when there is no readable result.json (nothing to say)."""
    try:
        tables = {t["name"]: t for t in json.loads(result_text or "")["tables"]}
    except (ValueError, TypeError, KeyError):
        return []
    out = []
    for q in queries:
        t = tables.get(q.get("name"))
        if isinstance(t, dict):
            out.append(_entry(q, t))
    return out


def _entry(query: dict, t: dict) -> dict:
    stat = query["statistic"]
    value = _VALUE.get(stat, stat)
    interval = dict(t.get("interval") or {})
    noise = [{"part": p.get("name"), "mechanism": p.get("mechanism"), "epsilon": p.get("epsilon"),
              "noise_scale": p.get("noise_scale"), "sensitivity": p.get("sensitivity")}
             for p in t.get("parts") or []]
    entry = {"table": t.get("name"), "statistic": stat, "column": query.get("column"),
             "group_by": list(query.get("group_by") or []), "epsilon": t.get("epsilon"),
             "mechanism": t.get("mechanism"), "noise": noise,
             "interval": {"level": interval.get("level"), "columns": [f"{value}_lower", f"{value}_upper"],
                          **{k: interval[k] for k in ("halfwidth", "rank_error_rows", "bound_shift_rows")
                             if interval.get(k) is not None},
                          "method": interval.get("method")},
             "description": describe(query, t)}
    if query.get("q") is not None:
        entry["q"] = query["q"]
    return entry


def _num(v) -> str:
    return "?" if v is None else f"{float(v):.6g}"


def describe(query: dict, t: dict) -> str:
    """One paragraph per table: what was computed, the noise, the interval."""
    stat = query["statistic"]
    col = query.get("column")
    by = query.get("group_by") or []
    what = {"count": "Count of rows", "histogram": f"Histogram of {col} (bin counts)", "sum": f"Sum of {col}",
            "mean": f"Mean of {col}", "quantile": f"Quantile q={query.get('q')} of {col}"}.get(stat, stat)
    what += f" per cell of {', '.join(by)}" if by else ""
    if query.get("where"):
        what += ", over the rows passing the job's filters"
    parts = t.get("parts") or []
    noise = "; ".join(f"{p.get('name')}: {MECHANISM_WORDS.get(p.get('mechanism'), p.get('mechanism'))}, "
                      f"scale {_num(p.get('noise_scale'))}, sensitivity {_num(p.get('sensitivity'))}, "
                      f"epsilon {_num(p.get('epsilon'))}" for p in parts)
    iv = t.get("interval") or {}
    level = f"{100 * float(iv.get('level') or 0.95):g}%"
    if stat in ("count", "histogram"):
        how = (f"released count +/- {_num(iv.get('halfwidth'))} (the discrete Laplace noise's {level} quantile); "
               "negative counts released as 0 and the interval clipped at 0 (post-processing)")
    elif stat == "sum":
        how = f"released sum +/- {_num(iv.get('halfwidth'))} (the Laplace noise's {level} quantile)"
    elif stat == "mean":
        how = ("approximate: per cell, the extremes of midpoint + sum/count over the 97.5% intervals of the noisy "
               "shifted sum and the noisy count (union bound), clamped to the public bounds")
    elif stat == "quantile":
        how = (f"approximate: per cell, two more noisy selections aimed {_num(iv.get('bound_shift_rows'))} rows "
               "below and above the quantile's rank, each on its side with >= 97.5% up to the candidate grid "
               "and ties (union bound), widened to contain the value; the value's rank is within "
               f"{_num(iv.get('rank_error_rows'))} rows of the best candidate's at {level}")
    else:
        how = str(iv.get("method") or "none")
    return (f"{what}, epsilon {_num(t.get('epsilon'))}. Noise: {noise or '-'}. "
            f"{level} interval ({_VALUE.get(stat, stat)}_lower, {_VALUE.get(stat, stat)}_upper): {how}.")

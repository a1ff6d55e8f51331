"""Chart geometry for inline SVG, drawn by the templates: plain arithmetic, no Flask.

Bars of released tables carry error bars from the mechanism's public noise scale
(sandbox/core/intervals.py), so a chart shows nothing the release does not."""
from __future__ import annotations

import math

from sandbox.core.intervals import noise_halfwidth

PALETTE = ("#1f6feb", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#e67700", "#0b7285")


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round axis ticks (1, 2 or 5 times a power of ten) inside [lo, hi]."""
    raw = (hi - lo) / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def release_chart(t: dict) -> dict:
    """A released table plus what its chart needs: a label, a value and an error bar per cell."""
    stat = t.get("statistic")
    cols = t.get("columns", [])
    groups = len(t.get("group_by") or [])
    half = noise_halfwidth(t.get("mechanism", ""), float(t.get("noise_scale") or 0))
    # The value follows the keys (and a histogram's bin edges); its released interval, when
    # the table has one, gives the error bar (a mean's is per cell).
    at = groups + (2 if stat == "histogram" else 0)
    has_interval = len(cols) >= at + 3 and str(cols[at + 1]).endswith("_lower")
    bars = []
    for r in t.get("rows", []):
        label = " / ".join(str(x) for x in r[:groups])
        if stat == "histogram":
            label = (label + " " if label else "") + f"[{r[groups]:g}, {r[groups + 1]:g})"
        value = float(r[at] if at < len(r) else r[-1])
        # The released interval as it is (a mean's or quantile's is not symmetric), else +/- half.
        lo, hi = (float(r[at + 1]), float(r[at + 2])) if has_interval else (value - (half or 0), value + (half or 0))
        err = max(value - lo, hi - value) if has_interval else half
        bars.append({"label": label or t.get("name"), "value": value, "err": err, "lo": lo, "hi": hi})
    return {**t, "columns": cols, "bars": bars, "halfwidth": half, "chart": bar_chart(bars)}


def bar_chart(bars: list[dict]) -> dict:
    """Geometry of a horizontal bar chart with error bars."""
    if not bars:
        return {"height": 0, "rows": []}
    lows = [b.get("lo", b["value"] - (b["err"] or 0)) for b in bars] + [0.0]
    highs = [b.get("hi", b["value"] + (b["err"] or 0)) for b in bars] + [0.0]
    lo, hi = min(lows), max(highs)
    if hi == lo:
        hi = lo + 1
    label_w, plot_w, row_h, top = 190, 480, 18, 22
    # Room right of the plot for the longest value as the page prints it (grouped, 2 decimals, at
    # about 7 px a character in the 11 px font): a fixed width cut "105,410,494.46" to "105,410,494".
    value_w = 7 * max(len(f"{b['value']:,.2f}") for b in bars) + 16

    def x(v):
        return label_w + (v - lo) / (hi - lo) * plot_w

    rows = []
    for i, b in enumerate(bars):
        y = top + i * row_h
        x0, x1 = sorted((x(0), x(b["value"])))
        row = {"y": y, "ymid": y + row_h / 2 - 2, "x": x0, "w": max(1.0, x1 - x0), "label": b["label"][:28],
               "value": b["value"], "vx": label_w + plot_w + 6}
        if b["err"]:
            row.update({"ex0": x(b.get("lo", b["value"] - b["err"])), "ex1": x(b.get("hi", b["value"] + b["err"]))})
        rows.append(row)
    ticks = [{"x": x(v), "v": v} for v in nice_ticks(lo, hi)]
    return {"height": top + len(bars) * row_h + 8, "width": label_w + plot_w + 6 + value_w, "rows": rows, "zero": x(0),
            "ticks": ticks, "top": top, "bottom": top + len(bars) * row_h}


def consumption_chart(periods: list[dict], per_period: float, all_time_label: str = "all time") -> dict:
    """Grouped bars: epsilon charged (solid) and reserved (light) per operator per period,
    with the per-period allowance as a line. A period starting "all" is labelled `all_time_label`."""
    if not periods:
        return {"rows": []}
    starts = sorted({p["period_start"] for p in periods})
    ops = sorted({p["operator"] for p in periods})
    top_v = max([per_period] + [p["epsilon_charged"] + max(0.0, p["epsilon_reserved"]) for p in periods]) or 1
    left, plot_h, group_w, bar_w, top = 50, 180, max(60, 24 * len(ops) + 20), 20, 12
    width = left + group_w * len(starts) + 20

    def y(v):
        return top + plot_h - v / top_v * plot_h

    bars, labels = [], []
    for gi, start in enumerate(starts):
        gx = left + gi * group_w + 10
        labels.append({"x": gx, "text": start[:10] if start != "all" else all_time_label})
        for oi, op in enumerate(ops):
            p = next((p for p in periods if p["period_start"] == start and p["operator"] == op), None)
            if p is None:
                continue
            charged, reserved = p["epsilon_charged"], max(0.0, p["epsilon_reserved"])
            bx = gx + oi * (bar_w + 4)
            bars.append({"x": bx, "y": y(charged), "h": y(0) - y(charged), "color": PALETTE[oi % len(PALETTE)],
                         "title": f"{op}: {charged:g}", "ry": y(charged + reserved), "rh": y(charged) - y(charged + reserved)})
    ticks = [{"y": y(v), "v": v} for v in nice_ticks(0.0, top_v)]
    return {"rows": bars, "labels": labels, "legend": [(op, PALETTE[i % len(PALETTE)]) for i, op in enumerate(ops)],
            "width": width, "height": top + plot_h + 30, "base": y(0), "limit_y": y(per_period), "left": left,
            "ticks": ticks, "top": top}

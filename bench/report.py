"""The markdown report of `bench.run` (bench/RESULTS.md): tables from the run's dict.

Kept apart from the measuring code in run.py so each reads in one sitting; `pct` is shared
with bench/latency.py and bench/load.py (imported from run.py)."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from bench.queries import ENGINE_LABEL, EPSILON, QUERIES, human_rows

def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def fmt_ms(s: float | None) -> str:
    if s is None:
        return "n/a"
    ms = s * 1000
    return f"{ms:,.0f}" if ms >= 10 else f"{ms:.1f}"


def fmt_gib(kib: int | None) -> str:
    return "n/a" if not kib else f"{kib / 2**20:.2f}"


KEPT_SECTION = "## SQL at scale"


def write_report(path: Path, r: dict) -> None:
    lines = [f"# Benchmark: DP queries vs plain Parquet scans ({'SMOKE' if r['smoke'] else 'full'} run)", ""]
    lines += [f"Run {r['started']} on {r['machine']}; {r['runs']} timed runs per query after one warm-up"
              + (f" in each of {r['rounds']} interleaved rounds (a fresh process per engine and round)"
                 if r.get("rounds", 1) > 1 else "") + ", "
              f"medians shown; epsilon = {EPSILON} per query; contribution bound k = 5 rows per person; "
              f"cost clamped to [0, 10000]. Wall time of this benchmark: {r['wall_s'] / 60:.1f} min.", ""]
    lines += ["Queries: " + "; ".join(f"{q} = {label}" for q, (label, _) in QUERIES.items()) + ".", ""]
    lines += ["Engines (each in a fresh process; time = the query call only, Parquet read included, "
              "interpreter start and imports excluded):", ""]
    for e in r["engines"]:
        lines.append(f"- **{e}**: {ENGINE_LABEL[e]}")
    lines.append("")
    if r.get("notes"):
        lines += [f"- {n}" for n in r["notes"]] + [""]

    unverified, opendp = "sandbox_unverified" in r["engines"], "opendp_context" in r["engines"]
    lines += ["## Query time (ms, median) and ratio to the faster plain scan", "",
              "| rows | query | " + " | ".join(r["engines"]) + " | best plain | sandbox verified / best plain |"
              + (" sandbox unverified / best plain |" if unverified else "")
              + (" OpenDP Context / sandbox verified |" if opendp else "")
              + (" Tumult / sandbox verified |" if "tumult" in r["engines"] else "")
              + (" SQL / best plain | SQL / JSON (verified) |" if "sandbox_sql" in r["engines"] else ""),
              "|---|---|" + "---|" * (len(r["engines"]) + 2 + unverified + opendp + ("tumult" in r["engines"])
                                     + 2 * ("sandbox_sql" in r["engines"]))]
    for size in r["sizes"]:
        res = r["results"][size]
        for q in QUERIES:
            med = {e: (statistics.median(res[e]["times"][q]) if e in res and q in res[e]["times"] else None)
                   for e in r["engines"]}
            plain = [v for e, v in med.items() if e in ("duckdb", "polars") and v is not None]
            best = min(plain) if plain else None

            def ratio(a, b):
                return f"{a / b:.2f}x" if a is not None and b else "n/a"
            lines.append(f"| {human_rows(int(size))} | {q} | " + " | ".join(fmt_ms(med[e]) for e in r["engines"])
                         + f" | {fmt_ms(best)} | {ratio(med.get('sandbox_verified'), best)} |"
                         + (f" {ratio(med.get('sandbox_unverified'), best)} |" if unverified else "")
                         + (f" {ratio(med.get('opendp_context'), med.get('sandbox_verified'))} |" if opendp else "")
                         + (f" {ratio(med.get('tumult'), med.get('sandbox_verified'))} |"
                            if "tumult" in r["engines"] else "")
                         + (f" {ratio(med.get('sandbox_sql'), best)} |"
                            f" {ratio(med.get('sandbox_sql'), med.get('sandbox_verified'))} |"
                            if "sandbox_sql" in r["engines"] else ""))
    cpu_engines = [e for e in r["engines"] if any(r["results"][s].get(e, {}).get("cpu") for s in r["sizes"])]
    if cpu_engines:
        lines += ["", "## CPU time per query (ms, median; all threads of the engine process)", "",
                  "| rows | query | " + " | ".join(cpu_engines) + " | best plain | JSON / best plain | SQL / best plain |",
                  "|---|---|" + "---|" * (len(cpu_engines) + 3)]
        for size in r["sizes"]:
            res = r["results"][size]
            for q in QUERIES:
                med = {e: (statistics.median(res[e]["cpu"][q]) if res.get(e, {}).get("cpu", {}).get(q) else None)
                       for e in cpu_engines}
                plain = [v for e, v in med.items() if e in ("duckdb", "polars") and v is not None]
                best = min(plain) if plain else None

                def cratio(a, b):
                    return f"{a / b:.2f}x" if a is not None and b else "n/a"
                lines.append(f"| {human_rows(int(size))} | {q} | " + " | ".join(fmt_ms(med[e]) for e in cpu_engines)
                             + f" | {fmt_ms(best)} | {cratio(med.get('sandbox_verified'), best)}"
                             f" | {cratio(med.get('sandbox_sql'), best)} |")
    lines += ["", "## Peak memory of each engine process (GiB, ru_maxrss, all four queries)", "",
              "| rows | " + " | ".join(r["engines"]) + " |", "|---|" + "---|" * len(r["engines"])]
    for size in r["sizes"]:
        res = r["results"][size]
        lines.append(f"| {human_rows(int(size))} | "
                     + " | ".join(fmt_gib(res[e]["maxrss_kib"]) if e in res else "n/a" for e in r["engines"]) + " |")

    lines += ["", "## Registration-time check (one-off per dataset version, sandbox/agent/ingest.py)", "",
              "| rows | version hash (s) | verify <= k rows per person (s) | bound ok | peak GiB |",
              "|---|---|---|---|---|"]
    for size, reg in r["registration"].items():
        lines.append(f"| {human_rows(int(size))} | {reg['hash_s']:.2f} | {reg['verify_s']:.2f} | {reg['ok']} | "
                     f"{fmt_gib(reg['maxrss_kib'])} |")

    if r.get("accuracy"):
        a = r["accuracy"]
        lines += ["", f"## Accuracy at {human_rows(a['rows'])} rows: MAE over {a['reps']} releases "
                  f"(per cell, vs the exact clamped value), epsilon = {EPSILON}", "",
                  "| query | " + " | ".join(a["mae"]) + " | closed-form E|error| (sandbox) |",
                  "|---|" + "---|" * (len(a["mae"]) + 1)]
        for q in QUERIES:
            expect = a.get("expected", {}).get(q)
            lines.append(f"| {q} | " + " | ".join(f"{a['mae'][e][q]:,.2f}" if q in a["mae"][e] else "n/a"
                                                   for e in a["mae"])
                         + f" | {f'{expect:.2f}' if expect is not None else 'data-dependent'} |")
        if a.get("se"):
            lines += ["", "Standard error of each MAE above (cells and releases as independent draws):", "",
                      "| query | " + " | ".join(a["se"]) + " |", "|---|" + "---|" * len(a["se"])]
            lines += [f"| {q} | " + " | ".join(f"{a['se'][e][q]:,.2f}" if q in a["se"][e] else "n/a"
                                               for e in a["se"]) + " |" for q in QUERIES]

    if r.get("docker"):
        lines += ["", "## The runner in its real container at the largest size, 2 GiB memory limit", ""]
        d = r["docker"]
        if "skipped" in d:
            lines.append(f"Skipped: {d['skipped']}")
        else:
            lines += ["| path | finished | OOM-killed | wall incl. container start (s) | runner peak RSS (GiB) |",
                      "|---|---|---|---|---|"]
            for k, v in d.items():
                lines.append(f"| {k} | {v['ok']} | {v['oom_killed']} | {v['wall_s']:.1f} | {fmt_gib(v['maxrss_kib'])} |")

    if r.get("e2e"):
        lines += ["", "## End to end: submit -> awaiting_review (1 query, real API + Celery + backend)", "",
                  "| backend | workers | jobs | p50 (s) | p95 (s) | burst | burst throughput (jobs/s) |",
                  "|---|---|---|---|---|---|---|"]
        for row in r["e2e"]:
            if "skipped" in row:
                lines.append(f"| {row['backend']} | {row.get('workers', '')} | | skipped: {row['skipped']} | | | |")
                continue
            lat = row["latencies"]
            tp = f"{row['burst'] / row['burst_s']:.2f}" if row.get("burst") else ""
            burst = f"{row['burst']} at once, all done in {row['burst_s']:.1f} s" if row.get("burst") else ""
            lines.append(f"| {row['backend']} | {row['workers']} | {len(lat)} | {pct(lat, .5):.2f} | "
                         f"{pct(lat, .95):.2f} | {burst} | {tp} |")
    if r.get("discussion"):
        lines += ["", "## Discussion", "", r["discussion"]]
    # The "SQL at scale" section (200M rows, bench/README.md) comes from separate runs: keep it.
    kept = path.read_text(encoding="utf-8").split(KEPT_SECTION, 1) if path.exists() else []
    if len(kept) == 2:
        lines += ["", KEPT_SECTION + kept[1].split("\n## ", 1)[0].rstrip()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------ main


def save(kind: str, smoke: bool, out: Path, report: dict, write_markdown) -> None:
    """The end of every benchmark: its Markdown page and the raw figures under bench/data/,
    named by kind and size, so a later run can be compared with this one."""
    write_markdown(out, report)
    data = Path(__file__).resolve().parent / "data"
    data.mkdir(exist_ok=True)
    (data / f"{kind}-{'smoke' if smoke else 'full'}.json").write_text(
        json.dumps(report, indent=1, default=str), encoding="utf-8")


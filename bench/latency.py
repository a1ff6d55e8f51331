"""`python -m bench.latency [--smoke]`: what operators and reviewers wait for, as shipped.

Every run and program block holds its worker slot for a bound fixed in advance
(core/schedule.py), so latency is the bound, not the run: this measures the product with
nothing patched (the real API, the Celery worker on the filesystem broker, SQLite, the
default Timing, slots held) against issue 12's targets:

  query    an auto-released DP query job on 1M rows, submit -> its operator sees the
           outcome: p50 <= 3 s (Docker runc and bubblewrap, one worker);
  burst    20 such jobs submitted at once with two workers: when each becomes visible;
  program  a program job with k = 100 blocks on 1M rows, submit -> compliance has it for
           review: <= 5 min on the 2-core machine (two workers, one CPU each).

Ratios are against baselines measured in the same run: the box alone (the run log's wall
time of the same jobs) and, for the design this replaced, the policy's wall time (60 s),
which every query job used to be padded to. Writes bench/LATENCY.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.report import save
from bench.run import BENCH, log, pct

QUERY = {"mode": "query", "dataset": "enterprise_registry", "purpose": "business_environment_analysis",
         "queries": [{"name": "enterprises_by_district", "statistic": "count", "group_by": ["district"],
                      "epsilon": 0.05}]}
OLD_QUERY_BOUND_SECONDS = 60  # the policy's wall time, every query's bound before calibration
TARGET_QUERY_P50, TARGET_PROGRAM = 3.0, 300.0


def _harness(backend: str, rows: dict, tmp: Path):
    from tests.integration.harness import Harness
    home = tmp / "home"
    home.mkdir(parents=True)
    env = {"SANDBOX_HOME": str(home), "SANDBOX_DATABASE_URL": f"sqlite:///{home / 'sandbox.db'}",
           "SANDBOX_BROKER_URL": "filesystem://", "SANDBOX_BACKEND": backend.split("-")[0],
           "SANDBOX_DOCKER_RUNTIME": "runc", "SANDBOX_DATASETS_DIR": str(tmp / "data")}
    return Harness(env, rows)


def _visible(op, job_id: str, timeout: float) -> tuple[float, dict]:
    """Poll as the operator until the outcome shows; returns (when, the job as seen)."""
    deadline = time.monotonic() + timeout
    while True:
        job = op.job(job_id)
        if job["state"] not in ("submitted", "awaiting_approval", "queued", "in_progress"):
            return time.monotonic(), job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still in progress for its operator")
        time.sleep(0.02)


def _box_seconds(h, job_ids: list[str]) -> list[float]:
    with h.services.parts.repo.transaction() as tx:
        return [log.wall_seconds for j in job_ids for log in tx.run_logs(j)]


def _bound(job: dict) -> float:
    return (datetime.fromisoformat(job["outcome_visible_after"]) - datetime.fromisoformat(job["created_at"])
            ).total_seconds()


def query_latency(backend: str, rows: int, jobs: int, burst: int = 0, workers: int = 1) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-latency-{backend}-") as tmp:
        h = _harness(backend, {"enterprise_registry": rows}, Path(tmp))
        h.start(workers)
        try:
            op = h.client("operator")
            first = op.submit(QUERY)["job"]["id"]
            _visible(op, first, 120)                               # warm-up, not counted
            lat, bounds, ids, states = [], [], [], []
            for _ in range(jobs):
                t0 = time.monotonic()
                job_id = op.submit(QUERY)["job"]["id"]
                t1, seen = _visible(op, job_id, 120)
                if "outcome_visible_after" not in seen:
                    raise RuntimeError(f"job {job_id} ended {seen['state']} without running: {seen.get('message')}")
                lat.append(t1 - t0)
                bounds.append(_bound(seen))
                ids.append(job_id)
                states.append(seen["state"])
            out = {"latencies": lat, "bounds": bounds, "box": _box_seconds(h, ids), "states": sorted(set(states))}
            if burst:
                t0 = time.monotonic()
                burst_ids = [op.submit(QUERY)["job"]["id"] for _ in range(burst)]
                ends = {j: _visible(op, j, 600)[0] - t0 for j in burst_ids}
                out.update(burst=burst, burst_latencies=sorted(ends.values()))
            return out
        finally:
            h.stop()


def program_latency(backend: str, rows: int, blocks: int, workers: int) -> dict:
    from tests.integration.harness import load_job
    spec = load_job("program_mean_cost.json")
    code = (Path(__file__).resolve().parent.parent / "jobs" / spec.pop("program")).read_text()
    spec.update(blocks=blocks, block_timeout_seconds=1)
    with tempfile.TemporaryDirectory(prefix=f"bench-program-{backend}-") as tmp:
        h = _harness(backend, {"health_visits": rows}, Path(tmp))
        h.start(workers)
        try:
            op = h.client("operator")
            t0 = time.monotonic()
            job = op.submit_program(spec, code)["job"]
            submitted = time.monotonic() - t0                      # admission includes the mock run
            done = h.wait_state(job["id"], {"awaiting_review", "failed"}, timeout=3600)
            review_s = time.monotonic() - t0
            with h.services.parts.repo.transaction() as tx:
                results = tx.block_results(job["id"], done["attempts"])
            return {"submit_s": submitted, "review_s": review_s, "state": done["state"],
                    "bound_s": _bound(op.job(job["id"])), "blocks": blocks, "workers": workers,
                    "block_box_s": [r.wall_seconds for r in results],
                    "defaults": sum(1 for r in results if r.reason)}
        finally:
            h.stop()


def write_report(path: Path, r: dict) -> None:
    lines = ["# Latency as shipped: slots held to calibrated bounds (issue 12, item 2)", "",
             f"Run {r['started']} on {r['machine']}; wall time of this benchmark {r['wall_s'] / 60:.1f} min. "
             "Real API, Celery worker (filesystem broker), SQLite, default Timing (core/schedule.py), "
             "every slot held to its bound. Medians and p95 of the timed jobs (one warm-up job not counted).", "",
             "## Auto-released DP query (count by district, enterprise_registry) -> visible to its operator", "",
             "| backend | rows | jobs | p50 (s) | p95 (s) | target p50 | bound (s) | box alone, median (s) "
             "| p50 / box alone | p50 / old bound (60 s) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for q in r["query"]:
        if "skipped" in q:
            lines.append(f"| {q['backend']} | | | skipped: {q['skipped']} | | | | | | |")
            continue
        p50, box = pct(q["latencies"], .5), statistics.median(q["box"]) if q["box"] else float("nan")
        lines.append(f"| {q['backend']} | {q['rows']:,} | {len(q['latencies'])} | {p50:.2f} | "
                     f"{pct(q['latencies'], .95):.2f} | {TARGET_QUERY_P50:.0f} | {statistics.median(q['bounds']):.2f} | "
                     f"{box:.2f} | {p50 / box:.2f}x | {p50 / OLD_QUERY_BOUND_SECONDS:.3f}x |")
    for q in r["query"]:
        if q.get("burst"):
            b = q["burst_latencies"]
            lines += ["", f"Burst: {q['burst']} jobs submitted at once, {q['workers']} workers ({q['backend']}): "
                          f"first visible after {b[0]:.1f} s, median {pct(b, .5):.1f} s, last {b[-1]:.1f} s "
                          f"({q['burst'] / b[-1]:.2f} jobs/s); states {q['states']}."]
    lines += ["", "## Program job (sample-and-aggregate) -> compliance has it for review", "",
              "| backend | rows | k | workers | reaches review (s) | target (s) | operator's bound (s) "
              "| block box, median (s) | blocks at default |", "|---|---|---|---|---|---|---|---|---|"]
    for p in r["program"]:
        if "skipped" in p:
            lines.append(f"| {p['backend']} | | | | skipped: {p['skipped']} | | | | |")
            continue
        lines.append(f"| {p['backend']} | {p['rows']:,} | {p['blocks']} | {p['workers']} | {p['review_s']:.0f} | "
                     f"{TARGET_PROGRAM:.0f} | {p['bound_s']:.0f} | {statistics.median(p['block_box_s']):.2f} | "
                     f"{p['defaults']} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    import os
    import platform
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="20k rows, 3 jobs, k = 4, bubblewrap only")
    ap.add_argument("--out", type=Path, default=BENCH / "LATENCY.md")
    args = ap.parse_args(argv)
    started = time.monotonic()
    rows = 20_000 if args.smoke else 1_000_000
    report = {"started": time.strftime("%Y-%m-%d %H:%M"), "query": [], "program": [],
              "machine": f"{os.cpu_count()} CPUs, {platform.python_version()}, load avg at start "
                         f"{os.getloadavg()[0]:.1f}"}
    query_runs = [("bwrap", 3, 0, 1)] if args.smoke else [("docker", 10, 0, 1), ("bwrap", 10, 0, 1),
                                                           ("docker", 5, 20, 2)]
    for backend, jobs, burst, workers in query_runs:
        log(f"latency: query on {backend}, {workers} worker(s)")
        try:
            row = query_latency(backend, rows, jobs, burst=burst, workers=workers)
        except Exception as e:  # noqa: BLE001 - report it, keep the figures measured so far
            row = {"skipped": str(e).splitlines()[0][:200]}
        report["query"].append({**row, "backend": backend, "rows": rows, "workers": workers})
    for backend, blocks, workers in ([("bwrap", 4, 1)] if args.smoke else [("docker", 100, 2)]):
        log(f"latency: program k={blocks} on {backend}, {workers} worker(s)")
        try:
            row = program_latency(backend, rows, blocks, workers)
        except Exception as e:  # noqa: BLE001
            row = {"skipped": str(e).splitlines()[0][:200]}
        report["program"].append({**row, "backend": backend, "rows": rows})
    report["wall_s"] = time.monotonic() - started
    save("latency", args.smoke, args.out, report, write_report)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

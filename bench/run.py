"""`make bench` / `python -m bench.run [--smoke]`: DP queries side by side with plain scans.

Generates the synthetic health_visits datasets (cached under bench/data/), then in ONE
run measures, on the same files and queries:
  plain DuckDB, plain Polars, the sandbox's query runner (both contribution-bound paths),
  and OpenDP's own Polars Context as a peer (separate virtualenv, see peer_opendp.py);
plus the one-off registration check, accuracy (MAE), the runner at 50M rows in Docker
under a 2 GiB memory limit, and end-to-end latency/throughput through the real API,
Celery worker and isolation backends. Writes a markdown report (bench/RESULTS.md).

Every engine runs in a fresh subprocess (peak memory = that process's ru_maxrss); each
query is run once to warm up, then `runs` times; the table shows medians.

--smoke: tiny sizes, 2 runs, no peers needing extra installs, no Docker/e2e: a check
that this file still works (tests/bench/test_bench_smoke.py runs it in CI).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.peak import peak_rss_kib
from bench.queries import DUCKDB_SQL, ENGINES, EPSILON, QUERIES, SQL_QUERIES, human_rows
from bench.report import pct, write_report

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
MANIFEST_PATH = REPO / "datasets" / "health_visits.yaml"
SEED = 2024
PEER_VENV = BENCH / "data" / "venv-opendp"
# OpenDP 0.16's Polars front end deserializes plans only from this Polars version.
PEER_REQUIREMENTS = ["opendp==0.16.0", "polars==1.36.1", "pyarrow"]
# Tumult Analytics runs on PySpark 3.5 (pulled in by tmlt.analytics) and needs a JVM (Java 17).
TUMULT_VENV = BENCH / "data" / "venv-tumult"
TUMULT_REQUIREMENTS = ["tmlt.analytics==0.21.0", "pyarrow"]
# Tumult is opt-in (--tumult): at 1M rows on 2 cores one release takes ~30 s for a count
# and ~3 min for a mean, so its part alone takes over an hour (see bench/README.md). It is
# timed at 1M rows only, with fewer runs; its accuracy is measured like the others' (20 releases).
TUMULT_MAX_ROWS = 1_000_000
TUMULT_RUNS = 3

def parse_rows(text: str) -> int:
    """`200M`, `20k` or `1000000` -> rows (the --sizes / BENCH_SIZES notation)."""
    t = text.strip().lower().replace("_", "")
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    try:
        n = int(t[:-1] if mult > 1 else t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a row count: {text!r} (use e.g. 1M, 50M, 200M or 20000)") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"row count must be positive: {text!r}")
    return n


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ engine processes

def _files(data: Path) -> list[str]:
    return sorted(str(p) for p in Path(data).glob("*.parquet"))


def _engine_query(engine: str, name: str, data: Path):
    """A zero-argument callable running query `name` once on engine `engine`."""
    files = _files(data)
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        sql = DUCKDB_SQL[name].format(files=repr(files))
        return lambda: con.execute(sql).fetchall()
    if engine == "polars":
        import polars as pl

        cost = pl.col("cost").clip(0, 10000)
        plans = {"Q1": lambda lf: lf.select(pl.len()),
                 "Q2": lambda lf: lf.group_by("district").agg(pl.len()),
                 "Q3": lambda lf: lf.group_by("district").agg(cost.mean()),
                 "Q4": lambda lf: lf.group_by("district", "sex").agg(cost.sum())}
        return lambda: plans[name](pl.scan_parquet(files)).collect()
    if engine.startswith("sandbox_"):
        import yaml

        from sandbox.runner.query import compute_release

        manifest = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
        spec = {"mode": "query", "dataset": "health_visits", "purpose": "benchmark",
                "queries": [QUERIES[name][1]]}
        if engine == "sandbox_sql":  # compute_release compiles it (parse_query_spec), as the host does
            spec = {"mode": "query", "dataset": "health_visits", "purpose": "benchmark",
                    "sql": SQL_QUERIES[name], "epsilon": EPSILON}
        verified = engine != "sandbox_unverified"
        return lambda: compute_release(spec, manifest, Path(data), bound_verified=verified)
    raise ValueError(engine)


def engine_main(cfg: dict) -> dict:
    """Body of one engine subprocess (python -m bench.run --engine-json ...)."""
    times: dict = {}
    # CPU time of the whole process (every thread): on a machine shared with other work the
    # wall time also measures how much of the cores the engine got, the CPU time hardly.
    cpu: dict = {}
    for name in cfg["queries"]:
        run = _engine_query(cfg["engine"], name, Path(cfg["data"]))
        run()  # warm-up: imports, file cache, OpenDP library load
        times[name], cpu[name] = [], []
        for _ in range(cfg["runs"]):
            t, c = time.perf_counter(), time.process_time()
            run()
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    released: dict = {}
    if cfg.get("accuracy_reps"):
        import yaml

        from sandbox.runner.query import compute_release

        manifest = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
        # One job with the four queries, each at EPSILON (the peers release each query at EPSILON too).
        spec = {"mode": "query", "dataset": "health_visits", "purpose": "benchmark",
                "queries": [q for _, q in QUERIES.values()]}
        if cfg["engine"] == "sandbox_sql":
            spec = {"mode": "query", "dataset": "health_visits", "purpose": "benchmark",
                    "sql": list(SQL_QUERIES.values()), "epsilon": [EPSILON] * len(SQL_QUERIES)}
        released = {q: [] for q in QUERIES}
        for _ in range(cfg["accuracy_reps"]):
            tables = compute_release(spec, manifest, Path(cfg["data"]), bound_verified=True)["tables"]
            for q, t in zip(QUERIES, tables):
                g = len(t["group_by"])  # value column right after the group keys, then its interval
                released[q].append({cell_key(r[:g]): float(r[g]) for r in t["rows"]})
    return {"times": times, "cpu": cpu, "released": released,
            "maxrss_kib": peak_rss_kib()}


def run_engine(engine: str, data: Path, queries: list[str], runs: int, accuracy_reps: int = 0,
               timeout: float = 3600) -> dict:
    cfg = {"engine": engine, "data": str(data), "queries": queries, "runs": runs, "accuracy_reps": accuracy_reps}
    if engine in ("opendp_context", "tumult"):
        import yaml

        manifest = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
        cols = {c["name"]: c for c in manifest["columns"]}
        cfg.update(epsilon=EPSILON, k=manifest["max_rows_per_unit"], lower=cols["cost"]["bounds"][0],
                   upper=cols["cost"]["bounds"][1], districts=cols["district"]["categories"],
                   sexes=cols["sex"]["categories"])
        venv, script = (PEER_VENV, "peer_opendp.py") if engine == "opendp_context" else (TUMULT_VENV, "peer_tumult.py")
        argv = [str(venv / "bin" / "python"), str(BENCH / script), json.dumps(cfg)]
    else:
        argv = [sys.executable, "-m", "bench.run", "--engine-json", json.dumps(cfg)]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    if done.returncode != 0:
        raise RuntimeError(f"{engine} on {data} failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["wall"] = time.monotonic() - started
    return out


# ------------------------------------------------------------------ setup steps

def ensure_duckdb(allow_install: bool) -> bool:
    try:
        import duckdb  # noqa: F401
        return True
    except ImportError:
        pass
    if not allow_install:
        return False
    log("installing duckdb into this virtualenv (baseline only; not a project dependency)")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "duckdb"], check=False)
    try:
        import duckdb  # noqa: F401,F811
        return True
    except ImportError:
        return False


def ensure_peer_venv() -> bool:
    py = PEER_VENV / "bin" / "python"
    probe = [str(py), "-c", "import opendp, polars, pyarrow"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return True
    log(f"creating the OpenDP peer virtualenv at {PEER_VENV} ({' '.join(PEER_REQUIREMENTS)})")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS], check=True)
    except (subprocess.CalledProcessError, OSError) as e:
        log(f"OpenDP peer unavailable: {e}")
        return False
    return subprocess.run(probe, capture_output=True).returncode == 0


def ensure_tumult_venv() -> str | None:
    """The Tumult peer's virtualenv; None when ready, else why it is unavailable."""
    py = TUMULT_VENV / "bin" / "python"
    probe = [str(py), "-c", "import tmlt.analytics, pyspark, pyarrow"]
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True)
    except OSError:
        return "no Java runtime (`java` not found); Tumult Analytics runs on Spark, which needs Java 17"
    if java.returncode != 0:
        return f"`java -version` failed: {java.stderr.strip()[:200]}"
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return None
    log(f"creating the Tumult peer virtualenv at {TUMULT_VENV} ({' '.join(TUMULT_REQUIREMENTS)}; ~2 min)")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(TUMULT_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *TUMULT_REQUIREMENTS], check=True)
    except (subprocess.CalledProcessError, OSError) as e:
        return f"installing {' '.join(TUMULT_REQUIREMENTS)} failed: {e}"
    done = subprocess.run(probe, capture_output=True, text=True)
    return None if done.returncode == 0 else f"import failed: {done.stderr.strip()[-300:]}"


def make_dataset(rows: int, data_root: Path) -> Path:
    from sandbox import datagen

    manifest = datagen.load_manifest(MANIFEST_PATH)
    out = data_root / f"health_visits-{human_rows(rows).lower()}"
    info = datagen.generate(manifest, rows, out, seed=SEED)
    log(f"dataset {out.name}: {rows:,} rows, {info.bytes / 2**20:.0f} MiB"
        + (" (cached)" if info.skipped else f", generated in {info.seconds:.0f} s"))
    # The Docker runner reads as uid 10001: the dataset must be world-readable.
    os.chmod(out, 0o755)
    for p in out.iterdir():
        os.chmod(p, 0o644)
    return out


def registration_check(data: Path) -> dict:
    """The one-off, per dataset version check done at registration (sandbox/agent/ingest.py),
    in a fresh process for its peak memory."""
    code = ("import json, sys, time\n"
            "from bench.peak import peak_rss_kib\n"
            "from sandbox.agent import ingest\n"
            "t = time.perf_counter(); h = ingest.dataset_version_hash(sys.argv[1]); th = time.perf_counter() - t\n"
            "t = time.perf_counter(); r = ingest.verify_unit_bound(sys.argv[1], 'person_id', 5)\n"
            "tv = time.perf_counter() - t\n"
            "print(json.dumps({'hash_s': th, 'verify_s': tv, 'ok': r.ok, 'units': r.units, "
            "'maxrss_kib': peak_rss_kib()}))")
    done = subprocess.run([sys.executable, "-c", code, str(data)], cwd=REPO, capture_output=True, text=True,
                          check=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    return json.loads(done.stdout.strip().splitlines()[-1])


def cell_key(keys) -> str:
    """One released cell's key in the accuracy tables: its group values joined by '|'."""
    return "|".join(str(k) for k in keys)


def exact_truth(data: Path) -> dict:
    import polars as pl

    lf = pl.scan_parquet(_files(data))
    cost = pl.col("cost").clip(0, 10000)
    valid = lf.filter(pl.col("cost").is_not_null() & pl.col("cost").is_not_nan())
    q1 = lf.select(pl.len()).collect()
    q2 = lf.group_by("district").agg(pl.len()).collect()
    q3 = valid.group_by("district").agg(cost.mean()).collect()
    q4 = valid.group_by("district", "sex").agg(cost.sum()).collect()
    return {"Q1": {"": float(q1["len"][0])},
            "Q2": dict(zip(q2["district"].to_list(), map(float, q2["len"].to_list()))),
            "Q3": dict(zip(q3["district"].to_list(), map(float, q3["cost"].to_list()))),
            "Q4": {cell_key(k): float(v) for *k, v in q4.select("district", "sex", "cost").iter_rows()}}


def mae(released: list[dict], truth: dict) -> float:
    errs = [abs(rep.get(k, 0.0) - v) for rep in released for k, v in truth.items()]
    return sum(errs) / len(errs)


def mae_se(released: list[dict], truth: dict) -> float:
    """Standard error of mae() (cells and releases taken as independent draws): a one-cell
    query over 20 releases has an MAE good to about +-20%, so differences below ~2 s.e. are noise."""
    errs = [abs(rep.get(k, 0.0) - v) for rep in released for k, v in truth.items()]
    return statistics.stdev(errs) / len(errs) ** 0.5 if len(errs) > 1 else float("nan")


# ------------------------------------------------------------------ Docker, 2 GiB

def docker_runner_check(data: Path, memory_mb: int = 2048) -> dict:
    """The runner in the real job container (sandbox-runner image), all four queries in
    one job, with a 2 GiB memory limit; peak RSS reported by the runner process itself."""
    import yaml

    from sandbox.agent.backends import Limits, RunRequest
    from sandbox.agent.backends.docker import DockerBackend

    backend = DockerBackend(os.environ.get("SANDBOX_IMAGE", "sandbox-runner:latest"))
    if not backend.available():
        return {"skipped": "Docker backend unavailable"}
    manifest = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-docker-") as tmp:
        json_spec = {"mode": "query", "dataset": "health_visits", "purpose": "benchmark",
                     "queries": [q for _, q in QUERIES.values()]}
        # As shipped, the controller compiles an SQL job (sqlglot) when it is submitted and stores
        # the compiled plan; the box (which has no sqlglot) runs that plan.
        from sandbox.core.specs.query import parse_query_spec
        from sandbox.datagen import load_manifest

        sql_spec = parse_query_spec({"mode": "query", "dataset": "health_visits", "purpose": "benchmark",
                                     "sql": list(SQL_QUERIES.values()), "epsilon": [EPSILON] * len(SQL_QUERIES)},
                                    load_manifest(MANIFEST_PATH)).to_dict()
        for path, verified, spec in (("verified", True, json_spec), ("verified, SQL", True, sql_spec),
                                     ("unverified", False, json_spec)):
            job_dir, out_dir = Path(tmp) / f"job-{len(results)}", Path(tmp) / f"out-{len(results)}"
            job_dir.mkdir()
            job = {"kind": "query", "manifest": manifest, "data_dir": "/data", "bound_verified": verified,
                   "out_dir": "/out", "spec": spec}
            (job_dir / "job.json").write_text(json.dumps(job))
            os.chmod(job_dir, 0o755)
            os.chmod(job_dir / "job.json", 0o644)
            # Same module as the real job, plus one line of peak RSS on stdout (bench only).
            code = ("import resource, sys\nfrom sandbox.runner.__main__ import main\nrc = main(['/job/job.json'])\n"
                    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(rc)")
            result = backend.run(RunRequest(job_dir=job_dir, data_dir=data, out_dir=out_dir,
                                            python_args=("-c", code),
                                            limits=Limits(memory_mb=memory_mb, cpus=2, wall_seconds=1800),
                                            label="bench"))
            ok = result.ok and (out_dir / "result.json").exists()
            rss = result.stdout.decode().strip().splitlines()[-1:] if result.ok else []
            results[path] = {
                "ok": ok, "oom_killed": result.oom_killed, "exit_code": result.exit_code,
                "wall_s": result.wall_seconds, "maxrss_kib": int(rss[0]) if rss and rss[0].isdigit() else None,
                "stderr": "" if ok else result.stderr.decode(errors="replace")[-1500:]}
            log(f"docker 2 GiB, {path}: ok={ok} wall={result.wall_seconds:.1f}s")
    return results


# ------------------------------------------------------------------ end to end

E2E_SPEC = {"mode": "query", "dataset": "health_visits", "purpose": "public_health_planning",
            "queries": [{"name": "visits_by_district", "statistic": "count", "group_by": ["district"],
                         "epsilon": 0.1}]}
DONE = {"awaiting_review", "released", "failed", "rejected"}


def _wait(reviewer, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = reviewer.job(job_id)
        if job["state"] in DONE:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} stuck in {job['state']}")
        time.sleep(0.02)


def e2e(backend: str, rows: int, data_root: Path, jobs: int, burst: int = 0, workers: int = 1) -> dict:
    """Submit -> awaiting_review through the real API, Celery worker (filesystem broker,
    SQLite) and isolation backend, all as shipped (the worker's own broker options, the
    default runner image); one warm-up job is not counted."""
    from sandbox.config import load
    from sandbox.agent.backends import BackendUnavailable
    from sandbox.agent.backends.select import get_backend
    from tests.integration.harness import Harness

    try:
        get_backend(load({"SANDBOX_BACKEND": backend}))
    except BackendUnavailable as e:
        return {"skipped": str(e)}
    with tempfile.TemporaryDirectory(prefix=f"bench-e2e-{backend}-") as tmp:
        home = Path(tmp) / "home"
        env = {"SANDBOX_HOME": str(home), "SANDBOX_DATABASE_URL": f"sqlite:///{home / 'sandbox.db'}",
               "SANDBOX_BROKER_URL": "filesystem://", "SANDBOX_BACKEND": backend,
               "SANDBOX_DOCKER_RUNTIME": "runc", "SANDBOX_DATASETS_DIR": str(data_root / "e2e")}
        home.mkdir(parents=True)
        h = Harness(env, {"health_visits": rows})
        t = time.monotonic()
        h.start(workers)
        setup_s = time.monotonic() - t
        try:
            op, rev = h.client("operator"), h.client("reviewer")
            try:
                first = _wait(rev, op.submit(E2E_SPEC)["job"]["id"], timeout=120)  # warm-up
            except TimeoutError as e:
                raise RuntimeError(f"{e}; worker log:\n{h.worker_log()[-3000:]}") from e
            if first["state"] != "awaiting_review":
                raise RuntimeError(f"e2e warm-up job ended {first['state']}:\n{h.worker_log()[-3000:]}")
            lat = []
            for _ in range(jobs):
                t0 = time.monotonic()
                job = _wait(rev, op.submit(E2E_SPEC)["job"]["id"])
                lat.append(time.monotonic() - t0)
                assert job["state"] == "awaiting_review", job
            out = {"latencies": lat, "setup_s": setup_s, "workers": workers}
            if burst:
                t0 = time.monotonic()
                ids = [op.submit(E2E_SPEC)["job"]["id"] for _ in range(burst)]
                ends = {}
                while len(ends) < len(ids):
                    for i in ids:
                        if i not in ends and rev.job(i)["state"] in DONE:
                            ends[i] = time.monotonic() - t0
                    time.sleep(0.05)
                states = {rev.job(i)["state"] for i in ids}
                out.update(burst=burst, burst_s=max(ends.values()), burst_states=sorted(states),
                           burst_latencies=sorted(ends.values()))
            return out
        finally:
            h.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, 2 runs, no peers/Docker/e2e")
    ap.add_argument("--out", type=Path, default=None, help="report path (default bench/RESULTS.md)")
    ap.add_argument("--data-dir", type=Path, default=BENCH / "data", help="dataset cache")
    ap.add_argument("--sizes", type=str, default=os.environ.get("BENCH_SIZES"),
                    help="comma-separated row counts, e.g. 1M,10M,50M,200M (default: env BENCH_SIZES, "
                         "else 1M,10M,50M; datasets are streamed to Parquet 1M rows per part)")
    ap.add_argument("--engines", type=str, default=None,
                    help=f"comma list, a subset of {','.join(e for e in ENGINES if e not in ('opendp_context', 'tumult'))}"
                         " (default: all; the peers follow --skip/--tumult)")
    ap.add_argument("--runs", type=int, default=None, help="timed runs per query in each engine process")
    ap.add_argument("--accuracy-reps", type=int, default=20, help="releases per engine in the accuracy table")
    ap.add_argument("--rounds", type=int, default=1,
                    help="start each engine's process this many times, interleaved, pooling the timed runs "
                         "(steadier ratios on a shared machine)")
    ap.add_argument("--skip", type=str, default="",
                    help="comma list of: peers (OpenDP and Tumult), tumult, docker, e2e, accuracy")
    ap.add_argument("--tumult", action="store_true",
                    help="also run Tumult Analytics as a peer (1M rows, accuracy; adds over an hour on 2 cores)")
    ap.add_argument("--discussion", type=Path, default=None, help="markdown appended to the report")
    ap.add_argument("--engine-json", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.engine_json:  # inside an engine subprocess
        print(json.dumps(engine_main(json.loads(args.engine_json))))
        return 0

    started_wall = time.monotonic()
    skip = set(filter(None, args.skip.split(",")))
    if args.smoke:
        skip |= {"peers", "docker", "e2e"}
    try:
        sizes = [parse_rows(x) for x in args.sizes.split(",")] if args.sizes else (
            [20_000] if args.smoke else [1_000_000, 10_000_000, 50_000_000])
        wanted = set(filter(None, (args.engines or "").split(",")))
        if wanted - set(ENGINES):
            raise argparse.ArgumentTypeError(f"unknown engine(s) in --engines: {','.join(sorted(wanted - set(ENGINES)))}")
    except argparse.ArgumentTypeError as e:
        ap.error(str(e))
    runs = args.runs or (2 if args.smoke else 5)
    rounds = max(1, args.rounds)
    out = args.out or BENCH / "RESULTS.md"
    data_root = args.data_dir
    data_root.mkdir(parents=True, exist_ok=True)

    notes = ["diagnosis_group has 20 categories (ICD-10 chapters) in the manifest, not 50; the four queries "
             "do not use it. The cost column is `cost`, public bounds [0, 10000]; persons have 1-5 rows.",
             "The production path (`bound_verified`) relies on the registration-time check below: the dataset "
             "version (content hash) was verified to have <= 5 rows per person, and jobs run on that version. "
             "The unverified path re-checks the bound inside every query (a group-by over person_id) and "
             "truncates over-limit persons if it finds any."]
    engines = ["polars", "sandbox_verified", "sandbox_unverified", "sandbox_sql"]
    notes.append("SQL rows (sandbox_sql): the same four queries written as SQL; the time includes compiling "
                 "them with sqlglot. They compile to the JSON path's plan exactly (tests/unit/test_sql_spec.py); "
                 "the accuracy table measures them separately (sandbox_sql).")
    if (not wanted or "duckdb" in wanted) and ensure_duckdb(allow_install=not args.smoke):
        engines.insert(0, "duckdb")
    elif not wanted or "duckdb" in wanted:
        notes.append("DuckDB is not installed here (the smoke run does not install it): no DuckDB column.")
    if wanted:
        engines = [e for e in engines if e in wanted]
    peers = "peers" not in skip and ensure_peer_venv()  # the accuracy table uses it too
    if peers and (not wanted or "opendp_context" in wanted):
        engines.append("opendp_context")
        notes.append("OpenDP Context runs in a separate virtualenv (bench/data/venv-opendp: opendp 0.16.0 + "
                     "polars 1.36.1), because OpenDP 0.16 only accepts plans from Polars 1.36.1 and the project "
                     "uses Polars 2.1. Its time includes the calibration search (resolve) of each release, as a "
                     "user of Context pays it. It runs at 1M and 10M only (at 50M it would take > 10 min).")
    if not args.tumult:
        tumult_why = ("it is opt-in (`python -m bench.run --tumult`): one release of a mean takes ~3 min at 1M "
                      "rows on 2 cores, so its 20 accuracy releases alone take about an hour (bench/README.md)")
    else:
        tumult_why = "skipped (--skip)" if {"peers", "tumult"} & skip else ensure_tumult_venv()
    if tumult_why is None:
        engines.append("tumult")
        notes.append(f"Tumult Analytics runs in its own virtualenv (bench/data/venv-tumult: tmlt.analytics 0.21.0, "
                     f"PySpark 3.5, Java 17) on a local Spark with all cores. Its time is one release (a new "
                     f"Session over the Parquet files, evaluate, collect); the Spark start (JVM, 20-60 s) is not "
                     f"counted. Its peak memory is the Python driver's plus the JVM's. Because one release takes "
                     f"~30 s for a count and ~3 min for a mean at 1M rows on 2 cores, it is timed at "
                     f"{human_rows(TUMULT_MAX_ROWS)} rows only, with {TUMULT_RUNS} timed runs after one warm-up.")
    else:
        notes.append(f"Tumult Analytics was not run: {tumult_why}.")
    notes.append("SmartNoise SQL was not run.")

    datasets = {n: make_dataset(n, data_root) for n in sizes}
    report = {"smoke": args.smoke, "started": time.strftime("%Y-%m-%d %H:%M"), "runs": runs, "rounds": rounds,
              "machine": f"{os.cpu_count()} CPUs, {platform.python_version()}, load avg at start "
                         f"{os.getloadavg()[0]:.1f}",
              "engines": engines, "sizes": [str(n) for n in sizes], "results": {}, "registration": {},
              "notes": notes}

    for n in sizes:
        report["registration"][str(n)] = registration_check(datasets[n])
        res = {}
        # Rounds interleave the engines (a, b, c, a, b, c, ...): on a machine shared with other
        # work the load changes by the minute, and one engine's runs all in one stretch would
        # see a different load from the next engine's. The peers run in the first round only.
        for rnd, e in ((rnd, e) for rnd in range(rounds) for e in engines):
            if (e == "opendp_context" and n > 10_000_000) or (e == "tumult" and n > TUMULT_MAX_ROWS):
                continue
            if rnd and e in ("opendp_context", "tumult"):
                continue
            log(f"{human_rows(n)}: {e} (round {rnd + 1}/{rounds}) ...")
            if rnd:
                more = run_engine(e, datasets[n], list(QUERIES), runs)
                for q, t in more["times"].items():
                    res[e]["times"][q] += t
                    res[e].setdefault("cpu", {}).setdefault(q, []).extend(more.get("cpu", {}).get(q, []))
                res[e]["maxrss_kib"] = max(res[e]["maxrss_kib"], more["maxrss_kib"])
            elif e == "tumult":
                try:
                    res[e] = run_engine(e, datasets[n], list(QUERIES), min(runs, TUMULT_RUNS), timeout=4 * 3600)
                except (RuntimeError, subprocess.TimeoutExpired) as err:  # a peer: keep the rest of the run
                    log(f"tumult failed: {err}")
                    notes.append(f"Tumult failed at {human_rows(n)}: {str(err).splitlines()[-1][:300]}")
                    continue
            else:
                res[e] = run_engine(e, datasets[n], list(QUERIES), runs)
            log(f"{human_rows(n)}: {e} " + ", ".join(
                f"{q} {statistics.median(t) * 1000:.0f} ms" for q, t in res[e]["times"].items())
                + f", peak {res[e]['maxrss_kib'] / 2**20:.2f} GiB")
        report["results"][str(n)] = res

    if "accuracy" not in skip:
        from sandbox.core import dp as acc

        acc_rows = 20_000 if args.smoke else 1_000_000
        data = datasets.get(acc_rows) or make_dataset(acc_rows, data_root)
        reps = args.accuracy_reps
        truth = exact_truth(data)
        log(f"accuracy at {human_rows(acc_rows)}: {reps} releases per engine")
        mae_by, se_by = {}, {}
        got = run_engine("sandbox_verified", data, [], 0, accuracy_reps=reps)["released"]
        mae_by["sandbox"] = {q: mae(got[q], truth[q]) for q in got}
        se_by["sandbox"] = {q: mae_se(got[q], truth[q]) for q in got}
        got = run_engine("sandbox_sql", data, [], 0, accuracy_reps=reps)["released"]
        mae_by["sandbox_sql"] = {q: mae(got[q], truth[q]) for q in got}
        se_by["sandbox_sql"] = {q: mae_se(got[q], truth[q]) for q in got}
        if peers:
            got = run_engine("opendp_context", data, [], 0, accuracy_reps=reps)["released"]
            mae_by["opendp_context"] = {q: mae(got[q], truth[q]) for q in got}
            se_by["opendp_context"] = {q: mae_se(got[q], truth[q]) for q in got}
        if "tumult" in engines:
            log(f"accuracy at {human_rows(acc_rows)}: tumult ({2 * reps} releases, ~10-30 s each)")
            try:
                got = run_engine("tumult", data, [], 0, accuracy_reps=reps, timeout=4 * 3600)["released"]
                mae_by["tumult"] = {q: mae(got[q], truth[q]) for q in got}
                se_by["tumult"] = {q: mae_se(got[q], truth[q]) for q in got}
            except (RuntimeError, subprocess.TimeoutExpired) as err:
                log(f"tumult accuracy failed: {err}")
                notes.append(f"Tumult accuracy failed: {str(err).splitlines()[-1][:300]}")
        b = acc.laplace_scale(acc.count_sensitivity(5), EPSILON)
        report["accuracy"] = {"rows": acc_rows, "reps": reps, "mae": mae_by, "se": se_by,
                              "expected": {"Q1": acc.discrete_laplace_expected_abs_error(b),
                                           "Q2": acc.discrete_laplace_expected_abs_error(b),
                                           # Laplace noise: E|error| = scale = k * max(|lower|, |upper|) / epsilon
                                           "Q4": 5 * 10000 / EPSILON}}

    if "docker" not in skip:
        big = max(sizes)
        log(f"runner in Docker, 2 GiB, {human_rows(big)} rows")
        report["docker"] = docker_runner_check(datasets[big])
        report["docker_rows"] = big

    if "e2e" not in skip:
        rows = 1_000_000
        report["e2e"] = []
        # The product as shipped: docker and bwrap with one worker (latency), docker with two
        # workers and a burst of jobs submitted at once (throughput).
        configs = [("docker", 1, 10, 0), ("bwrap", 1, 10, 0), ("docker", 2, 5, 20)]
        for backend, workers, jobs, burst in configs:
            log(f"e2e {backend} workers={workers}")
            try:
                row = e2e(backend, rows, data_root, jobs, burst=burst, workers=workers)
            except Exception as e:  # noqa: BLE001 - report it, keep the figures measured so far
                log(f"e2e {backend} failed: {e}")
                row = {"skipped": f"failed: {str(e).splitlines()[0][:200]}"}
            row.update(backend=backend, workers=workers)
            report["e2e"].append(row)
            if "latencies" in row:
                log(f"  p50 {pct(row['latencies'], .5):.2f} s p95 {pct(row['latencies'], .95):.2f} s"
                    + (f"; burst {row['burst']} in {row['burst_s']:.1f} s" if row.get("burst") else ""))

    if args.discussion and args.discussion.exists():
        report["discussion"] = args.discussion.read_text(encoding="utf-8").strip()
    report["wall_s"] = time.monotonic() - started_wall
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(out, report)
    # Raw figures (every run, not only medians) next to the dataset cache, not in the repository.
    raw = data_root / f"results-{'smoke' if args.smoke else 'full'}.json"
    raw.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

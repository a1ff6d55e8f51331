"""Tumult Analytics (on Spark) as a benchmark peer: the same four queries, with
identifier-level privacy (AddRowsWithID on person_id) and MaxRowsPerID(k) truncation.

Standalone on purpose: Tumult Analytics needs PySpark (and a JVM) and pins its own
numpy/pandas/pyarrow versions, so bench/run.py runs this file with a separate
virtualenv's interpreter (bench/data/venv-tumult). It imports nothing from the project.

    python bench/peer_tumult.py '{"data": DIR, "runs": 3, "queries": [...], "epsilon": 1.0,
                                  "k": 5, "lower": 0, "upper": 10000, "districts": [...],
                                  "sexes": [...], "accuracy_reps": 0}'
prints one JSON object: {"times": {q: [s, ...]}, "maxrss_kib": n, "released": {...},
"spark_start_s": s} on its last line of stdout.

Time of one release = a fresh Session over the Parquet files + evaluate + collect to the
driver: Spark reads the Parquet files every time (nothing cached), as our runner does.
The Spark session itself (JVM start, ~10-40 s) is started once and not counted.
Peak memory = the Python driver's ru_maxrss + the JVM's peak RSS (VmHWM).
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
import time
import warnings

from bench.peak import peak_rss_kib  # the repository is on PYTHONPATH (bench/run.py)


def log(msg: str) -> None:
    print(f"[tumult {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _jvm_peak_kib(spark) -> int:
    """Peak RSS of the JVM that runs Spark (a child of this process, started by py4j)."""
    try:
        pid = spark.sparkContext._gateway.proc.pid  # spark-submit execs java: same pid
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (AttributeError, OSError, ValueError):
        pass
    return 0


def main() -> int:
    cfg = json.loads(sys.argv[1])
    warnings.simplefilter("ignore")  # PySpark's pandas-UDF deprecation warnings
    # Spark's Python workers must run this virtualenv's interpreter (they unpickle tmlt code).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    cpus = os.cpu_count() or 1
    t0 = time.perf_counter()
    from pyspark.sql import SparkSession
    from tmlt.analytics import AddRowsWithID, KeySet, MaxRowsPerID, PureDPBudget, QueryBuilder, Session

    # Tumult keeps temporary tables in Spark's warehouse (default: ./spark-warehouse, i.e. the repository).
    warehouse = tempfile.mkdtemp(prefix="bench-tumult-warehouse-")
    spark = (SparkSession.builder.master(f"local[{cpus}]").appName("bench-tumult")
             .config("spark.driver.memory", cfg.get("driver_memory", "4g"))
             .config("spark.sql.warehouse.dir", warehouse)
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", str(2 * cpus))
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    spark_start = time.perf_counter() - t0
    log(f"Spark up in {spark_start:.1f} s")

    files = sorted(glob.glob(f"{cfg['data']}/*.parquet"))
    lo, hi, k, eps = float(cfg["lower"]), float(cfg["upper"]), int(cfg["k"]), float(cfg["epsilon"])
    keys_d = KeySet.from_dict({"district": list(cfg["districts"])})
    keys_ds = KeySet.from_dict({"district": list(cfg["districts"]), "sex": list(cfg["sexes"])})

    def frame():
        return spark.read.parquet(*files).select("person_id", "district", "sex", "cost")

    def base():
        return QueryBuilder("visits").enforce(MaxRowsPerID(k))

    queries = {
        "Q1": lambda: base().count(),
        "Q2": lambda: base().groupby(keys_d).count(),
        "Q3": lambda: base().groupby(keys_d).average("cost", low=lo, high=hi),
        "Q4": lambda: base().groupby(keys_ds).sum("cost", low=lo, high=hi),
    }

    def session(df, budget: float):
        return Session.from_dataframe(privacy_budget=PureDPBudget(budget), source_id="visits", dataframe=df,
                                      protected_change=AddRowsWithID(id_column="person_id"))

    times: dict = {}
    for name in cfg["queries"]:
        def once():
            return session(frame(), eps).evaluate(queries[name](), PureDPBudget(eps)).toPandas()
        t = time.perf_counter()
        once()  # warm-up (JIT, Python workers)
        log(f"{name} warm-up {time.perf_counter() - t:.1f} s")
        times[name] = []
        for _ in range(int(cfg["runs"])):
            t = time.perf_counter()
            once()
            times[name].append(time.perf_counter() - t)
            log(f"{name} {times[name][-1]:.1f} s")

    released: dict = {}
    reps = int(cfg.get("accuracy_reps", 0))
    if reps:
        # Accuracy does not need the read each time: cache the rows once, one session
        # holding the budget of every release.
        df = frame().cache()
        df.count()
        sess = session(df, 2 * reps * eps)
        for name, col in (("Q2", "count"), ("Q3", "cost_average")):
            released[name] = []
            for _ in range(reps):
                t = time.perf_counter()
                out = sess.evaluate(queries[name](), PureDPBudget(eps)).toPandas()
                released[name].append({d: float(v) for d, v in zip(out["district"], out[col])})
                log(f"accuracy {name} release {len(released[name])}/{reps}: {time.perf_counter() - t:.1f} s")
    maxrss = peak_rss_kib() + _jvm_peak_kib(spark)
    spark.stop()
    shutil.rmtree(warehouse, ignore_errors=True)
    print(json.dumps({"times": times, "released": released, "maxrss_kib": maxrss, "spark_start_s": spark_start}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

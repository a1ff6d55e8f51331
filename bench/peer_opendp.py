"""OpenDP Context (Polars) as a benchmark peer: the same four queries, run by
OpenDP's own Polars front end with identifier-level privacy and truncate_per_group(k).

Standalone on purpose: OpenDP 0.16 deserializes Polars plans only from Polars 1.36.1,
while the project runs Polars 2.x, so bench/run.py runs this file with a separate
virtualenv's interpreter (bench/data/venv-opendp). It imports nothing from the project.

    python bench/peer_opendp.py '{"data": DIR, "runs": 5, "queries": [...], "epsilon": 1.0,
                                  "k": 5, "lower": 0, "upper": 10000, "districts": [...],
                                  "sexes": [...], "accuracy_reps": 0}'
prints one JSON object: {"times": {q: [s, ...]}, "maxrss_kib": n, "released": {...}}.
"""
from __future__ import annotations

import glob
import json
import sys
import time
import warnings

from bench.peak import peak_rss_kib  # the repository is on PYTHONPATH (bench/run.py)


def main() -> int:
    cfg = json.loads(sys.argv[1])
    warnings.simplefilter("ignore")  # OpenDP's FutureWarning about signed counts
    import opendp.prelude as dp
    import polars as pl

    dp.enable_features("contrib")
    files = sorted(glob.glob(f"{cfg['data']}/*.parquet"))
    rows = sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in files)
    lo, hi, k, eps = float(cfg["lower"]), float(cfg["upper"]), int(cfg["k"]), float(cfg["epsilon"])
    keys_d = pl.LazyFrame({"district": cfg["districts"]})
    keys_ds = pl.LazyFrame({"district": [d for d in cfg["districts"] for _ in cfg["sexes"]],
                            "sex": [s for _ in cfg["districts"] for s in cfg["sexes"]]})

    def context():
        # One person = one identifier; max_length (a public row bound) is required for float sums.
        return dp.Context.compositor(
            data=pl.scan_parquet(files),
            privacy_unit=dp.unit_of(contributions=1, identifier="person_id"),
            privacy_loss=dp.loss_of(epsilon=eps),
            split_evenly_over=1,
            margins=[dp.polars.Margin(by=[], max_length=rows),
                     dp.polars.Margin(by=["district"], max_length=rows),
                     dp.polars.Margin(by=["district", "sex"], max_length=rows)])

    cost = pl.col("cost").fill_null(0.0).fill_nan(0.0)
    queries = {
        "Q1": lambda c: c.query().truncate_per_group(k).select(dp.len()),
        "Q2": lambda c: c.query().truncate_per_group(k).group_by("district").agg(dp.len()).with_keys(keys_d),
        "Q3": lambda c: c.query().truncate_per_group(k).group_by("district")
        .agg(cost.dp.mean((lo, hi))).with_keys(keys_d),
        "Q4": lambda c: c.query().truncate_per_group(k).group_by("district", "sex")
        .agg(cost.dp.sum((lo, hi))).with_keys(keys_ds),
    }
    times: dict = {}
    for name in cfg["queries"]:
        def once():
            return queries[name](context()).release().collect()  # resolve (calibration) + run
        once()  # warm-up
        times[name] = []
        for _ in range(int(cfg["runs"])):
            t = time.perf_counter()
            once()
            times[name].append(time.perf_counter() - t)

    released: dict = {}
    reps = int(cfg.get("accuracy_reps", 0))
    # The same cells and keys as bench/run.py's accuracy table: group values joined by "|".
    by = {"Q1": [], "Q2": ["district"], "Q3": ["district"], "Q4": ["district", "sex"]}
    for name in by if reps else ():
        # Resolve once, invoke many times: accuracy does not need the calibration each time.
        meas = queries[name](context()).resolve()
        col = "len" if name in ("Q1", "Q2") else "cost"
        released[name] = []
        for _ in range(reps):
            out = meas(pl.scan_parquet(files)).collect()
            released[name].append({"|".join(str(k) for k in row[:-1]): float(row[-1])
                                   for row in out.select(*by[name], col).iter_rows()})
    print(json.dumps({"times": times, "released": released,
                      "maxrss_kib": peak_rss_kib()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Empirical DP audit (StatDP style) of every query statistic, through the runner's real
release code: neighbouring datasets D and D' = D + one worst-case privacy unit, many
releases of each, and a Clopper-Pearson 95% lower bound on the privacy loss of a threshold
event. The bound must not exceed the epsilon the release claims.

Samples are cheap because cells are independent: the manifest has 200 public groups, D holds
the same rows in every group, and D' adds one worst-case unit to every group, so each
group's released value under D' is distributed as under "D plus that one unit" (OpenDP draws
independent noise per cell). Twenty queries a run, 200 cells each: 800 samples per statistic.

The event is fixed in advance: "released value above the midpoint between the exact answer
on D and the exact answer on D plus the unit cut to its claimed bound (k rows, values
clamped)". A sound mechanism loses about 0.85 epsilon on it (the midpoint keeps both tails
of the noise out), so the test has a wide margin against chance; a unit that escapes its
bound moves the answer far past the midpoint and the bound shoots above epsilon.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import beta

from sandbox.agent import ingest
from sandbox.runner.query import compute_release

EPSILON = 1.0
K = 3                                   # max_rows_per_unit
CELLS = [f"c{i:03d}" for i in range(200)]
LO, HI = 0, 10
BASE_X = list(range(10)) * 2            # every group of D: 20 units of one row, x = 0..9 twice
OUTSIDE = 1000                          # the added unit's values, clamped to HI
MANIFEST = {
    "name": "audit", "classification": "L2", "privacy_unit": "pid", "max_rows_per_unit": K,
    "columns": [{"name": "pid", "type": "int64", "kind": "identifier"},
                {"name": "g", "type": "string", "kind": "categorical", "categories": CELLS},
                {"name": "x", "type": "int64", "kind": "numeric", "bounds": [LO, HI]}],
}
REPEATS = 4                             # copies of each statistic per run
RUNS = 8                                # runs per dataset: 8 * 4 * 200 = 6400 samples per statistic
HIST_BINS = [0, 5, 10]                  # the audited cell is the upper bin, where the unit lands

# Midpoints between the exact answer on D (one group) and on D + a unit of K rows at HI:
#   count 20 -> 23; sum 90 -> 120; upper histogram bin 10 -> 13;
#   mean 4.5 -> 120 / 23 = 5.22; median: OpenDP's score |2 #(x < c) - (n - #(x = c))| is
#   lowest at 4 and 5 (tied) on D and at 5 alone on D + the unit, so the event is "5 or more".
THRESHOLDS = {"count": 21.5, "sum": 105.0, "histogram": 11.5, "mean": (4.5 + 120 / 23) / 2, "quantile": 4.75}


def _spec() -> dict:
    queries = []
    for r in range(REPEATS):
        common = {"epsilon": EPSILON, "group_by": ["g"]}
        queries += [{"name": f"count{r}", "statistic": "count", **common},
                    {"name": f"sum{r}", "statistic": "sum", "column": "x", **common},
                    {"name": f"mean{r}", "statistic": "mean", "column": "x", **common},
                    {"name": f"hist{r}", "statistic": "histogram", "column": "x", "bins": HIST_BINS, **common},
                    {"name": f"median{r}", "statistic": "quantile", "column": "x", "q": 0.5, **common}]
    return {"mode": "query", "dataset": "audit", "purpose": "empirical DP audit", "queries": queries}


def _write(path: Path, pids: list, groups: list, xs: list) -> None:
    pq.write_table(pa.table({"pid": pa.array(pids, pa.int64()), "g": pa.array(groups, pa.string()),
                             "x": pa.array(xs, pa.int64())}), path)


def _base(d: Path) -> Path:
    d.mkdir(parents=True)
    rows = [(c * 1000 + i, cell, x) for c, cell in enumerate(CELLS) for i, x in enumerate(BASE_X)]
    _write(d / "part-0.parquet", *map(list, zip(*rows)))
    return d


def _add_unit(d: Path, name: str, rows: int, *, null_unit: bool = False) -> None:
    """One more unit in every group (a distinct one per group), `rows` rows at OUTSIDE."""
    pids = [None if null_unit else 900_000 + c for c, _ in enumerate(CELLS) for _ in range(rows)]
    _write(d / name, pids, [cell for cell in CELLS for _ in range(rows)], [OUTSIDE] * (rows * len(CELLS)))


# The worst-case units: what D' adds to D.
CASES = {
    "max_rows_at_the_bound": dict(name="part-1.parquet", rows=K),
    "unit_over_the_bound": dict(name="part-1.parquet", rows=60),
    "null_unit_of_many_rows": dict(name="part-1.parquet", rows=150, null_unit=True),
    "unit_in_an_underscore_file": dict(name="_late.parquet", rows=60),
}


def _releases(data_dir: Path) -> dict[str, np.ndarray]:
    """RUNS releases of the spec, as the registration and runner do them: the bound counts
    as verified exactly when ingest verifies it."""
    verified = ingest.verify_unit_bound(data_dir, "pid", K).ok
    spec = _spec()
    out: dict[str, list] = {}
    for _ in range(RUNS):
        for table in compute_release(spec, MANIFEST, data_dir, bound_verified=verified)["tables"]:
            rows = table["rows"]
            if table["statistic"] == "histogram":
                rows = [r for r in rows if r[1] == HIST_BINS[1]]
            at = len(table["group_by"]) + (2 if table["statistic"] == "histogram" else 0)  # the value column
            out.setdefault(table["statistic"], []).extend(r[at] for r in rows)
    return {stat: np.asarray(v, dtype=float) for stat, v in out.items()}


def _cp_lower(hits: int, n: int, alpha: float) -> float:
    return 0.0 if hits == 0 else float(beta.ppf(alpha, hits, n - hits + 1))


def _cp_upper(hits: int, n: int, alpha: float) -> float:
    return 1.0 if hits == n else float(beta.ppf(1 - alpha, hits + 1, n - hits))


def epsilon_lower_bound(event_d: np.ndarray, event_d2: np.ndarray, confidence: float = 0.95) -> float:
    """Clopper-Pearson lower bound on the privacy loss of an event or its complement, either
    way round (the largest): ln(P_1[E]_low / P_0[E]_high), each side one-sided at
    (1 + confidence) / 2, so each pair holds with probability >= confidence."""
    alpha = (1 - confidence) / 2
    best = 0.0
    for a, b in ((event_d, event_d2), (~event_d, ~event_d2), (event_d2, event_d), (~event_d2, ~event_d)):
        low = _cp_lower(int(b.sum()), len(b), alpha)
        high = _cp_upper(int(a.sum()), len(a), alpha)
        if low > 0:
            best = max(best, math.log(low / high))
    return best


@pytest.fixture(scope="module")
def released_on_d(tmp_path_factory):
    return _releases(_base(tmp_path_factory.mktemp("audit") / "D"))


def test_the_lower_bound_is_near_the_loss_of_a_known_event():
    # Sanity of the estimator on exact Bernoulli draws: P = 0.3, P' = 0.7 (loss ln(7/3) = 0.85).
    rng = np.random.default_rng(0)
    lb = epsilon_lower_bound(rng.random(6000) < 0.3, rng.random(6000) < 0.7)
    assert 0.75 < lb < math.log(7 / 3)


@pytest.mark.parametrize("case", list(CASES))
def test_no_worst_case_unit_moves_a_release_by_more_than_its_epsilon(case, released_on_d, tmp_path):
    d2 = _base(tmp_path / "D2")
    _add_unit(d2, **CASES[case])
    released_on_d2 = _releases(d2)
    bounds = {stat: round(epsilon_lower_bound(released_on_d[stat] > t, released_on_d2[stat] > t), 3)
              for stat, t in THRESHOLDS.items()}
    assert all(b <= EPSILON for b in bounds.values()), f"empirical epsilon lower bounds {bounds} > {EPSILON}"

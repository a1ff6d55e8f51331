"""The benchmark's smoke run (tiny sizes) still works end to end, so `make bench` cannot rot."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_smoke_benchmark_writes_a_complete_results_table(tmp_path):
    out = tmp_path / "RESULTS.md"
    done = subprocess.run([sys.executable, "-m", "bench.run", "--smoke", "--out", str(out),
                           "--data-dir", str(tmp_path / "data")],
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text(encoding="utf-8")

    timing = text.split("## Query time")[1].split("\n## ")[0]  # (the CPU-time table has the same rows)
    header = next(line for line in timing.splitlines() if line.startswith("| rows | query |"))
    engines = [c.strip() for c in header.strip("|").split("|")][2:]
    assert {"polars", "sandbox_verified", "sandbox_unverified", "sandbox_sql"} <= set(engines)
    rows = [line for line in timing.splitlines() if line.startswith("| 20k | Q")]
    assert [r.split("|")[2].strip() for r in rows] == ["Q1", "Q2", "Q3", "Q4"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == len(engines) + 2
        # every engine produced a median and the verified runner a ratio to the plain scan
        assert all(c not in ("", "n/a") for c in cells[2:2 + 4 + ("duckdb" in engines)]), row
        assert cells[engines.index("sandbox verified / best plain") + 2].endswith("x"), row
        assert cells[engines.index("SQL / JSON (verified)") + 2].endswith("x"), row  # the SQL path's rows

    assert "| 20k | Q4 |" in text.split("## CPU time per query")[1].split("\n## ")[0]
    assert "## Peak memory" in text and "| 20k | " in text.split("## Peak memory")[1]
    assert "## Registration-time check" in text
    # accuracy: the count's MAE is the discrete Laplace's (scale 5) up to sampling error
    q2 = next(line for line in text.splitlines() if line.startswith("| Q2 |"))
    mae, expected = float(q2.split("|")[2]), float(q2.split("|")[-2])
    assert abs(expected - 4.97) < 0.01 and 2.5 < mae < 8.0
    # the accuracy table covers a count, a grouped count, a mean and a grouped sum, for JSON and SQL
    acc = text.split("## Accuracy")[1].split("\n## ")[0]
    header = next(line for line in acc.splitlines() if line.startswith("| query |"))
    assert {"sandbox", "sandbox_sql"} <= {c.strip() for c in header.strip("|").split("|")}
    for q in ("Q1", "Q2", "Q3", "Q4"):
        row = next(line for line in acc.splitlines() if line.startswith(f"| {q} |"))
        assert all(float(c.replace(",", "")) >= 0 for c in row.strip("|").split("|")[1:3]), row


@pytest.mark.slow
@pytest.mark.bwrap
def test_latency_smoke_reports_held_bounds_for_queries_and_programs(tmp_path):
    # As shipped (slots held, default Timing) on bubblewrap: every timed query became visible
    # to its operator no earlier than its bound, and the program reached review.
    from tests.conftest import need_backend
    need_backend("bwrap")
    out = tmp_path / "LATENCY.md"
    done = subprocess.run([sys.executable, "-m", "bench.latency", "--smoke", "--out", str(out)],
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    assert "skipped" not in text, text
    query = next(line for line in text.splitlines() if line.startswith("| bwrap | 20,000 | 3 |"))
    cells = [c.strip() for c in query.strip("|").split("|")]
    p50, bound = float(cells[3]), float(cells[6])
    assert bound - 0.05 <= p50 < bound + 2.0, query
    program = next(line for line in text.splitlines() if line.startswith("| bwrap | 20,000 | 4 | 1 |"))
    cells = [c.strip() for c in program.strip("|").split("|")]
    assert float(cells[4]) <= float(cells[6]), program  # reached review within the operator's bound

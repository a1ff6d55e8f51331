"""The load benchmark's smoke run (bench/load.py --smoke: both set-ups, tiny sizes) still runs end
to end and writes its tables with zero errors, so `make bench` cannot rot. Timings are not
asserted: the machine is shared."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need_backend

REPO = Path(__file__).resolve().parents[2]


def _rows(text: str, header_start: str) -> tuple[list[str], list[list[str]]]:
    lines = text.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(header_start))
    header = [c.strip() for c in lines[i].strip("|").split("|")]
    body = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        body.append([c.strip() for c in line.strip("|").split("|")])
    return header, body


@pytest.mark.slow
@pytest.mark.bwrap
@pytest.mark.postgres
def test_load_smoke_writes_both_tables_with_zero_errors(tmp_path):
    need_backend("bwrap")
    out = tmp_path / "LOAD.md"
    # A Redis database of its own, so a full `make bench` running alongside is not disturbed.
    env = dict(os.environ, PYTHONPATH=str(REPO), SANDBOX_BENCH_REDIS="redis://127.0.0.1:6379/11")
    done = subprocess.run([sys.executable, "-m", "bench.load", "--smoke", "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text(encoding="utf-8")

    header, rows = _rows(text, "| set-up | API processes")
    assert [r[0] for r in rows] == ["default", "production"]
    assert [r[header.index("store")] for r in rows] == ["sqlite", "postgresql"]
    for r in rows:
        assert int(r[header.index("requests")].replace(",", "")) > 0
        assert r[header.index("errors")] == "0", text
        assert all(r[header.index(k)] not in ("", "nan") for k in ("p50 (ms)", "p95 (ms)", "p99 (ms)"))

    header, rows = _rows(text, "| set-up | store | broker")
    assert [(r[0], r[header.index("broker")]) for r in rows] == [("default", "filesystem"), ("production", "redis")]
    for r in rows:
        assert r[header.index("accepted")] == r[header.index("jobs")] == "6"
        assert r[header.index("states")] == "released 6", text
        assert r[header.index("errors")] == "0", text
    assert "First errors" not in text

"""The in-box launcher of program mode, run here on the host (no box): the operator's
function is bounded by CPU time, with a wall clock only as a backstop, and the status
it reports says "timeout" for either limit and "error" for everything else."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sandbox.runner.program import run_program_block


@pytest.fixture
def block(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    pq.write_table(pa.table({"person_id": [1, 2, 3], "cost": [10.0, 20.0, 30.0]}), data / "part-0.parquet")
    return tmp_path


def run(block, code: str, *, cpu_seconds: int = 30, wall_seconds: int = 60):
    (block / "program.py").write_text(textwrap.dedent(code))
    job = {"kind": "program_block", "program": str(block / "program.py"), "entrypoint": "analyse",
           "data_dir": str(block / "data"), "out_dir": str(block / "out"),
           "cpu_seconds": cpu_seconds, "wall_seconds": wall_seconds, "memory_mb": 512}
    started = time.monotonic()
    status = run_program_block(job)
    assert json.loads((block / "out" / "vector.json").read_text()) == status
    return status, time.monotonic() - started


def test_a_program_within_its_budgets_returns_its_vector(block):
    status, _ = run(block, """
        def analyse(df):
            return [float(df["cost"].sum()), float(len(df))]
    """)
    assert status == {"status": "ok", "vector": [60.0, 3.0]}


def test_a_busy_loop_is_stopped_by_its_cpu_budget(block, capfd):
    status, wall = run(block, """
        def analyse(df):
            while True:
                pass
    """, cpu_seconds=2, wall_seconds=60)
    assert status == {"status": "timeout"}
    assert wall < 30                    # the CPU budget, not the wall-clock backstop
    assert "block stopped: CPU budget" in capfd.readouterr().err


def test_a_program_that_ignores_sigxcpu_is_killed_at_the_hard_limit_as_a_timeout(block, capfd):
    # SIGKILL comes CPU_KILL_GRACE_SECONDS later; it is still the CPU budget, not an error.
    status, _ = run(block, """
        import signal
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        def analyse(df):
            while True:
                pass
    """, cpu_seconds=1, wall_seconds=60)
    assert status == {"status": "timeout"}
    assert "block stopped: CPU budget" in capfd.readouterr().err


def test_a_sleeping_program_is_stopped_by_the_wall_clock_backstop(block, capfd):
    # Sleeping uses no CPU (and slows no other box): only the backstop ends it.
    status, wall = run(block, """
        import time
        def analyse(df):
            time.sleep(600)
    """, cpu_seconds=30, wall_seconds=3)
    assert status == {"status": "timeout"}
    assert 3 <= wall < 20
    assert "block stopped: wall-clock backstop" in capfd.readouterr().err


def test_cpu_spent_waiting_for_a_busy_cpu_does_not_count(block):
    # A CPU hog on the same CPU doubles the wall time the program needs, and the
    # budget still holds: the outcome does not depend on what else runs.
    code = """
        import os, time
        def analyse(df):
            os.sched_setaffinity(0, {CPU})
            while time.process_time() < 3.0:
                pass
            return [1.0]
    """
    cpu = min(__import__("os").sched_getaffinity(0))
    hog = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])
    try:
        status, wall = run(block, code.replace("CPU", str(cpu)), cpu_seconds=4, wall_seconds=60)
    finally:
        hog.kill()
        hog.wait()
    assert status == {"status": "ok", "vector": [1.0]}
    assert wall > 4                     # a 4 s wall-clock budget would have cut it


def test_a_crash_is_an_error_not_a_timeout(block):
    status, _ = run(block, """
        import os
        def analyse(df):
            os.kill(os.getpid(), 9)
    """, cpu_seconds=30)
    assert status == {"status": "error"}


@pytest.mark.parametrize("field,value", [("cpu_seconds", 0), ("wall_seconds", None), ("cpu_seconds", True)])
def test_budgets_must_be_positive_whole_seconds(block, field, value):
    (block / "program.py").write_text("def analyse(df):\n    return [1.0]\n")
    job = {"kind": "program_block", "program": str(block / "program.py"), "out_dir": str(block / "out"),
           "data_dir": str(block / "data"), "cpu_seconds": 5, "wall_seconds": 10, "memory_mb": 512, field: value}
    with pytest.raises(ValueError, match=field):
        run_program_block(job)

"""Blocks isolated in time as well as space, on real boxes.

Sample-and-aggregate holds only if one person changes one block's output. With wall-clock
budgets the block holding a person could burn CPU and push other blocks past their
budget into the default; so a block's budget is CPU time, and every box holds its CPUs
alone. Here: a busy loop ends at its CPU budget with the default; the same work that fits
its CPU budget still returns its vector when a hog shares its CPU (although it then needs
more wall time than its budget); and boxes drawn from one pool run on different CPUs,
which they cannot widen.

Docker tests skip loudly without a daemon/image and fail in CI (tests/conftest.py need_backend).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox import datagen
from sandbox.agent import aggregation as saa
from sandbox.agent.backends import Limits, RunRequest
from sandbox.agent.backends.cpuslots import CpuSlots, parent_pid, process_tree
from sandbox.agent.blocks import assign_blocks, new_block_seed
from sandbox.config import REPO_ROOT, load
from sandbox.core.schedule import Timing
from sandbox.core.specs.program import parse_program_spec
from tests.conftest import need_backend

BACKENDS = [pytest.param("docker", marks=pytest.mark.docker), pytest.param("bwrap", marks=pytest.mark.bwrap)]
OUTPUTS = [{"name": "cpu_seconds", "lower": 0, "upper": 100}]
DEFAULT = [0.0]
# CPU budget = block timeout + start-up allowance = 8 s. The work below needs about 6 s of
# CPU in all (start-up included): within the budget, but more than 8 s of wall time when a
# hog takes half of its CPU. The box's wall clock is generous, so that only CPU time decides.
BLOCK_TIMEOUT, STARTUP = 5, 3
CPU_BUDGET = BLOCK_TIMEOUT + STARTUP
WORK_CPU_SECONDS = 6.0
GENEROUS_WALL = 150
SPIN = "import time\ndef analyse(df):\n    while True:\n        pass\n"
WORK = (f"import time\ndef analyse(df):\n    while time.process_time() < {WORK_CPU_SECONDS}:\n        pass\n"
        "    return [time.process_time()]\n")


@pytest.fixture(scope="module")
def block_dir(tmp_path_factory) -> Path:
    manifest = datagen.load_manifest(REPO_ROOT / "datasets" / "health_visits.yaml")
    root = tmp_path_factory.mktemp("cpu-blocks")
    data = root / "health_visits"
    datagen.generate(manifest, 2_000, data, seed=7)
    data.chmod(0o755)
    for p in data.glob("*.parquet"):
        p.chmod(0o644)
    return assign_blocks(data, "person_id", 2, new_block_seed(), root / "blocks")[0]


def _backend(kind: str, cpu_slots: CpuSlots | None = None):
    need_backend(kind)
    if kind.startswith("docker"):
        from sandbox.agent.backends.docker import DockerBackend
        return DockerBackend(load().docker_image, "runsc" if kind == "docker-runsc" else "runc", cpu_slots=cpu_slots)
    from sandbox.agent.backends.bwrap import BwrapBackend
    return BwrapBackend(cpu_slots=cpu_slots)


def _spec(code: str):
    manifest = datagen.load_manifest(REPO_ROOT / "datasets" / "health_visits.yaml")
    data = {"mode": "program", "dataset": "health_visits", "purpose": "public_health_planning",
            "outputs": OUTPUTS, "default": DEFAULT, "epsilon": 1.0, "blocks": 2,
            "block_timeout_seconds": BLOCK_TIMEOUT}
    return parse_program_spec(data, manifest, code=code)


def _run_block(backend, code: str, block_dir: Path, work: Path, cpu: int):
    spec = _spec(code)
    # A generous wall-clock backstop too, so that only CPU time decides here.
    timing = Timing(child_start_cpu_seconds=STARTUP, block_wall_factor=GENEROUS_WALL / 2 / CPU_BUDGET)
    limits = replace(saa.block_limits(spec, Limits(memory_mb=1024), timing=timing),
                     wall_seconds=GENEROUS_WALL, cpuset=(cpu,))
    return saa.run_block(backend, spec, block_dir, work, limits, label=f"cpu-{uuid.uuid4().hex[:8]}", timing=timing)


class Hog:
    """A busy process pinned to one CPU, beside the box, for the duration of a with block."""

    def __init__(self, cpu: int) -> None:
        self.cpu = cpu

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{self.cpu}}})\n"
                                                            "while True:\n    pass\n"])
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait()


def _a_cpu() -> int:
    return min(os.sched_getaffinity(0))


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_busy_loop_is_stopped_by_its_cpu_budget_and_gets_the_default(kind, block_dir, tmp_path):
    backend = _backend(kind)
    cpu = _a_cpu()
    with Hog(cpu):
        outcome = _run_block(backend, SPIN, block_dir, tmp_path / "spin", cpu)
    assert (outcome.reason, outcome.vector) == ("timeout", DEFAULT)
    assert outcome.run.ok, outcome.run.stderr[-2000:]
    # The launcher stopped it at its CPU budget (about twice that in wall time, with the hog),
    # long before the wall clock.
    assert b"block stopped: CPU budget" in outcome.run.stderr
    assert outcome.run.wall_seconds < GENEROUS_WALL / 2


@pytest.mark.parametrize("kind", BACKENDS)
def test_work_within_its_cpu_budget_returns_its_vector_even_beside_a_cpu_hog(kind, block_dir, tmp_path):
    backend = _backend(kind)
    cpu = _a_cpu()
    alone = _run_block(backend, WORK, block_dir, tmp_path / "alone", cpu)
    with Hog(cpu):
        crowded = _run_block(backend, WORK, block_dir, tmp_path / "crowded", cpu)
    for outcome in (alone, crowded):
        assert outcome.reason is None, outcome.run.stderr[-2000:]
        assert WORK_CPU_SECONDS <= outcome.vector[0] < CPU_BUDGET
    # Beside the hog the block needed more wall time than its budget: a wall-clock budget
    # (the design before) would have given it the default, and the hog would have decided.
    assert crowded.run.wall_seconds > CPU_BUDGET > WORK_CPU_SECONDS


def _probe(seconds: float) -> str:
    return textwrap.dedent(f"""
        import json, os, time
        began = time.monotonic()
        while time.process_time() < {seconds}:
            pass
        try:
            os.sched_setaffinity(0, set(range(os.cpu_count())))   # try to leave the CPU
        except OSError:
            pass
        print(json.dumps({{"cpus": sorted(os.sched_getaffinity(0)), "began": began, "ended": time.monotonic()}}))
    """)


def _run_concurrently(backend, tmp_path: Path, n: int, seconds: float) -> list:
    results = [None] * n

    def one(i: int) -> None:
        area = tmp_path / f"box-{i}"
        for d in ("job", "data"):
            (area / d).mkdir(parents=True)
            (area / d).chmod(0o755)
        results[i] = backend.run(RunRequest(job_dir=area / "job", data_dir=area / "data", out_dir=area / "out",
                                            python_args=("-c", _probe(seconds)), limits=Limits(wall_seconds=120),
                                            label=f"cpu-{uuid.uuid4().hex[:8]}"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("kind", BACKENDS)
def test_boxes_from_one_pool_run_on_cpus_of_their_own_and_cannot_leave_them(kind, tmp_path):
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    backend = _backend(kind, CpuSlots(tmp_path / "slots", cpus[:2]))
    runs = _run_concurrently(backend, tmp_path, 2, 1.5)
    seen = [json.loads(r.stdout) for r in runs]
    assert all(r.ok for r in runs), [r.stderr[-1000:] for r in runs]
    assert sorted(s["cpus"] for s in seen) == [[cpus[0]], [cpus[1]]]
    # Both ran at once: the pool had a CPU for each.
    assert max(s["began"] for s in seen) < min(s["ended"] for s in seen)


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_box_waits_for_a_free_cpu_rather_than_share_one(kind, tmp_path):
    backend = _backend(kind, CpuSlots(tmp_path / "slots", [_a_cpu()]))
    runs = _run_concurrently(backend, tmp_path, 2, 1.0)
    assert all(r.ok for r in runs), [r.stderr[-1000:] for r in runs]
    first, second = sorted((json.loads(r.stdout) for r in runs), key=lambda s: s["began"])
    assert first["ended"] <= second["began"]


@pytest.mark.docker
def test_a_gvisor_box_is_pinned_from_the_host(tmp_path):
    # runsc ignores cgroups here (so Docker's cpuset): the backend pins gVisor's own threads.
    backend = _backend("docker-runsc", CpuSlots(tmp_path / "slots", [_a_cpu()]))
    label = f"cpu-{uuid.uuid4().hex[:8]}"
    area = tmp_path / "box"
    for d in ("job", "data"):
        (area / d).mkdir(parents=True)
        (area / d).chmod(0o755)
    passes: list[dict[int, set]] = []
    done = threading.Event()

    def watch() -> None:
        import docker
        client = docker.from_env()
        try:
            while not done.is_set():
                for c in client.containers.list(filters={"label": f"sandbox.label={label}"}):
                    try:
                        passes.append(_affinities(parent_pid(c.attrs["State"]["Pid"])))
                    except (OSError, ValueError):
                        pass            # not started yet, or already gone
                done.wait(0.2)
        finally:
            client.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        code = textwrap.dedent("""
            import threading, time
            def spin():
                t = time.monotonic()
                while time.monotonic() - t < 3:
                    pass
            threads = [threading.Thread(target=spin) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        """)
        result = backend.run(RunRequest(job_dir=area / "job", data_dir=area / "data", out_dir=area / "out",
                                        python_args=("-c", code), limits=Limits(wall_seconds=60), label=label))
    finally:
        done.set()
        watcher.join()
    assert result.ok, result.stderr[-1000:]
    # The last look while it ran (the first may precede the pinning, right after the start):
    # the shim, gofer, sandbox and stub threads, every one on the box's CPU alone.
    last = [seen for seen in passes if len(seen) > 10][-1]
    assert set(map(frozenset, last.values())) == {frozenset({_a_cpu()})}


def _affinities(root: int) -> dict[int, set]:
    seen = {}
    for pid in process_tree(root):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                seen[int(tid)] = os.sched_getaffinity(int(tid))
        except OSError:
            pass                        # exited meanwhile
    return seen

"""The observational-equivalence harness on real backends, with hostile programs: the same
operator actions against neighbouring datasets (one enterprise added or removed), where the
operator's code crashes, exhausts its memory, floods its output area and stderr, or sleeps
exactly when the target is present, in reviewed and program mode, then a query job. The
operator's whole trace (every field of every job view, the list, the balance, the releases
and refusals) must be the same, timestamps compared as offsets from the first submission to
within scheduling jitter. Without held slots it is not (the last test)."""
from __future__ import annotations

import json
import re
from datetime import datetime

import pytest

from tests.conftest import need_backend
from tests.integration.harness import enterprise_neighbours, enterprise_world

WALL = 6              # the policy's wall time, and each reviewed job's declared timeout
JITTER = 1.5          # scheduling noise allowed between the two worlds (seconds)
# Start-up costs for this test: generous enough for a busy CI machine, small enough that the
# two worlds of both backends run in a few minutes.
TIMING = "box_start_seconds=2,runner_start_seconds=6,child_start_cpu_seconds=6,margin_seconds=1,block_wall_factor=2"
TIMING_GVISOR = ("box_start_seconds=6,runner_start_seconds=8,child_start_cpu_seconds=8,margin_seconds=3,"
                 "block_wall_factor=2")

WHEN = 'bool((df["enterprise_id"] == TARGET).any())'
HOSTILE_REVIEWED = {
    "crash": f"    if {WHEN}:\n        raise RuntimeError('present')\n",
    "memory": f"    if {WHEN}:\n        hog = bytearray(6 << 30)\n        hog[::4096] = b'x' * len(hog[::4096])\n",
    "flood": (f"    if {WHEN}:\n        import sys\n        sys.stderr.write('x' * (4 << 20))\n"
              "        open(os.path.join(out, 'big.bin'), 'wb').write(os.urandom(64 << 20))\n"),
    "sleep": f"    if {WHEN}:\n        time.sleep(4)\n",
}
REVIEWED_CODE = '''import os, time

def analyse(df, out):
{hostile}    df.groupby("district").size().reset_index(name="enterprises").to_csv(
        os.path.join(out, "by_district.csv"), index=False)
'''
PROGRAM_CODE = f'''import time

def analyse(df):
    if {WHEN}:
        time.sleep(3)
        raise RuntimeError("present")
    return [float(len(df) > 0)]
'''


def _reviewed(name: str, target: int) -> dict:
    spec = {"mode": "reviewed", "dataset": "enterprise_registry", "purpose": "business_environment_analysis",
            "entrypoint": "analyse", "timeout_seconds": WALL,
            "outputs": [{"name": "by_district.csv", "type": "csv", "table_kind": "frequency"}]}
    return {"spec": spec, "code": REVIEWED_CODE.format(hostile=HOSTILE_REVIEWED[name]).replace("TARGET", str(target))}


def _program(target: int) -> dict:
    spec = {"mode": "program", "dataset": "enterprise_registry", "purpose": "business_environment_analysis",
            "entrypoint": "analyse", "outputs": [{"name": "nonempty", "lower": 0, "upper": 1}], "default": [0.0],
            "blocks": 2, "epsilon": 0.5, "block_timeout_seconds": 1}
    return {"spec": spec, "code": PROGRAM_CODE.replace("TARGET", str(target))}


QUERY = {"mode": "query", "dataset": "enterprise_registry", "purpose": "business_environment_analysis",
         "queries": [{"name": "by_district", "statistic": "count", "group_by": ["district"], "epsilon": 0.5}]}


def _world(tmp_path, backend: str, data_dir, target: int, hold: bool) -> dict:
    with enterprise_world(tmp_path, backend, data_dir, WALL, SANDBOX_HOLD_SLOTS="1" if hold else "0",
                          SANDBOX_TIMING=TIMING, SANDBOX_TIMING_GVISOR=TIMING_GVISOR) as (svc, queue, op):
        ids = [svc.operator.submit(op, _reviewed(name, target))["job"]["id"] for name in HOSTILE_REVIEWED]
        ids.append(svc.operator.submit(op, _program(target))["job"]["id"])
        ids.append(svc.operator.submit(op, QUERY)["job"]["id"])
        queue.drain()
        return _trace(svc, op, ids)


def _trace(svc, op, ids: list[str]) -> dict:
    """What the operator can read once everything is decided by the machine, with job ids
    and timestamps made comparable: ids by position, times as seconds after the first job."""
    views = [svc.views.get_job(op, j) for j in ids]
    t0 = datetime.fromisoformat(views[0]["created_at"])
    releases = []
    for j in ids:
        try:
            rel = svc.views.release(op, j)
            body = rel["certificate"]["certificate"]
            releases.append(["released", sorted(rel["files"]), {k: v for k, v in body.items() if k != "files"}])
        except Exception as e:  # noqa: BLE001 - the refusal itself is part of the trace
            releases.append(["refused", type(e).__name__, str(e)])
    raw = {"jobs": views, "list": svc.views.list_jobs(op), "balance": svc.views.balance(op, "enterprise_registry"),
           "releases": releases}
    text = json.dumps(raw, sort_keys=True, ensure_ascii=False, default=str)
    for i, j in enumerate(ids):
        text = text.replace(j, f"<job{i}>")
    text = re.sub(r'"(version|dataset_version)": "[^"]*"', r'"\1": "<v>"', text)
    times: list[tuple[datetime, float]] = []

    def offset(m):
        at = datetime.fromisoformat(m.group(1))
        times.append((at, (at - t0).total_seconds()))
        return f'"<t{len(times) - 1}>"'
    text = re.sub(r'"(\d{4}-\d\d-\d\dT[\d:.]+\+00:00)"', offset, text)
    # Released DP values differ by design: the query's numbers and the files' hashes.
    text = re.sub(r'"(sha256|value|noisy|estimate)": [^,}\]]+', r'"\1": "<dp>"', text)
    return {"text": text, "times": times}


def _worst(a: dict, b: dict) -> float:
    """The largest difference between the worlds' timestamps: calendar times (budget periods,
    licence ends) are equal as they stand, times of jobs as offsets from the first submission."""
    return max(0.0 if x_at == y_at else abs(x_off - y_off) for (x_at, x_off), (y_at, y_off) in zip(a["times"], b["times"]))


def _where(a: dict, b: dict) -> str:
    """Which timestamps differ, with the field each belongs to (for the failure message)."""
    out = []
    for i, ((x_at, x_off), (y_at, y_off)) in enumerate(zip(a["times"], b["times"])):
        if x_at != y_at and abs(x_off - y_off) >= JITTER:
            at = a["text"].index(f'"<t{i}>"')
            out.append(f"{a['text'][max(0, at - 160):at + 8]} : {x_off:.2f} s vs {y_off:.2f} s")
    return "\n".join(out)


@pytest.mark.parametrize("backend", [pytest.param("bwrap", marks=pytest.mark.bwrap),
                                     pytest.param("docker", marks=pytest.mark.docker),
                                     pytest.param("docker-runsc", marks=pytest.mark.docker)])
def test_hostile_programs_leave_the_operator_identical_traces(backend, tmp_path):
    need_backend(backend)
    full, without, target = enterprise_neighbours(tmp_path)
    a = _world(tmp_path / "a", backend, full, target, hold=True)
    b = _world(tmp_path / "b", backend, without, target, hold=True)
    assert a["text"] == b["text"]
    assert len(a["times"]) == len(b["times"]) > 0
    worst = _worst(a, b)
    assert worst < JITTER, _where(a, b)


@pytest.mark.bwrap
def test_without_held_slots_the_traces_differ(tmp_path):
    # The harness can fail: without holding, the hostile boxes' run times show in the times
    # at which later jobs become visible.
    need_backend("bwrap")
    full, without, target = enterprise_neighbours(tmp_path)
    a = _world(tmp_path / "a", "bwrap", full, target, hold=False)
    b = _world(tmp_path / "b", "bwrap", without, target, hold=False)
    assert a["text"] == b["text"] and len(a["times"]) == len(b["times"])
    assert _worst(a, b) > 2 * JITTER

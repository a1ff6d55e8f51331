"""The timing attack of issue 12 on a real backend: a reviewed-mode box that is slow when
the target unit is present, then the operator's next job. With every slot held to its
bound, the next job's start (which the operator reads as `outcome_visible_after`) is the
same for neighbouring datasets; the 4 s the target costs does not show."""
from __future__ import annotations

from datetime import datetime

import pytest

from sandbox.core import schedule
from tests.conftest import need_backend
from tests.integration.harness import enterprise_neighbours, enterprise_world
from tests.unit.test_observational_equivalence import job_file

WALL = 8            # the policy's wall time: every run holds its worker slot this long
SLOW = 4            # what the target's presence costs the hostile box
TOLERANCE = 1.0     # scheduling noise allowed between the two worlds (seconds)

HOSTILE = f'''
import os, time

def analyse(df, out):
    if (df["enterprise_id"] == TARGET).any():
        time.sleep({SLOW})
    df.groupby("district").size().reset_index(name="enterprises").to_csv(
        os.path.join(out, "active_by_district.csv"), index=False)
    df.groupby("entity_type")["employees"].agg(["count", "sum"]).reset_index().to_csv(
        os.path.join(out, "employees_by_type.csv"), index=False)
    open(os.path.join(out, "notes.txt"), "w").write("n")
'''


def _world(tmp_path, backend: str, data_dir, target: int) -> dict:
    with enterprise_world(tmp_path, backend, data_dir, WALL, SANDBOX_HOLD_SLOTS="1") as (svc, queue, op):
        hostile = job_file("reviewed_enterprise")
        hostile["code"] = HOSTILE.replace("TARGET", str(target))
        first = svc.operator.submit(op, hostile)["job"]
        queue.drain(max_items=1)                  # the worker runs the hostile box
        second = svc.operator.submit(op, job_file("enterprise_query"))["job"]
        queue.drain()
        seen = svc.views.get_job(op, second["id"])
        t0 = datetime.fromisoformat(first["created_at"])
        timing = svc.parts.settings.timing_for("L2")
        bound = schedule.task_slot_seconds("query", job_file("enterprise_query"), WALL, schedule.size_class(2000),
                                           timing)
        return {"query_bound": bound, "next_job_visible_after": (datetime.fromisoformat(seen["outcome_visible_after"]) - t0).total_seconds(),
                "first_visible_after": (datetime.fromisoformat(svc.views.get_job(op, first["id"])
                                                                ["outcome_visible_after"]) - t0).total_seconds()}


@pytest.mark.parametrize("backend", [pytest.param("bwrap", marks=pytest.mark.bwrap),
                                     pytest.param("docker", marks=pytest.mark.docker)])
def test_the_next_jobs_timing_does_not_reveal_a_slow_box(backend, tmp_path):
    need_backend(backend)
    full, without, target = enterprise_neighbours(tmp_path)
    a = _world(tmp_path / "a", backend, full, target)
    b = _world(tmp_path / "b", backend, without, target)
    assert abs(a["first_visible_after"] - b["first_visible_after"]) < TOLERANCE, (a, b)
    # The next job starts when the held slot ends (WALL after the first claim), not when the
    # hostile box finished: the same in both worlds, where without holding they differ by SLOW.
    assert abs(a["next_job_visible_after"] - b["next_job_visible_after"]) < TOLERANCE, (a, b)
    # The next job (a query, shown at its own calibrated bound after its claim) became
    # visible no earlier than the first job's held slot plus that bound.
    assert a["next_job_visible_after"] >= WALL + a["query_bound"] - TOLERANCE

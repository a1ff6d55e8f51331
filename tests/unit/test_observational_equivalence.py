"""Observational equivalence: the same operator actions against two neighbouring datasets
(one privacy unit added) must give the operator identical traces, apart from released
DP values: every API field the operator can read, timestamps included, and the trace of
the operator's later jobs. Here on the fakes (an exact clock that moves only when the
sandbox waits, or when a box "takes longer"); tests/integration/test_timing.py runs the
same idea on a real backend.

The hostile box is slow exactly when the target is in its data, the attack of issue 12
(7.8 s against 1.8 s read back through the next job's claim time)."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest

from sandbox import datagen
from sandbox.adapters.memory import MemoryRepository
from sandbox.adapters.queue import InProcessQueue
from sandbox.agent.backends import RunResult
from sandbox.agent.backends.fake import FakeBackend
from sandbox.bootstrap import bootstrap
from sandbox.config import REPO_ROOT, load
from sandbox.core import states as st

START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
SLOW_SECONDS = 7


class Clock:
    def __init__(self):
        self.now = START

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def neighbours(tmp_path_factory):
    """enterprise_registry and health_visits, each with and without one target unit."""
    out = tmp_path_factory.mktemp("neighbours")
    targets = {}
    for name, rows, unit in (("enterprise_registry", 400, "enterprise_id"), ("health_visits", 600, "person_id")):
        full = out / "with" / name
        datagen.generate(datagen.load_manifest(REPO_ROOT / "datasets" / f"{name}.yaml"), rows, full, seed=11)
        table = pq.read_table(sorted(full.glob("*.parquet")))
        target = table.column(unit)[0].as_py()
        targets[name] = (unit, target)
        without = out / "without" / name
        without.mkdir(parents=True)
        keep = [v != target for v in table.column(unit).to_pylist()]
        pq.write_table(table.filter(keep), without / "part-0.parquet")
    return out, targets


def world(tmp_path, data_root, targets, hold_slots: bool):
    clock = Clock()

    def slow_when_target_present(request):
        # The box's duration depends on the data: the target's presence costs SLOW_SECONDS,
        # in every box that runs the operator's code. (Query boxes run only the trusted
        # runner, whose time is a function of the size class: docs/security.md.) Like a real
        # backend, the fake stops a box at its wall clock.
        if json.loads((request.job_dir / "job.json").read_text())["kind"] == "query":
            return None
        for name, (unit, target) in targets.items():
            for f in request.data_dir.glob("*.parquet"):
                if unit in pq.read_schema(f).names and target in pq.read_table(f, columns=[unit]).column(0).to_pylist():
                    if SLOW_SECONDS >= request.limits.wall_seconds:
                        clock.advance(request.limits.wall_seconds)
                        return RunResult(exit_code=None, timed_out=True, oom_killed=False, stdout=b"", stderr=b"",
                                         wall_seconds=request.limits.wall_seconds)
                    clock.advance(SLOW_SECONDS)
                    return None
        return None

    backend = FakeBackend(slow_when_target_present)
    settings = load({"SANDBOX_HOME": str(tmp_path / "home"), "SANDBOX_HOLD_SLOTS": "1" if hold_slots else "0"})
    queue = InProcessQueue()
    svc = bootstrap(settings, repo=MemoryRepository(clock), queue=queue, clock=clock, sleep=clock.advance,
                    backend_factory=lambda _c=None: backend)
    svc.accounts.create_user("operator", st.OPERATOR, "tok-op")
    svc.accounts.create_user("owner", st.OWNER, "tok-owner")
    owner = svc.accounts.user("owner")
    for name in targets:
        svc.owner.register_dataset(owner, REPO_ROOT / "datasets" / f"{name}.yaml", data_root / name)
        text = (REPO_ROOT / "policies" / f"{name}.yaml").read_text(encoding="utf-8")
        text = re.sub(r"wall_seconds: \d+", "wall_seconds: 20", text)
        svc.owner.apply_policy(owner, text, f"policies/{name}.yaml")
    return svc, queue, clock


def job_file(name: str) -> dict:
    spec = json.loads((REPO_ROOT / "jobs" / f"{name}.json").read_text())
    if "program" not in spec:
        return spec
    return {"spec": {k: v for k, v in spec.items() if k != "program"},
            "code": (REPO_ROOT / "jobs" / spec["program"]).read_text()}


def operator_trace(svc, queue, clock, job_ids_out: list) -> list:
    """Everything the operator does and reads, in order: submit a reviewed job and a
    program job, let the worker take the first task, submit a query job (its start and
    visibility then depend on when the worker frees up), run everything, read at times."""
    op = svc.accounts.user("operator")
    trace, ids = [], job_ids_out
    reviewed = job_file("reviewed_enterprise")
    program = job_file("program_mean_cost")
    program["spec"]["blocks"] = 2
    for raw in (reviewed, program):
        ids.append(svc.operator.submit(op, raw)["job"]["id"])
    queue.drain(max_items=1)                      # the worker takes the reviewed job
    ids.append(svc.operator.submit(op, job_file("enterprise_query"))["job"]["id"])
    queue.drain()
    end = clock.now
    for at in [START + timedelta(seconds=s) for s in range(0, 400, 5)] + [end + timedelta(days=1)]:
        clock.now = at
        trace.append(("at", at.isoformat()))
        trace.append(("list", svc.views.list_jobs(op)))
        trace.append(("jobs", [svc.views.get_job(op, j) for j in ids]))
        trace.append(("balance", [svc.views.balance(op, d) for d in ("health_visits", "enterprise_registry")]))
    for j in ids:
        try:
            rel = svc.views.release(op, j)
            # Released DP values differ by design (fresh noise, other data): their bytes and
            # hashes are left out, everything else of the release and certificate is compared.
            body = rel["certificate"]["certificate"]
            trace.append(("release", sorted(rel["files"]), {k: v for k, v in body.items() if k != "files"}))
        except Exception as e:  # noqa: BLE001 - the refusal itself is part of the trace
            trace.append(("release refused", type(e).__name__, str(e)))
    return trace


def normalised(trace, ids) -> str:
    text = json.dumps(trace, sort_keys=True, ensure_ascii=False, default=str)
    for i, j in enumerate(ids):
        text = text.replace(j, f"<job{i}>")
    # Dataset versions are public inputs that differ between the two worlds by definition.
    return re.sub(r'"(version|dataset_version)": "[^"]*"', r'"\1": "<v>"', text)


def traces(tmp_path, neighbours, hold_slots: bool) -> tuple[str, str]:
    root, targets = neighbours
    out = []
    for side in ("with", "without"):
        svc, queue, clock = world(tmp_path / side, root / side, targets, hold_slots)
        ids: list = []
        out.append(normalised(operator_trace(svc, queue, clock, ids), ids))
    return out[0], out[1]


def test_neighbouring_datasets_give_the_operator_identical_traces(tmp_path, neighbours):
    with_target, without_target = traces(tmp_path, neighbours, hold_slots=True)
    assert with_target == without_target


def test_the_harness_sees_the_leak_when_slots_are_not_held(tmp_path, neighbours):
    # The behaviour before slots were held: the query job starts when the reviewed run ends,
    # which is SLOW_SECONDS later when the target is present.
    with_target, without_target = traces(tmp_path, neighbours, hold_slots=False)
    assert with_target != without_target

"""One hostile campaign per isolation backend: every program in hostile.py is submitted
through the real services layer (mock check included) and executed on the real backend,
then the evidence each role could see is gathered once; the tests assert on it.

Running the campaign once per backend (jobs in parallel, blocks in-process) keeps the
suite to a few minutes; each test still checks one attack and one role.
"""
from __future__ import annotations

import glob
import hashlib
import os
import secrets
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import OWNER
from sqlalchemy import select

from sandbox.bootstrap import bootstrap
from sandbox.config import REPO_ROOT, load
from sandbox.core.errors import InvalidInput
from sandbox.agent.backends import Limits
from sandbox.adapters.store.models import AuditEvent, BlockResult, Job, LedgerEntry
from tests.conftest import make_env, need_backend
from tests.security.hostile import BY_NAME, PROGRAMS, Hostile, source

BACKENDS = [
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
    pytest.param("docker-runsc", marks=pytest.mark.docker, id="docker-runsc"),
    pytest.param("bwrap", marks=pytest.mark.bwrap, id="bwrap"),
]
K = 2
EPSILON = 0.2
WALL_SECONDS = 30          # the policy's wall time: outcome visible at claim + this
TIMING_WALL_SECONDS = 8    # the timing pair's policy version: shorter than its slow run
SLEEP_SECONDS = 15         # the slow run of the timing pair (within block timeout + allowance)
MEMORY_MB = 512
TMP_MB = Limits().tmp_mb
PIDS = Limits().pids
PARALLEL_JOBS = 4

POLICY = """
dataset: health_visits
classification: L3
modes: [query, program]
release: one_reviewer
run_approval: auto
licences:
  - operator: operator
    expires: 2099-12-31
    purposes: [public_health_planning]
budget:
  epsilon_per_period: 100.0
  refresh: monthly
  lifetime_epsilon: 100.0
limits:
  wall_seconds: {wall}
  memory_mb: {memory}
  cpus: 1
"""


# ------------------------------------------------------------------ host listeners
class Listener:
    """TCP and UDP servers on every host address: anything a box sends lands here."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("0.0.0.0", 0))
        self.tcp.listen(16)
        self.tcp.settimeout(0.2)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("0.0.0.0", 0))
        self.udp.settimeout(0.2)
        self.tcp_port, self.udp_port = self.tcp.getsockname()[1], self.udp.getsockname()[1]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True),
                         threading.Thread(target=self._receive, daemon=True)]
        for t in self._threads:
            t.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self.tcp.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    self.received.append((f"tcp {addr}", conn.recv(4096)))
                except OSError:
                    self.received.append((f"tcp {addr}", b""))

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.udp.recvfrom(4096)
            except OSError:
                continue
            self.received.append((f"udp {addr}", data))

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        self.tcp.close()
        self.udp.close()


def host_addresses() -> list[str]:
    """Loopback, the Docker bridge's host side and the default route's source address."""
    addrs = ["127.0.0.1"]
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True).stdout
    addrs.append(out.split()[3].split("/")[0] if out.split() else "172.17.0.1")
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.254", 9))       # no packet is sent: this only picks a route
        addrs.append(probe.getsockname()[0])
    except OSError:
        addrs.append("10.255.255.1")
    finally:
        probe.close()
    return addrs


def tree_hash(directory: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(directory).rglob("*")):
        h.update(str(p.relative_to(directory)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


# ------------------------------------------------------------------ evidence
@dataclass
class Evidence:
    """What one hostile job left, per role."""
    program: Hostile
    job_id: str
    state: str                                  # internal final state
    blocks: list[dict]                          # in-domain block results (oracle, not a role view)
    operator_before: dict = field(default_factory=dict)   # get_job just before visible_after
    operator_after: dict = field(default_factory=dict)    # get_job after visible_after
    operator_listed: list = field(default_factory=list)   # list_jobs entries, before and after
    operator_release: dict | None = None
    compliance: dict = field(default_factory=dict)         # review_detail before the decision
    diagnostics: dict = field(default_factory=dict)        # compliance.diagnostics after the decision
    ledger: list[tuple] = field(default_factory=list)
    claimed_at: object = None
    finished_at: object = None
    visible_after: object = None

    def flags(self) -> list[dict]:
        return [dict(zip(self.program.attacks, b["vector"])) for b in self.blocks]


@dataclass
class Campaign:
    backend: str
    evidence: dict[str, Evidence]
    received: list
    dataset_hash_before: dict
    dataset_hash_after: dict
    leftover_containers: str
    leftover_processes: str
    leftover_work_areas: list
    constants: dict
    target_cost: float
    services: object
    operator: object
    mock_refusal: dict
    hostnames: tuple


def programs_for(backend: str) -> list[Hostile]:
    return [p for p in PROGRAMS if p.gvisor or backend != "docker-runsc"]


def _run_campaign(backend: str, demo_datasets_dir: Path, tmp_path: Path) -> Campaign:
    need_backend(backend)
    programs = programs_for(backend)
    settings = load(make_env(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", demo_datasets_dir, backend))
    svc = bootstrap(settings, enqueue=lambda _job_id: None)
    health = demo_datasets_dir / "health_visits"
    other = demo_datasets_dir / "enterprise_registry"
    svc.owner.register_dataset(OWNER, REPO_ROOT / "datasets" / "health_visits.yaml", health)
    svc.owner.register_dataset(OWNER, REPO_ROOT / "datasets" / "enterprise_registry.yaml", other)
    svc.accounts.create_user("operator", "operator", "op-token")
    svc.accounts.create_user("rev", "compliance", "rev-token")
    operator, reviewer = svc.accounts.authenticate("op-token"), svc.accounts.authenticate("rev-token")

    raw = pq.read_table(sorted(glob.glob(str(health / "*.parquet")))).to_pandas()
    target = int(raw["person_id"].iloc[0])
    target_cost = float(raw.loc[raw["person_id"] == target, "cost"].sum())
    mark = f"hostile{secrets.token_hex(6)}"
    canary = f"canary{secrets.token_hex(8)}"
    listener = Listener()
    constants = {
        "MARK": mark, "TARGET": target, "ABSENT": 7, "SLEEP": SLEEP_SECONDS, "HOSTS": host_addresses(),
        "TCP_PORT": listener.tcp_port, "UDP_PORT": listener.udp_port, "CANARY": canary,
        "OTHER_DATASET": str(other), "FULL_DATASET": str(health), "JOBS_DIR": str(settings.jobs_dir),
        "DB_FILE": str(tmp_path / "db.sqlite"), "SIGNING_KEY": str(settings.signing_key_path),
        "HOME_DIR": str(settings.home), "REPO": str(REPO_ROOT), "HOST_PID": os.getpid(),
        "TMP_MB": TMP_MB, "PIDS": PIDS,
    }
    hostname_before = socket.gethostname()
    hashes_before = {"health_visits": tree_hash(health), "enterprise_registry": tree_hash(other)}
    # A secret in the worker's environment: no box may see it.
    os.environ["SANDBOX_TEST_HOST_SECRET"] = canary

    def spec(p: Hostile) -> dict:
        return {"mode": "program", "dataset": "health_visits", "purpose": "public_health_planning",
                "outputs": [{"name": a, "lower": 0, "upper": 1} for a in p.attacks],
                "default": [0.5] * len(p.attacks), "blocks": K, "epsilon": EPSILON,
                "block_timeout_seconds": p.block_timeout}

    def submit(p: Hostile) -> str:
        return svc.operator.submit(operator, {"spec": spec(p), "code": source(p, constants)})["job"]["id"]

    ids: dict[str, str] = {}
    try:
        # The timing pair runs under a policy version whose wall time is shorter than the slow run.
        svc.owner.apply_policy(OWNER, POLICY.format(wall=TIMING_WALL_SECONDS, memory=MEMORY_MB),
                         "policies/health_visits.yaml")
        for p in programs:
            if p.timing_policy:
                ids[p.name] = submit(p)
        svc.owner.apply_policy(OWNER, POLICY.format(wall=WALL_SECONDS, memory=MEMORY_MB), "policies/health_visits.yaml")
        # Realistic too: a program that fails on mock data is refused at submission.
        mock_refusal = {"balance_before": svc.views.balance(operator, "health_visits")}
        try:
            svc.operator.submit(operator, {"spec": spec(PROGRAMS[0]),
                                  "code": "def analyse(df):\n    raise RuntimeError('mock ' + str(len(df)))\n"})
            mock_refusal["error"] = None
        except InvalidInput as e:
            mock_refusal["error"] = str(e)
        mock_refusal["balance_after"] = svc.views.balance(operator, "health_visits")
        mock_refusal["jobs"] = len(svc.views.list_jobs(operator))

        def submit_and_run(p: Hostile) -> None:
            if p.name not in ids:
                ids[p.name] = submit(p)
            svc.agent.execute(ids[p.name])

        for phase in (1, 2):
            with ThreadPoolExecutor(PARALLEL_JOBS) as pool:
                for f in [pool.submit(submit_and_run, p) for p in programs if p.phase == phase]:
                    f.result()
    finally:
        os.environ.pop("SANDBOX_TEST_HOST_SECRET", None)
        listener.close()

    # ---- what is left on the host
    hostname_after = socket.gethostname()
    hashes_after = {"health_visits": tree_hash(health), "enterprise_registry": tree_hash(other)}
    containers = ""
    if backend.startswith("docker"):
        listed = subprocess.run(["docker", "ps", "-a", "--filter", "label=sandbox.box=1",
                                 "--format", '{{.Label "sandbox.label"}}'], capture_output=True, text=True).stdout
        containers = "\n".join(l for l in listed.splitlines() if any(l.startswith(j) for j in ids.values()))
    processes = subprocess.run(["pgrep", "-af", mark], capture_output=True, text=True).stdout
    processes = "\n".join(l for l in processes.splitlines() if "pgrep" not in l)
    work_areas = sorted(str(p.relative_to(settings.jobs_dir)) for p in settings.jobs_dir.rglob("*")) \
        if settings.jobs_dir.exists() else []

    # ---- per job, per role
    evidence: dict[str, Evidence] = {}
    real_clock = svc.clock
    for p in programs:
        job_id = ids[p.name]
        with svc.store.transaction() as s:
            job = s.get(Job, job_id)
            blocks = s.execute(select(BlockResult).where(BlockResult.job_id == job_id)
                               .order_by(BlockResult.block)).scalars().all()
            events = s.execute(select(AuditEvent).where(AuditEvent.subject == job_id,
                                                        AuditEvent.action == "job.transition")
                               .order_by(AuditEvent.seq)).scalars().all()
            ledger = s.execute(select(LedgerEntry).where(LedgerEntry.job_id == job_id)
                               .order_by(LedgerEntry.id)).scalars().all()
            ev = Evidence(program=p, job_id=job_id, state=job.state,
                          blocks=[{"block": b.block, "vector": b.vector, "reason": b.reason or None,
                                   "exit_code": b.exit_code, "wall_seconds": b.wall_seconds, "stderr": b.stderr}
                                  for b in blocks],
                          ledger=[(e.kind, e.resolution, e.epsilon) for e in ledger],
                          visible_after=job.visible_after)
            for e in events:
                if e.payload["to"] == "running":
                    ev.claimed_at = e.at
                if e.payload["from"] == "checking" or (e.payload["from"] == "running"
                                                       and e.payload["to"] in ("failed", "awaiting_review")):
                    ev.finished_at = e.at
        from sandbox.adapters.store.repository import _aware
        visible = _aware(ev.visible_after)
        try:
            svc.clock = lambda: visible - timedelta(microseconds=1)
            ev.operator_before = svc.views.get_job(operator, job_id)
            ev.operator_listed.append(next(v for v in svc.views.list_jobs(operator) if v["id"] == job_id))
            svc.clock = lambda: visible + timedelta(seconds=1)
            ev.operator_after = svc.views.get_job(operator, job_id)
            ev.operator_listed.append(next(v for v in svc.views.list_jobs(operator) if v["id"] == job_id))
            svc.clock = real_clock
            ev.compliance = svc.compliance.review_detail(reviewer, job_id)
            if ev.state == "awaiting_review" and ev.compliance["compliance"].get("failed"):
                svc.compliance.review(reviewer, job_id, "reject", "run_failed")   # nothing to release
            elif ev.state == "awaiting_review":
                svc.compliance.review(reviewer, job_id, "approve")
                svc.clock = lambda: visible + timedelta(seconds=2)
                ev.operator_release = svc.views.release(operator, job_id)
            ev.diagnostics = svc.compliance.diagnostics(reviewer, job_id)   # opens once decided
        finally:
            svc.clock = real_clock
        evidence[p.name] = ev

    return Campaign(backend=backend, evidence=evidence, received=list(listener.received),
                    dataset_hash_before=hashes_before, dataset_hash_after=hashes_after,
                    leftover_containers=containers, leftover_processes=processes,
                    leftover_work_areas=work_areas, constants=constants, target_cost=target_cost,
                    services=svc, operator=operator, mock_refusal=mock_refusal,
                    hostnames=(hostname_before, hostname_after))


def pytest_configure(config):
    config.addinivalue_line("markers", "program(name): the test is about this hostile program only")


def pytest_collection_modifyitems(config, items):
    """Cases of programs that do not run under gVisor are deselected, not skipped: a skipped
    Docker test means "Docker was not verified" in the run's summary (tests/conftest.py)."""
    keep, drop = [], []
    for item in items:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        program = params.get("program") or next((m.args[0] for m in item.iter_markers("program")), None)
        if params.get("campaign") == "docker-runsc" and program in BY_NAME and not BY_NAME[program].gvisor:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session", params=BACKENDS)
def campaign(request, demo_datasets_dir, tmp_path_factory) -> Campaign:
    result = _run_campaign(request.param, demo_datasets_dir, tmp_path_factory.mktemp(f"hostile-{request.param}"))
    yield result
    result.services.dispose()

"""Shared fixtures: real databases (SQLite, PostgreSQL), real brokers, real backends.

CI sets SANDBOX_REQUIRE_DOCKER=1 / SANDBOX_REQUIRE_BWRAP=1: a missing engine then
fails the run instead of skipping it, and the summary says how many Docker tests ran.
"""
from __future__ import annotations

import contextlib

import os
import secrets
import shutil
import subprocess

import pytest


from sandbox.config import REPO_ROOT, load
from sandbox.core.records import User

# The demo owner account: the demo datasets are registered under it, so it alone
# applies their policies and approves their runs.
OWNER = User(name="owner", role="owner", token_hash="")

PG_ADMIN_URL = os.environ.get("SANDBOX_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SANDBOX_TEST_REDIS", "redis://127.0.0.1:6379/15")
DEMO_ROWS = {"health_visits": 20_000, "enterprise_registry": 5_000}


def require(name: str) -> bool:
    return os.environ.get(f"SANDBOX_REQUIRE_{name.upper()}") == "1"


def need_backend(kind: str) -> None:
    """Skip loudly, or fail in CI, when an isolation backend cannot run here."""
    from sandbox.agent.backends import BackendUnavailable
    from sandbox.agent.backends.select import get_backend
    settings = load({"SANDBOX_BACKEND": kind.split("-")[0],
                     "SANDBOX_DOCKER_RUNTIME": kind.split("-")[1] if "-" in kind else "runc"})
    try:
        get_backend(settings)
    except BackendUnavailable as e:
        msg = f"{kind} backend unavailable: {e}"
        # gVisor is required in CI by its own flag: a machine may run Docker without it.
        if require("runsc" if kind == "docker-runsc" else kind.split("-")[0]):
            pytest.fail(msg + " (required in CI)" + _dockerd_log_tail(kind))
        pytest.skip(msg)


def _dockerd_log_tail(kind: str) -> str:
    """The end of the engine's own log, so a CI failure says why the daemon is gone."""
    log = os.environ.get("DOCKERD_LOG", "/tmp/dockerd.log")
    if not kind.startswith("docker") or not os.path.exists(log):
        return ""
    with open(log, errors="replace") as f:
        return "\nend of " + log + ":\n" + "".join(f.readlines()[-8:])


# ------------------------------------------------------------------ datasets
@pytest.fixture(scope="session")
def demo_datasets_dir(tmp_path_factory):
    """Small demo datasets generated once per session (same generator as make run)."""
    from sandbox import datagen
    out = tmp_path_factory.mktemp("datasets")
    for name, rows in DEMO_ROWS.items():
        manifest = datagen.load_manifest(REPO_ROOT / "datasets" / f"{name}.yaml")
        datagen.generate(manifest, rows, out / name, seed=7)
    return out


# ------------------------------------------------------------------ databases
@contextlib.contextmanager
def fresh_postgres(prefix: str = "sandbox_test"):
    """A new PostgreSQL database (its URL), dropped afterwards with whatever still holds it."""
    import sqlalchemy as sa
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as e:
        if require("postgres") or os.environ.get("CI"):
            pytest.fail(f"PostgreSQL unavailable: {e}")
        pytest.skip(f"PostgreSQL unavailable: {e}")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_database():
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    with fresh_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sandbox.db'}"
    url = request.getfixturevalue("pg_database")
    from sandbox.adapters.store.db import Store
    store = Store(url)
    store.drop_all()
    store.dispose()
    return url


def make_env(tmp_path, database_url: str, datasets_dir, backend: str = "bwrap", broker_url: str | None = None) -> dict:
    """Environment for the service under test; in-process code reads the same values."""
    if broker_url is None:
        broker_url = "filesystem://" if database_url.startswith("sqlite") else REDIS_URL
    return {
        "SANDBOX_HOME": str(tmp_path / "home"),
        "SANDBOX_DATABASE_URL": database_url,
        "SANDBOX_BROKER_URL": broker_url,
        "SANDBOX_BACKEND": backend.split("-")[0],
        "SANDBOX_DOCKER_RUNTIME": backend.split("-")[1] if "-" in backend else "runc",
        "SANDBOX_DATASETS_DIR": str(datasets_dir),
        # Holding every slot to its bound is what makes timing data-independent; tests that
        # do not measure timing turn it off to stay fast (tests/integration/test_timing.py
        # and tests/unit/test_observational_equivalence.py keep it on).
        "SANDBOX_HOLD_SLOTS": "0",
        # Calibrated bounds stop a run at its bound; on a test machine busy with other tests
        # the start-up costs are allowed generously, so no test fails for want of a CPU.
        "SANDBOX_TIMING": "box_start_seconds=1.5,runner_start_seconds=8,child_start_cpu_seconds=12,margin_seconds=1.5,"
                          "block_wall_factor=2",
        "SANDBOX_TIMING_GVISOR": "box_start_seconds=5,runner_start_seconds=15,child_start_cpu_seconds=25,"
                                 "margin_seconds=3",
    }


def make_services(tmp_path, datasets_dir, *, users, database_url: str | None = None, backend: str = "bwrap",
                  dataset: str = "health_visits", policy: str | None = None, **env_extra):
    """Services on a real store with one dataset registered, its policy applied and the given
    users ((name, role, token) each); jobs are not enqueued: tests call claim/execute."""
    from sandbox.bootstrap import bootstrap
    env = make_env(tmp_path, database_url or f"sqlite:///{tmp_path / 'db.sqlite'}", datasets_dir, backend)
    env.update(env_extra)
    svc = bootstrap(load(env), enqueue=lambda _job_id: None)
    svc.owner.register_dataset(OWNER, REPO_ROOT / "datasets" / f"{dataset}.yaml", datasets_dir / dataset)
    if policy is not None:
        svc.owner.apply_policy(OWNER, policy, f"policies/{dataset}.yaml")
    for name, role, token in users:
        svc.accounts.create_user(name, role, token)
    return svc


def flush_redis(url: str = REDIS_URL) -> None:
    import redis
    redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="session")
def docker_available() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True).returncode == 0


# ------------------------------------------------------------------ summary
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    stats = terminalreporter.stats
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for outcome in counts:
        for rep in stats.get(outcome, []):
            if "docker" in getattr(rep, "keywords", {}):
                counts[outcome] += 1
    tr = terminalreporter
    tr.write_sep("=", f"Docker tests: {counts['passed']} passed, {counts['failed']} failed, "
                      f"{counts['skipped']} skipped")
    if counts["skipped"] or (counts["passed"] + counts["failed"] == 0):
        tr.write_sep("!", "DOCKER TESTS DID NOT ALL RUN: isolation on Docker is NOT verified by this run", red=True)

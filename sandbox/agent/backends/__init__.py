"""Isolation backends: run trusted runner code next to raw data, in a box.

Backends only isolate and move files. Disclosure and DP checks live in the
core (sandbox.core, sandbox.core.release.gate), once, whatever the backend.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Limits:
    """cpus is a CPU quota (CFS) and the number of whole CPUs a box holds exclusively;
    cpuset names those CPUs, or None to take them from the backend's pool (cpuslots.py;
    without a pool the box is not pinned)."""
    memory_mb: int = 1024
    cpus: float = 1.0
    pids: int = 64
    wall_seconds: float = 120
    output_bytes: int = 10 * 1024 * 1024   # size of the writable output area
    output_files: int = 16
    tmp_mb: int = 64
    nofile: int = 256
    cpuset: tuple[int, ...] | None = None


@dataclass(frozen=True)
class RunRequest:
    """One isolated run.

    job_dir   host directory, visible read-only at /job inside the box
    data_dir  host directory of the dataset, visible read-only at /data
    out_dir   host directory (empty), visible read-write at /out
    python_args  arguments after the interpreter, e.g. ["-m", "sandbox.runner", "/job/job.json"];
              the backend supplies its own interpreter that has the runner installed.
    """
    job_dir: Path
    data_dir: Path
    out_dir: Path
    python_args: tuple[str, ...]
    limits: Limits = field(default_factory=Limits)
    label: str = ""


@dataclass(frozen=True)
class RunResult:
    """What happened. stdout/stderr are capped and go to compliance only, never to
    the operator of a real-data run."""
    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    stdout: bytes
    stderr: bytes
    wall_seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.oom_killed


LOG_CAP_BYTES = 64 * 1024


class IsolationBackend(Protocol):
    """Contract of an isolation backend.

    name       short identifier recorded with each run ("docker", "docker-runsc", "bwrap").
    available  True when this machine can run the backend now (daemon up, image built...).
    run        blocks until the run ends or its wall-clock limit passes, enforces every
               limit in request.limits as far as the mechanism allows (the box runs only on
               its CPUs, held for the run: limits.cpuset, else from its pool), mounts nothing else
               from the host, gives the box no network, leaves nothing behind (container,
               processes) and returns a RunResult. It never raises for what the code inside
               did; it raises BackendUnavailable if it cannot start the box at all.
    """
    name: str

    def available(self) -> bool: ...

    def run(self, request: RunRequest) -> RunResult: ...

    def terminate(self, label: str) -> None:
        """Stop and remove whatever is left of runs with this label (a worker died
        mid-run). Idempotent; a no-op when nothing is left."""
        ...


class BackendUnavailable(RuntimeError):
    pass


class CheckedBackend:
    """Shared by the backends: `available` is `check` that does not raise."""

    def check(self) -> None:
        """Raise BackendUnavailable saying why this backend cannot run now."""
        raise NotImplementedError

    def available(self) -> bool:
        try:
            self.check()
        except BackendUnavailable:
            return False
        return True

"""Docker isolation backend: one fresh, locked-down container per run.

The image (./Dockerfile, scripts/build-image.sh) holds the interpreter, the runner's
libraries and the sandbox package; the host contributes only three bind mounts.
With runtime="runsc" the container runs under gVisor, whose kernel sits between the job
and the host kernel.

Each container runs on CPUs it holds alone (cpuslots.py): Docker's cpuset under runc; under
runsc, which ignores cgroups here, the sandbox's host threads are pinned after the start.
"""
from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import docker
import docker.errors
import requests.exceptions
from docker.types import LogConfig, Mount, Ulimit

from sandbox.agent.backends import LOG_CAP_BYTES, BackendUnavailable, CheckedBackend, RunRequest, RunResult
from sandbox.agent.backends.cpuslots import CpuSlots, box_cpus, cpu_list, parent_pid, pin_process_tree
from sandbox.agent.backends.seccomp import gvisor_security_opt

IMAGE_PYTHON = "/opt/venv/bin/python"   # set up by ./Dockerfile
CONTAINER_UID = 10001                   # created in ./Dockerfile, owns nothing in the image
LABEL = "sandbox.box"             # marks our containers, so leftovers can be found
HOST_LABEL = "sandbox.host"       # the worker host that started it (agent/leftovers.py)
WORK_LABEL = "sandbox.work"       # its work area: jobs_dir/<job_id>/attempt-<n>/...
GVISOR_AS_ALLOWANCE_MB = 1024


class DockerBackend(CheckedBackend):
    def __init__(self, image: str, runtime: str = "runc", *, client=None,
                 python: str = IMAGE_PYTHON, uid: int = CONTAINER_UID, cpu_slots: CpuSlots | None = None) -> None:
        self.image = image
        self.cpu_slots = cpu_slots
        self.runtime = runtime
        self.name = "docker" if runtime == "runc" else f"docker-{runtime}"
        self.python = python
        self.uid = uid
        self._client = client

    # -- availability -------------------------------------------------------------------------

    def _docker(self):
        if self._client is None:
            client = None
            try:
                client = docker.from_env(timeout=30)
                client.ping()
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                if client is not None:
                    client.close()  # else its socket is left for the garbage collector
                raise BackendUnavailable(f"docker daemon not reachable: {exc}") from exc
            self._client = client
        return self._client

    def check(self) -> None:
        """Raise BackendUnavailable saying why this backend cannot run now."""
        client = self._docker()
        try:
            client.ping()
            client.images.get(self.image)
            runtimes = client.info().get("Runtimes", {})
        except docker.errors.ImageNotFound as exc:
            raise BackendUnavailable(
                f"image {self.image} not found; build it with scripts/build-image.sh") from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise BackendUnavailable(f"docker daemon not usable: {exc}") from exc
        if self.runtime not in runtimes:
            raise BackendUnavailable(
                f"docker runtime {self.runtime!r} not registered; run scripts/start-docker.sh")
        if not (_has_capability(CAP_CHOWN) and _has_capability(CAP_DAC_OVERRIDE)):
            # Checked here, not mid-run: a job then fails for compliance with this reason.
            raise BackendUnavailable("giving each box's /out to the box user (uid 10001) and reading and removing "
                                     "what the box left there needs CAP_CHOWN and CAP_DAC_OVERRIDE: run the worker "
                                     "as root or grant it both (docs/operations.md, workers not running as root)")
        if self.runtime == "runsc" and self.cpu_slots is not None and not _may_pin_other_processes():
            raise BackendUnavailable("pinning gVisor boxes to their CPUs needs CAP_SYS_NICE (run the worker as root)")

    # -- running ------------------------------------------------------------------------------

    def image_digest(self) -> str:
        """The runner image's content-addressed id, named in release certificates."""
        try:
            return self._docker().images.get(self.image).id
        except (docker.errors.DockerException, BackendUnavailable):
            return ""

    def leftovers(self) -> list[tuple[str, str]]:
        """(container id, work area) of every box this host started that still exists; the
        sweeper (agent/leftovers.py) removes those whose attempt is no longer running."""
        try:
            found = self._docker().containers.list(
                all=True, filters={"label": [LABEL, f"{HOST_LABEL}={socket.gethostname()}"]})
        except (docker.errors.DockerException, requests.exceptions.RequestException, BackendUnavailable):
            return []
        return [(c.id, c.labels.get(WORK_LABEL, "")) for c in found]

    def remove_box(self, container_id: str) -> None:
        try:
            self._docker().containers.get(container_id).remove(force=True, v=True)
        except docker.errors.NotFound:
            pass

    def terminate(self, label: str) -> None:
        """Remove containers left by a worker that died mid-run (they outlive their client)."""
        try:
            for c in self._docker().containers.list(all=True, filters={"label": f"sandbox.label={label}"}):
                c.remove(force=True)
        except docker.errors.NotFound:
            pass

    def run(self, request: RunRequest) -> RunResult:
        # The CPUs are held from before the container exists until after it is gone.
        with box_cpus(request.limits, self.cpu_slots) as cpus:
            return self._run(request, cpus)

    def _run(self, request: RunRequest, cpus: tuple[int, ...] | None) -> RunResult:
        client = self._docker()
        limits = request.limits
        self._prepare_out_dir(request.out_dir)
        container = None
        started = time.monotonic()
        try:
            try:
                container = client.containers.create(**self._create_kwargs(request, cpus))
                container.start()
                if cpus and self.runtime == "runsc":
                    self._pin_gvisor(container, cpus)
            except docker.errors.ImageNotFound as exc:
                raise BackendUnavailable(f"image {self.image} not found") from exc
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                raise BackendUnavailable(f"cannot start container: {exc}") from exc
            started = time.monotonic()

            timed_out = False
            try:
                container.wait(timeout=limits.wall_seconds)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                # The wait request timing out is how the SDK reports a wall-clock overrun.
                timed_out = True
                _kill(container)
                container.wait(timeout=30)
            wall = time.monotonic() - started

            container.reload()
            state = container.attrs["State"]
            return RunResult(
                exit_code=state.get("ExitCode"),
                timed_out=timed_out,
                oom_killed=bool(state.get("OOMKilled")),
                stdout=_tail(container.logs(stdout=True, stderr=False)),
                stderr=_tail(container.logs(stdout=False, stderr=True)),
                wall_seconds=wall,
            )
        finally:
            if container is not None:
                _remove(container)

    def _prepare_out_dir(self, out_dir: Path) -> None:
        # The job runs as uid 10001, so /out must be that user's; 0700 keeps other host users out.
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        # chmod first: once the folder is the box user's, a worker that is not root (with
        # CAP_CHOWN, not CAP_FOWNER) may no longer change its mode.
        os.chmod(out_dir, 0o700)
        os.chown(out_dir, self.uid, self.uid)

    def _pin_gvisor(self, container, cpus: tuple[int, ...]) -> None:
        """runsc runs with --ignore-cgroups here, so the cpuset Docker passes it is ignored:
        pin the container's shim and everything under it (gVisor's sandbox, gofer and stub
        processes) from the host instead. Fails the start rather than run unpinned."""
        try:
            container.reload()
            pid = int(container.attrs["State"]["Pid"])
            if pid == 0:
                return                  # already exited: nothing left to pin
            shim = parent_pid(pid)
            with open(f"/proc/{shim}/cmdline", "rb") as f:
                # One shim per container: pin it only when it is this container's own.
                root = shim if container.id.encode() in f.read() else pid
            pin_process_tree(root, cpus)
        except (OSError, RuntimeError, ValueError, KeyError, docker.errors.DockerException) as exc:
            if isinstance(exc, (FileNotFoundError, ProcessLookupError)) and not _running(container):
                return
            raise BackendUnavailable(f"cannot pin the gVisor sandbox to CPUs {cpus}: {exc}") from exc

    def _create_kwargs(self, request: RunRequest, cpus: tuple[int, ...] | None = None) -> dict:
        limits = request.limits
        memory = f"{limits.memory_mb}m"
        return dict(
            image=self.image,
            command=[self.python, *request.python_args],
            name=f"sandbox-{request.label or 'run'}-{uuid.uuid4().hex[:12]}"[:120],
            labels={LABEL: "1", "sandbox.label": request.label, HOST_LABEL: socket.gethostname(),
                    WORK_LABEL: str(Path(request.job_dir).resolve().parent)},
            runtime=self.runtime,
            user=f"{self.uid}:{self.uid}",
            environment={
                "PATH": "/opt/venv/bin:/usr/bin:/bin",
                "HOME": "/tmp",
                "PYTHONPATH": "/opt/runner",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONHASHSEED": "0",
                "LANG": "C.UTF-8",
            },
            working_dir="/tmp",
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            # runc: Docker's default seccomp profile stays on (no seccomp= option). gVisor
            # needs its own profile (see isolation/seccomp.py for why).
            security_opt=["no-new-privileges"] + ([gvisor_security_opt()] if self.runtime == "runsc" else []),
            ipc_mode="private",
            pids_limit=limits.pids,
            mem_limit=memory,
            memswap_limit=memory,           # equal to mem_limit: no swap
            nano_cpus=int(limits.cpus * 1e9),
            **({"cpuset_cpus": cpu_list(cpus)} if cpus else {}),
            ulimits=self._ulimits(request),
            tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={limits.tmp_mb}m,mode=1777"},
            shm_size=f"{limits.tmp_mb}m",   # /dev/shm is the other writable tmpfs: same bound
            mounts=[
                Mount("/job", str(Path(request.job_dir).resolve()), type="bind", read_only=True),
                Mount("/data", str(Path(request.data_dir).resolve()), type="bind", read_only=True),
                Mount("/out", str(Path(request.out_dir).resolve()), type="bind", read_only=False),
            ],
            # Bounded on disk (a job can print gigabytes); we keep the tail, where errors are.
            log_config=LogConfig(type="json-file", config={"max-size": "1m", "max-file": "2"}),
            stdin_open=False,
            tty=False,
            detach=True,
        )


    def _ulimits(self, request: RunRequest) -> list[Ulimit]:
        limits = request.limits

        def cap(name: str, value: int) -> Ulimit:
            return Ulimit(name=name, soft=value, hard=value)

        ulimits = [
            cap("nofile", limits.nofile),
            # A bind mount cannot be size-limited: fsize caps each file written to /out
            # (and /tmp); trusted code checks the total with outputs.collect_outputs().
            cap("fsize", limits.output_bytes),
            cap("core", 0),
        ]
        if self.runtime == "runsc":
            # runsc runs with --ignore-cgroups here, so pids/memory/cpu cgroup limits do not
            # apply. gVisor's own kernel enforces rlimits per sandbox: nproc is then exact,
            # and address space bounds memory per process (plus room for library mappings:
            # importing pyarrow/Polars/OpenDP maps about 1 GB).
            ulimits.append(cap("nproc", limits.pids))
            ulimits.append(cap("as", (limits.memory_mb + GVISOR_AS_ALLOWANCE_MB) << 20))
        else:
            # RLIMIT_NPROC counts every process of uid 10001 on the host, across concurrent
            # containers, so it is only a backstop; pids_limit is the per-run bound.
            ulimits.append(cap("nproc", limits.pids * 16))
        return ulimits


def _tail(data: bytes) -> bytes:
    return data[-LOG_CAP_BYTES:] if len(data) > LOG_CAP_BYTES else data


CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_SYS_NICE = 0, 1, 23


def _has_capability(bit: int) -> bool:
    """The capability is in our effective set (root has them all; a dedicated user may be
    granted one, e.g. systemd AmbientCapabilities)."""
    with open("/proc/self/status") as f:
        caps = next((line.split()[1] for line in f if line.startswith("CapEff:")), "0")
    return bool(int(caps, 16) & (1 << bit))


def _may_pin_other_processes() -> bool:
    """CAP_SYS_NICE: needed to set the affinity of runsc's processes, which are not ours."""
    return _has_capability(CAP_SYS_NICE)


def _running(container) -> bool:
    try:
        container.reload()
        return bool(container.attrs["State"].get("Running"))
    except docker.errors.DockerException:
        return False


def _kill(container) -> None:
    try:
        container.kill()
    except docker.errors.APIError:
        pass  # already exited between the timeout and the kill


def _remove(container) -> None:
    # Retried because removal can race with the daemon still tearing the container down.
    for attempt in range(5):
        try:
            container.remove(force=True, v=True)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            time.sleep(0.2 * (attempt + 1))
    container.remove(force=True, v=True)

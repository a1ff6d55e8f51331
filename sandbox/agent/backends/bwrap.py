"""bubblewrap isolation backend, for machines where no Docker daemon runs.

The box is a fresh mount namespace that holds only: the system's /usr, the interpreter's
prefixes (base install and venv), the box code (sandbox.core, .privacy, .runner at
/opt/runner, as in the Docker image), and the three run directories; plus new
pid/net/ipc/uts/user/cgroup namespaces. Limits come from cgroup v1 (pids, memory, cpu)
where the host lets us create groups, and from rlimits (prlimit) always. The box runs on
CPUs it holds alone (cpuslots.py), enforced by a cpuset group; where there is none, by
taskset, which the box could widen again for itself.

Caveat: run as root, bwrap maps the box's uid 65534 to host uid 0 (without capabilities).
The mounts are then the only file-access barrier (hence the read-only covers over the
host-wide parts of /proc, see _proc_covers), and RLIMIT_NPROC does not bind host root,
which is why the pids cgroup matters. Prefer the Docker backend where it is available.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from sandbox.agent.backends import (LOG_CAP_BYTES, BackendUnavailable, CheckedBackend, Limits, RunRequest,
    RunResult)
from sandbox.agent.backends.cpuslots import CpuSlots, box_cpus, cpu_list

SANDBOX_UID = 65534
CGROUP_V1_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "sandbox-bwrap"
SYSTEM_DIRS = ("/usr",)          # merged-/usr Debian; /bin, /lib, /lib64, /sbin are symlinks
SYSTEM_LINKS = ("/bin", "/lib", "/lib64", "/sbin")
# /proc directories that act on or describe the host rather than the box (as Docker's
# masked and read-only paths): hidden behind an empty read-only tmpfs.
PROC_COVERED_DIRS = ("sys", "irq", "bus", "fs", "acpi", "driver", "scsi", "asound", "sysvipc", "tty")
# The box sees the same code as the Docker image: only these subpackages of sandbox, under
# /opt/runner (first on sys.path), never the web app, the store, the agent or the CLI.
BOX_CODE_ROOT = "/opt/runner"
BOX_SUBPACKAGES = ("core", "privacy", "runner")


class BwrapBackend(CheckedBackend):
    name = "bwrap"

    def __init__(self, python: str = sys.executable, *, bwrap: str = "bwrap",
                 use_cgroups: bool = True, cpu_slots: CpuSlots | None = None) -> None:
        self.python = python
        self.bwrap = bwrap
        self.use_cgroups = use_cgroups
        self.cpu_slots = cpu_slots

    # -- availability -------------------------------------------------------------------------

    def check(self) -> None:
        """Raise BackendUnavailable saying why this backend cannot run now."""
        if shutil.which(self.bwrap) is None:
            raise BackendUnavailable("bwrap not found; install bubblewrap (scripts/start-docker.sh)")
        if shutil.which("prlimit") is None:
            raise BackendUnavailable("prlimit not found (util-linux)")
        if self.cpu_slots is not None and shutil.which("taskset") is None:
            raise BackendUnavailable("taskset not found (util-linux)")
        probe = [self.bwrap, "--unshare-all", "--unshare-user", "--ro-bind", "/usr", "/usr",
                 *self._system_links(), "--proc", "/proc", "--dev", "/dev", "/bin/true"]
        try:
            done = subprocess.run(probe, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackendUnavailable(f"bwrap does not start: {exc}") from exc
        if done.returncode != 0:
            raise BackendUnavailable(
                f"bwrap cannot create namespaces here: {done.stderr.decode(errors='replace')[:300]}")

    # -- running ------------------------------------------------------------------------------

    def terminate(self, label: str) -> None:
        """Nothing to do: --die-with-parent ends a box when the worker that ran it dies."""

    def run(self, request: RunRequest) -> RunResult:
        if shutil.which(self.bwrap) is None:
            raise BackendUnavailable("bwrap not found")
        # The CPUs are held from before the box starts until every process of it is gone.
        with box_cpus(request.limits, self.cpu_slots) as cpus:
            return self._run(request, cpus)

    def _run(self, request: RunRequest, cpus: tuple[int, ...] | None) -> RunResult:
        limits = request.limits
        Path(request.out_dir).mkdir(parents=True, exist_ok=True)
        cgroup = None
        if self.use_cgroups:
            # Without a cpuset hierarchy, still the other groups (and taskset for the CPUs).
            cgroup = _CgroupV1.create(limits, cpus) or (_CgroupV1.create(limits) if cpus else None)
        try:
            argv = self._command(request, cgroup, cpus)
            started = time.monotonic()
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True,
                                        env={"PATH": "/usr/bin:/bin"})
            except OSError as exc:
                raise BackendUnavailable(f"cannot start bwrap: {exc}") from exc
            readers = [_TailReader(proc.stdout), _TailReader(proc.stderr)]
            timed_out = False
            try:
                proc.wait(timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
                # Killing bwrap kills the pid namespace's init and so every process in it.
                _killpg(proc.pid)
            finally:
                # Whatever happened, nothing of the run may outlive it: a backstop sweep.
                if cgroup:
                    cgroup.kill_all()
                proc.wait()
                wall = time.monotonic() - started
                for reader in readers:
                    reader.join()
            return RunResult(
                exit_code=None if timed_out else _exit_code(proc.returncode),
                timed_out=timed_out,
                oom_killed=bool(cgroup and cgroup.oom_killed()),
                stdout=readers[0].data(),
                stderr=readers[1].data(),
                wall_seconds=wall,
            )
        finally:
            if cgroup:
                cgroup.remove()

    def _command(self, request: RunRequest, cgroup: "_CgroupV1 | None",
                 cpus: tuple[int, ...] | None = None) -> list[str]:
        limits = request.limits
        rlimits = [
            f"--nofile={limits.nofile}:{limits.nofile}",
            f"--nproc={limits.pids}:{limits.pids}",
            # Per file: /out is a bind mount whose total size cannot be capped here;
            # trusted code checks the total with outputs.collect_outputs().
            f"--fsize={limits.output_bytes}:{limits.output_bytes}",
            f"--cpu={int(limits.wall_seconds * max(limits.cpus, 1.0)) + 1}",
            "--core=0:0",
        ]
        if cgroup is None:
            # Without a memory cgroup, address space is the only memory bound we have (loose:
            # it counts reservations, not use; numpy/Polars reserve a lot up front).
            as_bytes = (limits.memory_mb + 1024) * 1024 * 1024
            rlimits.append(f"--as={as_bytes}:{as_bytes}")
        # Join the cgroups before anything of the job exists, then exec (no preexec_fn:
        # it is unsafe in threaded workers).
        join = ['/bin/sh', '-c',
                'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"',
                "sh", *(cgroup.procs_files() if cgroup else []), "--"]
        # A cpuset group binds the box to its CPUs; taskset only sets the starting affinity,
        # which any process may widen for itself again (docs/security.md).
        pin = ["taskset", "-c", cpu_list(cpus)] if cpus and not (cgroup and "cpuset" in cgroup.dirs) else []
        return [*join, *pin, "prlimit", *rlimits, "--", self.bwrap, *self._bwrap_args(request),
                "--", self.python, *request.python_args]

    def _bwrap_args(self, request: RunRequest) -> list[str]:
        limits = request.limits
        args = [
            "--unshare-all", "--unshare-user", "--unshare-cgroup",
            "--disable-userns",             # no nested user namespaces: less kernel surface
            "--die-with-parent", "--new-session",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--hostname", "sandbox",
            "--cap-drop", "ALL",
            "--clearenv",
            "--setenv", "PATH", f"{Path(self.python).parent}:/usr/bin:/bin",
            "--setenv", "HOME", "/tmp",
            "--setenv", "PYTHONPATH", BOX_CODE_ROOT,
            "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
            "--setenv", "PYTHONHASHSEED", "0",
            "--setenv", "LANG", "C.UTF-8",
        ]
        # /tmp first: the interpreter or the checkout may live under /tmp (CI clones do),
        # and a tmpfs mounted after their binds would hide them.
        args += ["--size", str(limits.tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
        for d in SYSTEM_DIRS:
            args += ["--ro-bind", d, d]
        args += self._system_links()
        for d in self._python_dirs():
            args += ["--ro-bind", d, d]
        args += self._box_code()
        args += [
            "--ro-bind", str(Path(request.job_dir).resolve()), "/job",
            "--ro-bind", str(Path(request.data_dir).resolve()), "/data",
            "--bind", str(Path(request.out_dir).resolve()), "/out",
            "--proc", "/proc",
            "--dev", "/dev",
            # --dev's tmpfs is writable and unbounded (half the host's RAM): a job could fill
            # memory through /dev or /dev/shm around the /tmp size. Give /dev/shm the /tmp
            # bound and make the rest of /dev read-only (device nodes still work).
            "--size", str(limits.tmp_mb * 1024 * 1024), "--tmpfs", "/dev/shm",
            "--remount-ro", "/dev",
        ]
        args += self._proc_covers()
        args += ["--remount-ro", "/", "--chdir", "/tmp"]
        return args

    @staticmethod
    def _proc_covers() -> list[str]:
        """Empty read-only tmpfs over the parts of /proc that reach the whole host.

        Run as root, bwrap maps the box's uid to host uid 0, and many of these files
        check only file modes, not capabilities: /proc/sys/kernel/core_pattern written
        from a box runs any host program as root on the next crash, /proc/irq moves
        host interrupts. Docker mounts the same paths read-only or masks them."""
        args = []
        for d in PROC_COVERED_DIRS:
            if os.path.isdir(f"/proc/{d}"):
                args += ["--tmpfs", f"/proc/{d}", "--remount-ro", f"/proc/{d}"]
        return args

    @staticmethod
    def _system_links() -> list[str]:
        args = []
        for link in SYSTEM_LINKS:
            if os.path.islink(link):
                args += ["--symlink", os.readlink(link), link]
            elif os.path.isdir(link):
                args += ["--ro-bind", link, link]
        return args

    def _python_dirs(self) -> list[str]:
        """The interpreter's install and its venv: nothing of the repository (var/ holds raw
        data and work areas of other jobs; the box code comes from _box_code)."""
        exe = Path(self.python)
        dirs = {exe.resolve().parent.parent}                 # base install, e.g. pyenv version
        if (exe.parent.parent / "pyvenv.cfg").exists():
            dirs.add(exe.parent.parent.absolute())           # the venv, site-packages included
        system = tuple(Path(d) for d in SYSTEM_DIRS)
        # Paths under /usr are already visible; binding them again would be harmless but noisy.
        return sorted(str(d) for d in dirs if not any(d.is_relative_to(s) for s in system))

    def _box_code(self) -> list[str]:
        """sandbox/__init__.py and BOX_SUBPACKAGES, read-only under BOX_CODE_ROOT. A package
        installed inside a bound prefix (not an editable checkout) is covered by an empty
        read-only tmpfs, so the rest of it is not readable in the box either."""
        import sandbox

        package = Path(sandbox.__file__).resolve().parent
        args = []
        if any(package.is_relative_to(d) for d in (*SYSTEM_DIRS, *self._python_dirs())):
            args += ["--tmpfs", str(package), "--remount-ro", str(package)]
        target = Path(BOX_CODE_ROOT) / "sandbox"
        args += ["--ro-bind", str(package / "__init__.py"), str(target / "__init__.py")]
        for name in BOX_SUBPACKAGES:
            args += ["--ro-bind", str(package / name), str(target / name)]
        return args


class _TailReader(threading.Thread):
    """Drains a pipe so the job never blocks on it, keeping only the last LOG_CAP_BYTES."""

    def __init__(self, pipe) -> None:
        super().__init__(daemon=True)
        self._pipe = pipe
        self._buf = bytearray()
        self.start()

    def run(self) -> None:
        with self._pipe:
            while chunk := self._pipe.read1(65536):
                self._buf += chunk
                if len(self._buf) > 2 * LOG_CAP_BYTES:
                    del self._buf[:-LOG_CAP_BYTES]

    def data(self) -> bytes:
        return bytes(self._buf[-LOG_CAP_BYTES:])


class _CgroupV1:
    """One run's pids/memory/cpu (and cpuset) groups under /sys/fs/cgroup/<controller>/sandbox-bwrap/."""

    CONTROLLERS = ("pids", "memory", "cpu")

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs

    @classmethod
    def create(cls, limits: Limits, cpus: tuple[int, ...] | None = None) -> "_CgroupV1 | None":
        """None when this host has no writable cgroup v1 hierarchy (e.g. cgroup v2 only);
        with cpus, also a cpuset group holding the box to them (None without one)."""
        name = uuid.uuid4().hex
        dirs: dict[str, Path] = {}
        try:
            for ctl in cls.CONTROLLERS + (("cpuset",) if cpus else ()):
                base = CGROUP_V1_ROOT / ctl
                if not (base / "cgroup.procs").exists():
                    raise OSError(f"no cgroup v1 {ctl} hierarchy")
                (base / CGROUP_PARENT).mkdir(exist_ok=True)
                if ctl == "cpuset":
                    _inherit_cpuset(base, base / CGROUP_PARENT)
                d = base / CGROUP_PARENT / name
                d.mkdir()
                dirs[ctl] = d
            group = cls(dirs)
            memory = str(limits.memory_mb * 1024 * 1024)
            _write(dirs["pids"] / "pids.max", str(limits.pids))
            _write(dirs["memory"] / "memory.limit_in_bytes", memory)
            if (dirs["memory"] / "memory.memsw.limit_in_bytes").exists():
                _write(dirs["memory"] / "memory.memsw.limit_in_bytes", memory)  # no swap
            _write(dirs["cpu"] / "cpu.cfs_period_us", "100000")
            _write(dirs["cpu"] / "cpu.cfs_quota_us", str(int(limits.cpus * 100000)))
            if cpus:
                # A v1 cpuset group starts empty and takes no task until both are set.
                _write(dirs["cpuset"] / "cpuset.cpus", cpu_list(cpus))
                _write(dirs["cpuset"] / "cpuset.mems", (dirs["cpuset"].parent / "cpuset.mems").read_text().strip())
            return group
        except OSError:
            cls(dirs).remove()
            return None

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def oom_killed(self) -> bool:
        try:
            text = (self.dirs["memory"] / "memory.oom_control").read_text()
        except OSError:
            return False
        counters = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(counters.get("oom_kill", "0")) > 0

    def kill_all(self) -> None:
        procs = self.dirs["pids"] / "cgroup.procs"
        for _ in range(50):
            pids = [int(p) for p in procs.read_text().split()]
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        for d in self.dirs.values():
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)   # busy until the last task is reaped


def _inherit_cpuset(root: Path, parent: Path) -> None:
    """Our parent group takes the whole machine's CPUs and memory nodes (a new v1 cpuset
    group has none), so the run groups under it can be given any of them."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not (parent / name).read_text().strip():
            _write(parent / name, (root / name).read_text().strip())


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _exit_code(returncode: int) -> int:
    # Same convention as Docker: a signal N shows as 128 + N.
    return 128 - returncode if returncode < 0 else returncode

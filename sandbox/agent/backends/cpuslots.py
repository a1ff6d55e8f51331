"""A per-host pool of CPUs that boxes hold exclusively while they run.

CPU-time budgets make a block's outcome independent of how busy the machine is, but a
box that shares a CPU with another still runs slower and reads a slower clock. So every
box a backend starts takes whole CPUs from this pool for its run, and no two boxes of
any job on this host share one.

One lock file per CPU under a directory (the settings' home: one per host); a box holds
`flock` on its CPUs' files. flock belongs to the open file, so threads of one worker
exclude each other like separate processes do, and the kernel drops the lock when its
holder dies: a worker killed mid-run leaks no slot.
"""
from __future__ import annotations

import fcntl
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator


class CpuSlots:
    def __init__(self, directory: Path, cpus: Iterable[int] | None = None, *, poll_seconds: float = 0.05) -> None:
        """cpus: the pool, by default every CPU this process may run on."""
        self.directory = Path(directory)
        self.cpus = tuple(sorted(set(os.sched_getaffinity(0) if cpus is None else cpus)))
        if not self.cpus:
            raise ValueError("a CPU pool needs at least one CPU")
        self.poll_seconds = poll_seconds

    def size_for(self, cpus: float) -> int:
        """Whole CPUs for a box with this CPU quota: at least one, at most the pool."""
        return max(1, min(len(self.cpus), math.ceil(cpus)))

    @contextmanager
    def hold(self, count: int, *, timeout: float | None = None) -> Iterator[tuple[int, ...]]:
        """Wait until `count` CPUs of the pool are free, hold them for the block, yield their
        numbers. TimeoutError when they are not free within `timeout` seconds."""
        count = max(1, min(len(self.cpus), int(count)))
        deadline = None if timeout is None else time.monotonic() + timeout
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        while True:
            held = self._try(count)
            if held is not None:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"no {count} free CPU(s) in the pool {self.cpus} within {timeout} s")
            time.sleep(self.poll_seconds)
        try:
            yield tuple(sorted(held))
        finally:
            for fd in held.values():
                os.close(fd)          # closing the file releases its flock

    def _try(self, count: int) -> dict[int, int] | None:
        """All `count` CPUs or none (holding some while waiting for more could deadlock)."""
        held: dict[int, int] = {}
        for cpu in self.cpus:
            fd = os.open(self.directory / f"cpu-{cpu}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            held[cpu] = fd
            if len(held) == count:
                return held
        for fd in held.values():
            os.close(fd)
        return None


@contextmanager
def box_cpus(limits, pool: CpuSlots | None) -> Iterator[tuple[int, ...] | None]:
    """The CPUs a box runs on, for the run: limits.cpuset as given (the caller holds them),
    else as many as limits.cpus asks, held from the pool; None without a pool (not pinned)."""
    if limits.cpuset:
        yield tuple(sorted(limits.cpuset))
    elif pool is None:
        yield None
    else:
        with pool.hold(pool.size_for(limits.cpus)) as cpus:
            yield cpus


def pin_process_tree(root: int, cpus: Iterable[int], *, max_passes: int = 100) -> None:
    """Set the affinity of every thread of `root` and its descendants to `cpus`, for boxes
    whose runtime ignores cgroups (gVisor here). Repeats until one pass changes nothing: a
    thread created after that inherits a pinned creator's mask. The boxed code cannot widen
    it again (gVisor emulates sched_setaffinity; the host threads are the runtime's own)."""
    wanted = set(cpus)
    for _ in range(max_passes):
        changed = 0
        for pid in process_tree(root):
            try:
                tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
            except FileNotFoundError:
                continue
            for tid in tids:
                try:
                    if os.sched_getaffinity(tid) != wanted:
                        os.sched_setaffinity(tid, wanted)
                        changed += 1
                except ProcessLookupError:
                    pass
        if not changed:
            return
    raise RuntimeError(f"the threads of process {root} kept changing; could not pin them")


def parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return int(stat[stat.rindex(b")") + 2:].split()[1])


def process_tree(root: int) -> list[int]:
    """root and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(parent_pid(int(entry)), []).append(int(entry))
            except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
                pass              # gone meanwhile
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_list(cpus: Iterable[int]) -> str:
    """The kernel's list format ("0,2,3"), for cpuset.cpus, Docker's cpuset_cpus and taskset."""
    return ",".join(str(c) for c in sorted(cpus))

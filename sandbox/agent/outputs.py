"""Collect what a run left in its output area. TRUSTED host code, run after the box is gone.

Everything in out_dir was written by untrusted code, so nothing is followed or trusted:
no symlinks, no special files, no hard links (a link to a dataset file would export raw
data), no names outside the allow-list, bounded count and size. Refusal reasons are generic
text for compliance and never contain file contents.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

MAX_DEPTH = 4                    # deeper trees are refused, not walked
NAME_CAP = 200                   # refused names are shown to compliance; keep them short


@dataclass
class CollectedOutputs:
    accepted: dict[str, bytes] = field(default_factory=dict)
    refused: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused


def collect_outputs(out_dir: Path, allowed_names: set[str] | None, max_files: int,
                    max_total_bytes: int) -> CollectedOutputs:
    """Accept regular files under out_dir (names relative, "/"-separated) within the limits.

    Files are taken in sorted name order, so which ones exceed a limit is deterministic.
    """
    result = CollectedOutputs()
    root = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        candidates: list[tuple[str, int, os.stat_result]] = []
        # Bound the walk itself: a job can create millions of entries.
        budget = [max(4 * max_files, 64)]
        _walk(root, "", 0, candidates, result, budget)
        total = 0
        for name, dir_fd, st in sorted(candidates, key=lambda c: c[0]):
            if allowed_names is not None and name not in allowed_names:
                result.refused.append((name, "name not in the allowed output names"))
            elif len(result.accepted) >= max_files:
                result.refused.append((name, "too many output files"))
            elif total + st.st_size > max_total_bytes:
                result.refused.append((name, "total output size limit exceeded"))
            else:
                data, reason = _read(dir_fd, name.rsplit("/", 1)[-1], st,
                                     max_total_bytes - total)
                if reason:
                    result.refused.append((name, reason))
                else:
                    result.accepted[name] = data
                    total += len(data)
        for _, dir_fd, _ in candidates:
            _close_quietly(dir_fd)
    finally:
        os.close(root)
    return result


def _walk(dir_fd: int, prefix: str, depth: int, candidates: list, result: CollectedOutputs,
          budget: list[int]) -> None:
    with os.scandir(dir_fd) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            name = _printable(prefix + entry.name)
            budget[0] -= 1
            if budget[0] < 0:
                result.refused.append((name, "too many entries in the output area; rest not examined"))
                return
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISLNK(mode):
                result.refused.append((name, "symbolic link"))
            elif stat.S_ISDIR(mode):
                if depth + 1 >= MAX_DEPTH:
                    result.refused.append((name, "directory nested too deep"))
                    continue
                try:
                    sub = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                  | os.O_CLOEXEC, dir_fd=dir_fd)
                except OSError:
                    result.refused.append((name, "directory cannot be opened"))
                    continue
                try:
                    _walk(sub, name + "/", depth + 1, candidates, result, budget)
                finally:
                    os.close(sub)
            elif not stat.S_ISREG(mode):
                result.refused.append((name, "not a regular file (device, fifo or socket)"))
            elif st.st_nlink != 1:
                result.refused.append((name, "file has more than one hard link"))
            elif len(prefix + entry.name) > NAME_CAP:
                result.refused.append((name, "file name too long"))
            elif name != prefix + entry.name:
                result.refused.append((name, "file name is not printable text"))
            else:
                candidates.append((name, os.dup(dir_fd), st))


def _read(dir_fd: int, leaf: str, seen: os.stat_result, room: int) -> tuple[bytes, str | None]:
    # O_NOFOLLOW + O_NONBLOCK: a file swapped for a symlink or fifo since the scan is not
    # followed and cannot block us; fstat must match what the scan saw.
    try:
        fd = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError:
        return b"", "file cannot be opened safely"
    try:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or st.st_nlink != 1
                or (st.st_dev, st.st_ino) != (seen.st_dev, seen.st_ino)):
            return b"", "file changed while being collected"
        chunks, size = [], 0
        while size <= room:
            chunk = os.read(fd, min(1 << 20, room + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > room:
            return b"", "total output size limit exceeded"
        return b"".join(chunks), None
    finally:
        os.close(fd)


def _printable(name: str) -> str:
    # Undecodable bytes and control characters are escaped, so a refused name is safe to show.
    raw = os.fsencode(name).decode("utf-8", errors="backslashreplace")
    cleaned = "".join(c if c.isprintable() else repr(c)[1:-1] for c in raw)
    return cleaned[:NAME_CAP]


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


@contextmanager
def bounded_output_area(out_dir: Path, max_bytes: int, max_files: int):
    """Mount a tmpfs limited in bytes and inodes on out_dir for one run and its collection.

    A bind-mounted host folder is bounded only per file (RLIMIT_FSIZE), so a job could fill
    the host's disk with many files. The tmpfs caps the whole area. Needs root (the worker
    here runs as root); elsewhere the area stays a plain folder and yields False, and
    collect_outputs still refuses more than the declared size and number of files.
    """
    out_dir = Path(out_dir)
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):
        opts = f"size={max(int(max_bytes), 4096)},nr_inodes={4 * int(max_files) + 16},mode=0755"
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "sandbox-out", str(out_dir)],
                                 capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(out_dir)], capture_output=True)

"""What a dead worker leaves on its host, and its removal.

A worker killed mid-run leaves its box (a Docker container outlives its client) and the
tmpfs mounted on the box's /out (outputs.bounded_output_area), under its work area
jobs_dir/<job_id>/attempt-<n>/. Both are found by that place, whatever the run (a query,
a reviewed run, program block i): a box or mount whose attempt is no longer running is
a leftover. Each worker sweeps its own host only: mounts under its own jobs_dir, and
containers labelled with its host and a work area under its jobs_dir (several "hosts"
may share one Docker engine in tests; each keeps to its own).
"""
from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

MOUNT_SOURCE = "sandbox-out"   # outputs.bounded_output_area mounts its tmpfs under this name


def attempt_of(jobs_dir: Path, path: str | Path) -> tuple[str, int] | None:
    """(job_id, attempt) of a path inside jobs_dir/<job_id>/attempt-<n>/..., else None."""
    try:
        rel = Path(path).relative_to(jobs_dir).parts
    except ValueError:
        return None
    if len(rel) < 2 or not rel[1].startswith("attempt-") or not rel[1][8:].isdigit():
        return None
    return rel[0], int(rel[1][8:])


def _unescape(field: str) -> str:
    # /proc/self/mountinfo writes space, tab, newline and backslash as \\ooo.
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def output_mounts(under: Path) -> list[str]:
    """Mount points of our output tmpfs under a folder, deepest first."""
    under = str(Path(under).resolve())
    found = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                head, _, tail = line.partition(" - ")
                fields, rest = head.split(), tail.split()
                if len(fields) < 5 or len(rest) < 2:
                    continue
                point = _unescape(fields[4])
                if rest[0] == "tmpfs" and rest[1] == MOUNT_SOURCE and (point + "/").startswith(under + "/"):
                    found.append(point)
    except OSError:
        return []
    return sorted(found, key=len, reverse=True)


def unmount(point: str) -> None:
    subprocess.run(["umount", "-l", point], capture_output=True)


def clear_work_area(path: Path) -> None:
    """Remove a work area, unmounting any output tmpfs left in it first (rmtree cannot
    remove a mount point, and would leave the mount behind)."""
    for point in output_mounts(path):
        unmount(point)
    shutil.rmtree(path, ignore_errors=True)


def sweep_host(jobs_dir: Path, backend, running_attempts) -> dict:
    """Remove this host's boxes and mounts of attempts no longer running.

    `running_attempts()` reads {(job_id, attempt)} from the store. It is called after the
    host is listed, so a box or mount found belongs to a claim already committed: a live
    run's attempt is in it and is left alone."""
    jobs_dir = Path(jobs_dir).resolve()
    mounts = output_mounts(jobs_dir)
    boxes = backend.leftovers() if backend is not None and hasattr(backend, "leftovers") else []
    # Work areas too: blocks cut here for a job another host finished are copies of raw data.
    areas = sorted(jobs_dir.glob("*/attempt-*")) if jobs_dir.is_dir() else []
    if not mounts and not boxes and not areas:
        return {"boxes": [], "mounts": [], "areas": []}
    live = running_attempts()
    removed_boxes, removed_mounts = [], []
    for box_id, work in boxes:
        owner = attempt_of(jobs_dir, work)
        if owner is not None and owner not in live:
            backend.remove_box(box_id)
            removed_boxes.append(box_id)
            if owner not in {attempt_of(jobs_dir, m) for m in mounts}:
                shutil.rmtree(jobs_dir / owner[0] / f"attempt-{owner[1]}", ignore_errors=True)
    for point in mounts:
        owner = attempt_of(jobs_dir, point)
        if owner is not None and owner not in live:
            unmount(point)
            removed_mounts.append(point)
            shutil.rmtree(jobs_dir / owner[0] / f"attempt-{owner[1]}", ignore_errors=True)
    removed_areas = []
    for area in areas:
        owner = attempt_of(jobs_dir, area)
        if owner is not None and owner not in live:
            shutil.rmtree(area, ignore_errors=True)
            removed_areas.append(str(area))
            try:
                area.parent.rmdir()  # only when no other attempt is left in it
            except OSError:
                pass
    if removed_boxes or removed_mounts:
        log.info("removed %d box(es) and %d mount(s) left by dead workers", len(removed_boxes), len(removed_mounts))
    return {"boxes": removed_boxes, "mounts": removed_mounts, "areas": removed_areas}

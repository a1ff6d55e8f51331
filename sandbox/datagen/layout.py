"""A dataset directory on disk: ``part-NNNNN.parquet`` files and a ``_SUCCESS`` marker,
written to a temporary sibling and renamed into place. A directory without the marker is
not a dataset (see ``is_ready``). The demo generator and ingestion both write this form.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

MARKER = "_SUCCESS"
COMPRESSION = "zstd"


def read_marker(out_dir: str | Path) -> dict | None:
    """The completion marker's content, or None when the dataset is not complete."""
    try:
        return json.loads((Path(out_dir) / MARKER).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


def is_ready(out_dir: str | Path) -> bool:
    """True only for a fully written dataset directory (its marker is present)."""
    return read_marker(out_dir) is not None


def dir_bytes(path: Path, files) -> int:
    return sum((path / f).stat().st_size for f in files)


def publish_dir(tmp: Path, out_dir: Path) -> None:
    """Move a fully written ``tmp`` directory to ``out_dir``, replacing any old one."""
    # A directory cannot be renamed onto a non-empty one: move the old one aside
    # first, so readers see either the old complete dataset or the new one.
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old is not None:
        # A registered version is left read-only (ingest.grant_runner_read): make it writable
        # to its owner again, or removing it fails for anyone but root.
        for folder, _dirs, _files in os.walk(old):
            os.chmod(folder, 0o755)
        shutil.rmtree(old, ignore_errors=True)


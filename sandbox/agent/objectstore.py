"""Registered versions on shared object storage, for workers on several hosts.

With settings.data_store = "s3://bucket/prefix" (SANDBOX_DATA_STORE), registration also
writes the version's content-addressed copy to <prefix>/versions/<content_hash>/, and
every worker host reads a version through its own cache, store_dir/<content_hash> under
its own SANDBOX_HOME. A cached or fetched copy is used only after it hashes to the
version's registered content hash: a corrupted cache is removed and fetched again, a
corrupted object is refused (the job does not run on it). Program blocks, cut on the
host that claimed the job, go to <prefix>/work/<job_id>/ so a block task may run on any
host; their hashes stay in the store (compliance only) and are checked the same way.

Empty data_store: versions stay in the registering host's store (one host). Everything
here stays next to the data: the object store is in-domain storage, like store_dir.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow.fs as pafs

from sandbox.agent import ingest, sources

MARKER = ".complete"        # written last: a version without it is an interrupted upload
_BLOCK = 8 << 20


class VersionUnavailable(RuntimeError):
    """The shared copy is missing or does not match its content hash (compliance only)."""


def enabled(settings) -> bool:
    return bool(settings.data_store)


def _fs_root(settings) -> tuple[pafs.FileSystem, str]:
    store = settings.data_store
    if store.startswith("s3://"):
        return sources._s3(settings), store[len("s3://"):].strip("/")
    if store.startswith("file://") or store.startswith("/"):
        # A shared filesystem mounted on every host (NFS, CephFS): same layout, same checks.
        return pafs.LocalFileSystem(), (store[len("file://"):] if store.startswith("file://") else store).rstrip("/")
    raise ValueError(f"SANDBOX_DATA_STORE: use s3://bucket/prefix or an absolute path, not {store!r}")


def _upload(fs, folder: Path, base: str) -> None:
    for path in ingest.parquet_files(folder):
        rel = path.relative_to(folder).as_posix()
        target = f"{base}/{rel}"
        fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        with open(path, "rb") as fin, fs.open_output_stream(target) as fout:
            while block := fin.read(_BLOCK):
                fout.write(block)


def _exists(fs, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def push(settings, folder: Path, content_hash: str) -> None:
    """Put a published version into the shared store (idempotent: same content, same place)."""
    if not enabled(settings):
        return
    fs, root = _fs_root(settings)
    base = f"{root}/versions/{content_hash}"
    if _exists(fs, f"{base}/{MARKER}"):
        return
    _upload(fs, Path(folder), base)
    with fs.open_output_stream(f"{base}/{MARKER}") as out:
        out.write(content_hash.encode())


def _download(fs, base: str, dest: Path) -> None:
    entries = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    prefix = base.rstrip("/") + "/"
    for e in entries:
        if e.type != pafs.FileType.File or not e.path.startswith(prefix):
            continue
        rel = e.path[len(prefix):]
        if rel == MARKER or ".." in rel.split("/"):
            continue
        target = dest.joinpath(*rel.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(e.path) as fin, open(target, "wb") as fout:
            while block := fin.read(_BLOCK):
                fout.write(block)


def _fetch_verified(fs, base: str, into: Path, content_hash: str, what: str) -> Path:
    """Download base/ into a fresh folder under `into`, check its hash, return the folder."""
    into.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=into))
    try:
        _download(fs, base, staging)
        if not ingest.verify_snapshot(staging, content_hash):
            raise VersionUnavailable(f"the shared copy of {what} does not match its registered content hash")
    except OSError as e:
        sources.discard(staging)
        raise VersionUnavailable(f"cannot read the shared copy of {what}: {e}") from None
    except BaseException:
        sources.discard(staging)
        raise
    return staging


def local_copy(settings, content_hash: str) -> Path:
    """This host's verified copy of a version: the cache if it still hashes right, else a
    fresh fetch from the shared store, checked before it enters the cache."""
    cache = settings.store_dir / content_hash
    if cache.is_dir():
        if ingest.verify_snapshot(cache, content_hash):
            return cache
        sources.discard(cache)  # changed since it was cached: never used, fetched again
    fs, root = _fs_root(settings)
    base = f"{root}/versions/{content_hash}"
    try:
        complete = _exists(fs, f"{base}/{MARKER}")
    except OSError as e:
        raise VersionUnavailable(f"cannot reach the shared data store: {e}") from None
    if not complete:
        raise VersionUnavailable("the version is not in the shared data store")
    staging = _fetch_verified(fs, base, settings.store_dir, content_hash, "the version")
    ingest.grant_runner_read(staging)
    try:
        os.rename(staging, cache)
    except OSError:
        if not cache.is_dir():
            sources.discard(staging)
            raise
        sources.discard(staging)  # fetched meanwhile by another worker on this host
    return cache


# ---------------------------------------------------------------- program blocks
def push_blocks(settings, job_id: str, attempt: int, blocks_dir: Path) -> dict[str, str]:
    """Share an attempt's block folders; returns {block folder name: content hash}."""
    fs, root = _fs_root(settings)
    hashes = {}
    for block in sorted(p for p in Path(blocks_dir).iterdir() if p.is_dir()):
        hashes[block.name] = ingest.dataset_version_hash(block)
        _upload(fs, block, f"{root}/work/{job_id}/attempt-{attempt}/{block.name}")
    return hashes


def fetch_block(settings, job_id: str, attempt: int, name: str, content_hash: str, dest: Path) -> Path:
    """A block cut on another host, checked against the hash its cutter recorded."""
    fs, root = _fs_root(settings)
    staging = _fetch_verified(fs, f"{root}/work/{job_id}/attempt-{attempt}/{name}", Path(dest).parent,
                              content_hash, f"block {name}")
    # As blocks.assign_blocks leaves them: readable by the box's unprivileged uid, and
    # removable with the work area by a worker that is not root.
    for folder, _dirs, files in os.walk(staging):
        os.chmod(folder, 0o755)
        for f in files:
            os.chmod(os.path.join(folder, f), 0o644)
    os.rename(staging, dest)
    return Path(dest)


def drop_work(settings, job_id: str) -> None:
    """Remove a job's shared blocks (raw data) once the job has left running."""
    if not enabled(settings):
        return
    fs, root = _fs_root(settings)
    try:
        fs.delete_dir(f"{root}/work/{job_id}")
    except (OSError, FileNotFoundError):
        pass  # nothing was shared for this job

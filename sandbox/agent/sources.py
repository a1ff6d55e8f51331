"""Where an owner's data comes from, and its copy into the sandbox's own store.

A source is a local Parquet file or folder (hive partitions included), a ``file://`` URI or
an ``s3://`` URI (an S3-compatible server: settings.s3_endpoint), read with pyarrow's
filesystems. It must lie under one of settings.ingest_roots and use one of
settings.ingest_schemes. Only ``*.parquet`` files are copied: jobs read the copy, never the
owner's location. Runs next to the data (agent side); nothing here is shown to operators.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow.fs as pafs

from sandbox.core import datafiles
from sandbox.core.errors import InvalidInput

_COPY_BLOCK = 8 << 20


def _scheme(source: str) -> str:
    return urlparse(source).scheme if "://" in source else "file"


def _local_path(source: str) -> Path:
    if source.startswith("file://"):
        parsed = urlparse(source)
        if parsed.netloc not in ("", "localhost"):
            raise InvalidInput(f"{source}: a file:// URI names a path on this server (file:///path)", "data")
        return Path(unquote(parsed.path))
    return Path(source)


def _under(path: str, root: str) -> bool:
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def resolve(source: str, settings) -> tuple[pafs.FileSystem, str, bool]:
    """(filesystem, path in it, is_local) for an allowed source; InvalidInput naming what to
    fix otherwise (scheme not allowed, outside the allowed roots, not found)."""
    if not isinstance(source, str) or not source.strip():
        raise InvalidInput("data: give a Parquet file or folder path, or a file:// or s3:// URI", "data")
    source = source.strip()
    scheme = _scheme(source)
    if scheme not in settings.ingest_schemes:
        raise InvalidInput(f"data: the URI scheme '{scheme}' is not allowed here (allowed: "
                           f"{', '.join(settings.ingest_schemes)}; set SANDBOX_INGEST_SCHEMES)", "data")
    roots = settings.ingest_roots
    if scheme == "file":
        path = _local_path(source)
        if not path.is_absolute():
            raise InvalidInput(f"data: {source} is a relative path; give an absolute path on the server", "data")
        real = os.path.realpath(path)
        local_roots = [os.path.realpath(r[7:] if r.startswith("file://") else r) for r in roots if "://" not in r
                       or r.startswith("file://")]
        if not any(_under(real, r) for r in local_roots):
            raise InvalidInput(f"data: {source} is outside the folders owners may register from "
                               f"({', '.join(local_roots) or 'none configured'}; set SANDBOX_INGEST_ROOTS)", "data")
        if not os.path.exists(real):
            raise InvalidInput(f"data: {source} does not exist", "data")
        return pafs.LocalFileSystem(), real, True
    if scheme == "s3":
        parsed = urlparse(source)
        norm = f"s3://{parsed.netloc}{parsed.path}".rstrip("/")
        if ".." in parsed.path.split("/"):
            raise InvalidInput(f"data: {source}: '..' is not allowed in a URI", "data")
        allowed = [r for r in roots if r.startswith("s3://")]
        if not any(_under(norm, r) for r in allowed):
            raise InvalidInput(f"data: {source} is outside the URI prefixes owners may register from "
                               f"({', '.join(allowed) or 'none configured'}; set SANDBOX_INGEST_ROOTS)", "data")
        fs = _s3(settings)
        return fs, norm[len("s3://"):], False
    raise InvalidInput(f"data: the URI scheme '{scheme}' cannot be read (use file:// or s3://)", "data")


def _s3(settings) -> pafs.S3FileSystem:
    # Credentials come from the usual AWS variables or files (pyarrow reads them).
    endpoint = settings.s3_endpoint
    if not endpoint:
        return pafs.S3FileSystem()
    parsed = urlparse(endpoint)
    return pafs.S3FileSystem(endpoint_override=parsed.netloc or endpoint, scheme=parsed.scheme or "https",
                             region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


def _listing(fs: pafs.FileSystem, path: str, source: str) -> list[tuple[str, str]]:
    """(path in fs, name in the copy) of every ``*.parquet`` file the source holds."""
    try:
        info = fs.get_file_info(path)
    except OSError as e:
        raise InvalidInput(f"data: cannot read {source} ({e})", "data") from None
    if info.type == pafs.FileType.NotFound:
        raise InvalidInput(f"data: {source} does not exist", "data")
    if info.type == pafs.FileType.File:
        name = info.base_name if info.base_name.endswith(datafiles.SUFFIX) else "data.parquet"
        return [(path, name)]
    try:
        entries = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except OSError as e:
        raise InvalidInput(f"data: cannot list {source} ({e})", "data") from None
    base = path.rstrip("/") + "/"
    return sorted((e.path, e.path[len(base):]) for e in entries
                  if e.type == pafs.FileType.File and e.path.endswith(datafiles.SUFFIX))


def copy_source(source: str, settings, progress=None) -> Path:
    """Copy the source's Parquet files into a fresh staging folder under the store and return
    it (the caller publishes or removes it). Refuses a local folder holding entries readers
    would treat differently (datafiles.check_registrable). `progress(stage, fraction)` hears
    the share of bytes copied."""
    fs, path, local = resolve(source, settings)
    if local and os.path.isdir(path):
        datafiles.check_registrable(path)
    files = _listing(fs, path, source)
    if not files:
        raise InvalidInput(f"data: no Parquet files (*.parquet) in {source}", "data")
    settings.store_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=settings.store_dir))
    try:
        total = sum(max(0, fs.get_file_info(src).size or 0) for src, _ in files) if progress else 0
        copied = 0
        for src, name in files:
            target = staging.joinpath(*name.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            with fs.open_input_stream(src) as fin, open(target, "wb") as fout:
                while block := fin.read(_COPY_BLOCK):
                    fout.write(block)
                    copied += len(block)
                    if progress:
                        progress("copying into the store", copied / max(total, 1))
    except OSError as e:
        discard(staging)
        raise InvalidInput(f"data: cannot read {source} ({e})", "data") from None
    except BaseException:
        discard(staging)
        raise
    return staging


def discard(folder: Path) -> None:
    """Remove a staging folder, read-only parts included."""
    if not folder.exists():
        return
    for root, dirs, files in os.walk(folder):
        os.chmod(root, stat.S_IRWXU)
        for d in dirs:
            p = os.path.join(root, d)
            if not os.path.islink(p):
                os.chmod(p, stat.S_IRWXU)
    shutil.rmtree(folder, ignore_errors=True)


def publish(staging: Path, settings, content_hash: str) -> Path:
    """Move a checked staging folder to store/<content_hash> (read-only, see
    ingest.grant_runner_read); the same content registered again reuses its folder."""
    from sandbox.agent.ingest import grant_runner_read
    from sandbox.agent import objectstore
    final = settings.store_dir / content_hash
    if final.exists():
        discard(staging)
        objectstore.push(settings, final, content_hash)
        return final
    grant_runner_read(staging)
    try:
        os.rename(staging, final)
    except OSError:
        if not final.is_dir():
            raise
        discard(staging)  # the same content published meanwhile by a concurrent registration
    # Workers on other hosts read the version from shared storage (SANDBOX_DATA_STORE).
    objectstore.push(settings, final, content_hash)
    return final

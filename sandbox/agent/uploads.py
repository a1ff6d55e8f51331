"""Uploads of an owner's Parquet data, in chunks that may resume after a broken connection:
each chunk is appended at the offset the client names, which must be the bytes received so
far of that file; the total of an upload is bounded by settings.upload_max_bytes. An upload
is a folder $SANDBOX_HOME/uploads/<owner>/<id>/ holding one file (``upload.parquet``) or
several at relative paths the client names (the files of a hive-partitioned folder, say
``year=2024/part-0.parquet``), registered like any source (owner.register_upload) and
removed once registered. Bytes are written, never read, here.
"""
from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path

from sandbox.core.errors import InvalidInput, NotFound

FILE_NAME = "upload.parquet"
MAX_FILES = 10_000
_BLOCK = 1 << 20
_ID = re.compile(r"^[0-9a-f]{32}$")
_FILES = "files"
# One folder or file name of a relative path: no '..', no hidden or '_' names (readers skip
# those, so registration refuses them: sandbox.core.datafiles), nothing a shell would mangle.
_SEGMENT = re.compile(r"^[A-Za-z0-9\u4e00-\u9fff][A-Za-z0-9\u4e00-\u9fff_.=%+ -]{0,199}$")


def folder(settings, owner: str, upload_id: str) -> Path:
    if not isinstance(upload_id, str) or not _ID.match(upload_id):
        raise InvalidInput("upload: not an upload id (POST /api/v1/uploads gives one)", "upload")
    path = settings.home / "uploads" / owner / upload_id
    if not (path / _FILES).is_dir():
        raise NotFound(f"no upload '{upload_id}' of yours (it is removed once registered)")
    return path


def source(path: Path) -> str:
    """What registration reads of an upload folder: its one file, or the folder of its files."""
    files = sorted(p for p in (path / _FILES).rglob("*") if p.is_file())
    if len(files) == 1 and files[0].parent == path / _FILES:
        return str(files[0])
    return str(path / _FILES)


def check_path(rel) -> str:
    """A client's relative path for one file of a folder upload."""
    if rel is None or rel == "":
        return FILE_NAME
    parts = rel.split("/") if isinstance(rel, str) else []
    if (not parts or len(parts) > 16 or not all(_SEGMENT.match(p) and p not in (".", "..") for p in parts)
            or not parts[-1].endswith(".parquet")):
        raise InvalidInput("path: a relative path of a .parquet file inside the folder (e.g. "
                           "year=2024/part-0.parquet): names of letters, digits, '_.=%+- ', not starting with "
                           "'.' or '_', no '..'", "path")
    return "/".join(parts)


def start(settings, owner: str) -> dict:
    upload_id = secrets.token_hex(16)
    path = settings.home / "uploads" / owner / upload_id
    path.mkdir(parents=True, mode=0o700)
    (path / _FILES).mkdir(mode=0o700)
    return {"upload": upload_id, "offset": 0, "max_bytes": settings.upload_max_bytes}


def _total(path: Path) -> int:
    return sum(p.stat().st_size for p in (path / _FILES).rglob("*") if p.is_file())


def status(settings, owner: str, upload_id: str, rel: str | None = None) -> dict:
    """Bytes received of one file (`rel`; the default single file) and of the whole upload."""
    path = folder(settings, owner, upload_id)
    target = path / _FILES / check_path(rel)
    size = target.stat().st_size if target.is_file() else 0
    return {"upload": upload_id, "path": check_path(rel), "offset": size, "total": _total(path),
            "max_bytes": settings.upload_max_bytes}


def append(settings, owner: str, upload_id: str, offset, stream, declared_length: int | None,
           rel: str | None = None) -> dict:
    """Append one chunk at `offset` of file `rel`. Over the limit, the whole upload is removed (400)."""
    path = folder(settings, owner, upload_id)
    name = check_path(rel)
    target = path / _FILES / name
    size = target.stat().st_size if target.is_file() else 0
    if isinstance(offset, bool) or not isinstance(offset, int) or offset != size:
        raise InvalidInput(f"offset: send the chunk at offset {size} (the bytes received so far)", "offset")
    if not target.is_file():
        if sum(1 for p in (path / _FILES).rglob("*") if p.is_file()) >= MAX_FILES:
            raise InvalidInput(f"path: an upload holds at most {MAX_FILES} files", "path")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        target.touch(mode=0o600)
    limit = settings.upload_max_bytes
    others = _total(path) - size

    def over() -> InvalidInput:
        discard(settings, owner, upload_id)
        return InvalidInput(f"upload: over the limit of {limit} bytes (SANDBOX_UPLOAD_MAX_BYTES); the upload is "
                            "removed: split the data into several versions or ask the administrator", "upload")
    if declared_length is not None and others + size + declared_length > limit:
        raise over()
    written = size
    with open(target, "ab") as out:
        while block := stream.read(_BLOCK):
            written += len(block)
            if others + written > limit:
                break
            out.write(block)
    if others + written > limit:
        raise over()
    return {"upload": upload_id, "path": name, "offset": written, "total": others + written, "max_bytes": limit}


def discard(settings, owner: str, upload_id: str) -> None:
    if isinstance(upload_id, str) and _ID.match(upload_id):
        shutil.rmtree(settings.home / "uploads" / owner / upload_id, ignore_errors=True)

"""Uploads of an owner's Parquet file, in chunks that may resume after a broken connection:
each chunk is appended at the offset the client names, which must be the bytes received so
far; the total is bounded by settings.upload_max_bytes. An upload is one file under
$SANDBOX_HOME/uploads/<owner>/<id>/, registered like any source (owner.register_upload)
and removed once registered. Bytes are written, never read, here.
"""
from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path

from sandbox.core.errors import InvalidInput, NotFound

FILE_NAME = "upload.parquet"
_BLOCK = 1 << 20
_ID = re.compile(r"^[0-9a-f]{32}$")


def folder(settings, owner: str, upload_id: str) -> Path:
    if not isinstance(upload_id, str) or not _ID.match(upload_id):
        raise InvalidInput("upload: not an upload id (POST /api/v1/uploads gives one)", "upload")
    path = settings.home / "uploads" / owner / upload_id
    if not (path / FILE_NAME).is_file():
        raise NotFound(f"no upload '{upload_id}' of yours (it is removed once registered)")
    return path


def start(settings, owner: str) -> dict:
    upload_id = secrets.token_hex(16)
    path = settings.home / "uploads" / owner / upload_id
    path.mkdir(parents=True, mode=0o700)
    (path / FILE_NAME).touch(mode=0o600)
    return {"upload": upload_id, "offset": 0, "max_bytes": settings.upload_max_bytes}


def status(settings, owner: str, upload_id: str) -> dict:
    size = (folder(settings, owner, upload_id) / FILE_NAME).stat().st_size
    return {"upload": upload_id, "offset": size, "max_bytes": settings.upload_max_bytes}


def append(settings, owner: str, upload_id: str, offset, stream, declared_length: int | None) -> dict:
    """Append one chunk at `offset`. Over the limit, the whole upload is removed (400)."""
    path = folder(settings, owner, upload_id) / FILE_NAME
    size = path.stat().st_size
    if isinstance(offset, bool) or not isinstance(offset, int) or offset != size:
        raise InvalidInput(f"offset: send the chunk at offset {size} (the bytes received so far)", "offset")
    limit = settings.upload_max_bytes

    def over() -> InvalidInput:
        discard(settings, owner, upload_id)
        return InvalidInput(f"upload: over the limit of {limit} bytes (SANDBOX_UPLOAD_MAX_BYTES); the upload is "
                            "removed: split the data into several versions or ask the administrator", "upload")
    if declared_length is not None and size + declared_length > limit:
        raise over()
    written = size
    with open(path, "ab") as out:
        while block := stream.read(_BLOCK):
            written += len(block)
            if written > limit:
                break
            out.write(block)
    if written > limit:
        raise over()
    return {"upload": upload_id, "offset": written, "max_bytes": limit}


def discard(settings, owner: str, upload_id: str) -> None:
    if isinstance(upload_id, str) and _ID.match(upload_id):
        shutil.rmtree(settings.home / "uploads" / owner / upload_id, ignore_errors=True)

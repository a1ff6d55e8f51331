"""What a released job looks like as files: the approved outputs as their original bytes,
the signed certificate and the public key that verifies it. Every way a release leaves as
files (release.zip from the API or the web UI, the client's download) uses these, so the
certificate's sha256 values match whichever way the files were fetched."""
from __future__ import annotations

import base64
import io
import json
import zipfile

CERTIFICATE = "certificate.json"
PUBLIC_KEY = "release_public_key.pem"


def release_files(release: dict) -> dict[str, bytes]:
    """File name -> bytes for a release as returned by the service's `release()`.

    Binary outputs travel base64-encoded (JSON carries text only) and are decoded here;
    text outputs are UTF-8, "utf-8-sig" ones with the byte order mark the JSON leaves out
    (released CSVs have one, for Excel). The certificate and key come last and win over a job
    output of the same name: a job must never be able to replace the evidence of its release."""
    encodings = release.get("encodings", {})
    files = {name: base64.b64decode(content) if encodings.get(name) == "base64"
             else content.encode("utf-8-sig" if encodings.get(name) == "utf-8-sig" else "utf-8")
             for name, content in release["files"].items()}
    files[CERTIFICATE] = json.dumps(release["certificate"], indent=2, ensure_ascii=False).encode("utf-8")
    files[PUBLIC_KEY] = release["public_key"].encode("utf-8")
    return files


def release_zip(release: dict) -> bytes:
    """The files of `release_files` in one zip archive."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in release_files(release).items():
            z.writestr(name, data)
    return buf.getvalue()

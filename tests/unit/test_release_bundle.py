"""A release as files: what the API's and the web UI's release.zip and the client's download
write. The certificate's sha256 values are computed over the original bytes, so the bundle
must hold exactly those bytes whatever encoding carried them."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile

from sandbox.core.release.bundle import release_files, release_zip

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
CSV = "district,visits\n东城,12\r\n西城,7\n".encode("utf-8")
PEM = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAexample\n-----END PUBLIC KEY-----\n"


def a_release(outputs: dict[str, bytes], binary: set[str]) -> dict:
    """The shape the service's release() returns: binary outputs travel as base64 text."""
    certificate = {"certificate": {"job": "j1", "purpose": "规划",
                                   "files": {n: hashlib.sha256(b).hexdigest() for n, b in outputs.items()}},
                   "signature": "c2ln"}
    return {"job": "j1",
            "files": {n: base64.b64encode(b).decode() if n in binary else b.decode("utf-8") for n, b in outputs.items()},
            "encodings": {n: "base64" if n in binary else "utf-8" for n in outputs},
            "certificate": certificate, "public_key": PEM}


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_binary_outputs_come_out_as_their_original_bytes_not_base64_text():
    rel = a_release({"chart.png": PNG}, binary={"chart.png"})
    assert release_files(rel)["chart.png"] == PNG
    assert unzip(release_zip(rel))["chart.png"] == PNG


def test_text_outputs_are_byte_identical_including_non_ascii_and_line_endings():
    rel = a_release({"visits.csv": CSV}, binary=set())
    assert release_files(rel)["visits.csv"] == CSV
    assert unzip(release_zip(rel))["visits.csv"] == CSV


def test_every_file_matches_the_sha256_the_certificate_signs():
    rel = a_release({"chart.png": PNG, "visits.csv": CSV}, binary={"chart.png"})
    signed = rel["certificate"]["certificate"]["files"]
    for bundle in (release_files(rel), unzip(release_zip(rel))):
        assert {n: hashlib.sha256(bundle[n]).hexdigest() for n in signed} == signed


def test_the_certificate_and_public_key_are_included_in_their_published_format():
    rel = a_release({"visits.csv": CSV}, binary=set())
    for bundle in (release_files(rel), unzip(release_zip(rel))):
        assert set(bundle) == {"visits.csv", "certificate.json", "release_public_key.pem"}
        assert bundle["certificate.json"] == json.dumps(rel["certificate"], indent=2, ensure_ascii=False).encode()
        assert json.loads(bundle["certificate.json"]) == rel["certificate"]
        assert bundle["release_public_key.pem"] == PEM.encode()


def test_a_job_output_cannot_replace_the_certificate_or_the_key():
    rel = a_release({"certificate.json": b"{}", "release_public_key.pem": b"forged"}, binary=set())
    for bundle in (release_files(rel), unzip(release_zip(rel))):
        assert json.loads(bundle["certificate.json"]) == rel["certificate"]
        assert bundle["release_public_key.pem"] == PEM.encode()

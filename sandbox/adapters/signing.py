"""Ed25519 release certificates, verifiable offline with the published public key.

Keys rotate (`sandbox rotate-key`): each signature names its key by `key_id` (the first 16
hex digits of the SHA-256 of the raw public key), and every public key the installation
ever signed with stays in `public/` next to the private key, so certificates signed before
a rotation still verify. Only the current private key exists; a retired one signs nothing.
"""
from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sandbox.core.audit import canonical


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        _publish(path, key)
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    _publish(path, key)
    _write_private(path, key)
    return key


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pem)
    tmp.chmod(0o600)
    tmp.replace(path)


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_dir(key_path: Path) -> Path:
    """Where every public key this installation signed with is kept, one <key_id>.pem each."""
    return key_path.parent / "public"


def _publish(key_path: Path, key: Ed25519PrivateKey) -> None:
    target = public_dir(key_path) / f"{key_id(key)}.pem"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(public_pem(key))


def public_keys(key_path: Path) -> dict[str, str]:
    """Every kept public key, by key id (the current one included once it was used)."""
    folder = public_dir(key_path)
    return {p.stem: p.read_text() for p in sorted(folder.glob("*.pem"))} if folder.is_dir() else {}


def rotate_key(key_path: Path) -> tuple[str, str]:
    """Replace the signing key by a new one; the old public key stays in public/.
    Returns (old key id, new key id)."""
    old = load_or_create_key(key_path)  # publishes the old public key before it goes
    new = Ed25519PrivateKey.generate()
    _publish(key_path, new)
    _write_private(key_path, new)
    return key_id(old), key_id(new)


def public_pem(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def sign_certificate(body: dict, key: Ed25519PrivateKey) -> dict:
    sig = key.sign(canonical(body))
    return {"certificate": body, "signature": base64.b64encode(sig).decode(), "algorithm": "Ed25519",
            "key_id": key_id(key)}


def verify_with_keys(signed: dict, keys: dict[str, str]) -> bool:
    """Verify against the kept public keys: the one the signature names, or (a certificate
    from before key ids) each of them."""
    kid = signed.get("key_id") if isinstance(signed, dict) else None
    candidates = [keys[kid]] if kid in keys else ([] if kid else list(keys.values()))
    return any(verify_certificate(signed, pem) for pem in candidates)


def verify_certificate(signed: dict, public_key_pem: str) -> bool:
    try:
        pub = serialization.load_pem_public_key(public_key_pem.encode())
        if not isinstance(pub, Ed25519PublicKey) or signed.get("algorithm") != "Ed25519":
            return False
        pub.verify(base64.b64decode(signed["signature"]), canonical(signed["certificate"]))
        return True
    except (InvalidSignature, KeyError, ValueError, TypeError):
        return False

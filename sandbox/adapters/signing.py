"""Ed25519 release certificates, verifiable offline with the published public key."""
from __future__ import annotations

import base64
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sandbox.core.audit import canonical


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pem)
    tmp.chmod(0o600)
    tmp.replace(path)
    return key


def public_pem(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def sign_certificate(body: dict, key: Ed25519PrivateKey) -> dict:
    sig = key.sign(canonical(body))
    return {"certificate": body, "signature": base64.b64encode(sig).decode(), "algorithm": "Ed25519"}


def verify_certificate(signed: dict, public_key_pem: str) -> bool:
    try:
        pub = serialization.load_pem_public_key(public_key_pem.encode())
        if not isinstance(pub, Ed25519PublicKey) or signed.get("algorithm") != "Ed25519":
            return False
        pub.verify(base64.b64decode(signed["signature"]), canonical(signed["certificate"]))
        return True
    except (InvalidSignature, KeyError, ValueError, TypeError):
        return False

"""Release certificates: any change to any field breaks the Ed25519 signature."""
from __future__ import annotations

import copy

import pytest

from sandbox.adapters.signing import load_or_create_key, public_pem, sign_certificate, verify_certificate

BODY = {
    "job": "abc123", "operator": "operator", "dataset": "health_visits", "mode": "query",
    "purpose": "public_health_planning", "spec_hash": "a" * 64, "dataset_version": "b" * 64,
    "policy_hash": "c" * 64, "backend": "docker", "runner_image": "sandbox-runner:latest",
    "privacy": {"epsilon": 1.0, "delta": 0.0, "accounting": "pure DP, basic composition", "mechanisms": ["count"]},
    "checks": [{"name": "shape:n", "status": "pass", "explanation": "14 cells"}],
    "reviews": [{"reviewer": "reviewer", "decision": "approve"}],
    "files": {"result.json": "d" * 64, "n.csv": "e" * 64},
}


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return load_or_create_key(tmp_path_factory.mktemp("keys") / "k.pem")


def paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, prefix + (i,))
    else:
        yield prefix


def test_a_signed_certificate_verifies(key):
    assert verify_certificate(sign_certificate(BODY, key), public_pem(key))


@pytest.mark.parametrize("path", list(paths(BODY)), ids=lambda p: ".".join(map(str, p)))
def test_changing_any_field_breaks_the_signature(key, path):
    signed = sign_certificate(BODY, key)
    tampered = copy.deepcopy(signed)
    target = tampered["certificate"]
    for p in path[:-1]:
        target = target[p]
    value = target[path[-1]]
    target[path[-1]] = (value + 1) if isinstance(value, (int, float)) else f"{value}x"
    assert not verify_certificate(tampered, public_pem(key))


def test_another_key_does_not_verify(key, tmp_path):
    other = load_or_create_key(tmp_path / "other.pem")
    assert not verify_certificate(sign_certificate(BODY, key), public_pem(other))


def test_garbage_signature_is_refused_not_raised(key):
    signed = sign_certificate(BODY, key)
    signed["signature"] = "!!not base64!!"
    assert not verify_certificate(signed, public_pem(key))
    del signed["signature"]
    assert not verify_certificate(signed, public_pem(key))

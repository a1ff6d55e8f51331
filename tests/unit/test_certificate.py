"""Release certificates: any change to any field breaks the Ed25519 signature."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sandbox.adapters.signing import load_or_create_key, public_pem, sign_certificate, verify_certificate
from sandbox.controller.views import certificate_body
from sandbox.core import dp
from sandbox.core.manifest import parse_manifest
from sandbox.core.release.certificate import released_statistics
from sandbox.core.specs.query import parse_query_spec

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


# ---- each released statistic described in the certificate's own words

def _query_job_and_outputs():
    repo = Path(__file__).resolve().parents[2]
    manifest = parse_manifest(yaml.safe_load((repo / "datasets" / "health_visits.yaml").read_text(encoding="utf-8")))
    spec_data = json.loads((repo / "jobs" / "health_query.json").read_text(encoding="utf-8"))
    spec = parse_query_spec(spec_data, manifest)
    # result.json as the runner writes it: the plan's fields per table (values do not matter here)
    tables = [{**{k: v for k, v in p.to_dict().items() if k in ("name", "statistic", "column", "group_by", "epsilon",
                                                                  "mechanism", "noise_scale", "sensitivity",
                                                                  "expected_abs_error", "interval", "parts")},
               "columns": [], "rows": []} for p in dp.plan(spec, manifest)]
    job = SimpleNamespace(id="j1", operator="op", dataset="health_visits", mode="query", purpose="p",
                          spec_hash="a" * 64, dataset_version="b" * 64, policy_hash="c" * 64, backend="docker",
                          compliance={}, epsilon=1.0, delta=0.0, code=None,
                          spec={"queries": [q for q in spec_data["queries"]]})
    outputs = [SimpleNamespace(name="result.json", content=json.dumps({"tables": tables}), sha256="d" * 64,
                               checks=[])]
    return job, outputs, spec_data["queries"]


def test_the_certificate_describes_each_statistic_its_mechanism_and_interval(key):
    job, outputs, queries = _query_job_and_outputs()
    body = certificate_body(job, outputs, [])
    stats = {s["table"]: s for s in body["statistics"]}
    assert list(stats) == [q["name"] for q in queries]
    for q in queries:
        s = stats[q["name"]]
        assert s["statistic"] == q["statistic"] and s["noise"] and s["interval"]["level"] == 0.95
        assert s["interval"]["method"] and "interval" in s["description"] and "OpenDP" in s["description"]
    count = next(s for s in stats.values() if s["statistic"] == "count")
    assert count["interval"]["columns"] == ["count_lower", "count_upper"] and count["interval"]["halfwidth"] > 0
    assert "discrete Laplace" in count["description"]
    median = next(s for s in stats.values() if s["statistic"] == "quantile")
    assert median["interval"]["columns"] == ["quantile_lower", "quantile_upper"]
    assert median["interval"]["bound_shift_rows"] > 0 and "approximate" in median["description"]
    assert [p["part"] for p in median["noise"]] == ["selection", "lower", "upper"]
    mean = next(s for s in stats.values() if s["statistic"] == "mean")
    assert "approximate" in mean["description"]
    # still signed: tampering with a description breaks the signature
    signed = sign_certificate(body, key)
    assert verify_certificate(signed, public_pem(key))
    signed["certificate"]["statistics"][0]["description"] += " (edited)"
    assert not verify_certificate(signed, public_pem(key))


def test_no_statistics_without_a_readable_result():
    assert released_statistics(None, [{"name": "n", "statistic": "count"}]) == []
    assert released_statistics("not json", [{"name": "n", "statistic": "count"}]) == []

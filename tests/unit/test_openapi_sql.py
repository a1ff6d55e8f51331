"""The served OpenAPI document describes the SQL form of a query job, with an example that
the server itself accepts."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sandbox.controller.web import create_app
from sandbox.core.manifest import parse_manifest
from sandbox.core.specs.query import parse_query_spec
from tests.unit import test_lifecycle_fakes as fakes
from tests.unit.test_lifecycle_fakes import make

tiny_datasets = fakes.tiny_datasets
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(tmp_path, tiny_datasets):
    svc, _, _, _ = make(tmp_path, tiny_datasets)
    return create_app(svc.settings, services=svc).test_client().get("/api/v1/openapi.json").get_json()


def test_the_served_document_describes_sql_jobs(served):
    sql = served["components"]["schemas"]["SqlQuerySpec"]
    assert sql["required"] == ["mode", "dataset", "purpose", "sql"]
    assert {"sql", "epsilon"} <= set(sql["properties"])
    assert "OPTIONS(epsilon => e)" in sql["description"] and "one epsilon per statement" in str(sql["properties"]["epsilon"])
    body = served["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/SqlQuerySpec"} in body["oneOf"]
    assert "SQL" in served["paths"]["/jobs"]["post"]["summary"]


def test_the_documented_example_compiles_to_a_query_job(served):
    example = served["components"]["schemas"]["SqlQuerySpec"]["examples"][0]
    manifest = parse_manifest(yaml.safe_load((REPO / "datasets" / "health_visits.yaml").read_text(encoding="utf-8")))
    spec = parse_query_spec(example, manifest)
    assert [q.statistic for q in spec.queries] == ["count", "mean", "quantile"]
    assert sum(q.epsilon for q in spec.queries) <= 0.8

"""Domain messages are Texts: exactly the English text as a str (what the API, the CLI and
the stored job messages show), keeping template and parameters for the web UI to translate."""
from __future__ import annotations

import copy
import json
import pickle
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import yaml

from sandbox.core.admission import JobRequest, decide
from sandbox.core.errors import InvalidInput, Text, join_texts
from sandbox.core.ledger import balance, dataset_balance
from sandbox.core.manifest import parse_manifest
from sandbox.core.policy.file import PolicyError, parse_policy
from sandbox.core.specs.common import load_spec_text
from sandbox.core.specs.query import parse_query_spec

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 3, 10, 9, tzinfo=timezone.utc)


def manifest():
    return parse_manifest(yaml.safe_load((REPO / "datasets" / "health_visits.yaml").read_text(encoding="utf-8")))


def policy():
    return parse_policy((REPO / "policies" / "health_visits.yaml").read_text(encoding="utf-8"),
                        "policies/health_visits.yaml")


def query_spec(**query):
    return {"mode": "query", "dataset": "health_visits", "purpose": "public_health_planning",
            "queries": [{"name": "q1", "statistic": "count", "epsilon": 0.5, **query}]}


def refusal(spec) -> InvalidInput:
    with pytest.raises(InvalidInput) as e:
        parse_query_spec(spec, manifest())
    return e.value


def test_a_text_is_its_english_string_and_keeps_template_and_params():
    t = Text("{field}: at most {max} columns (got {n})", field="queries[0].group_by", max=3, n=4)
    assert t == "queries[0].group_by: at most 3 columns (got 4)" and isinstance(t, str)
    assert str(t) == t and type(str(t)) is str
    assert t.template == "{field}: at most {max} columns (got {n})"
    assert t.params == {"field": "queries[0].group_by", "max": 3, "n": 4}
    assert json.dumps({"m": t}) == json.dumps({"m": str(t)})
    assert Text("a {{literal}} brace") == "a {literal} brace"


@pytest.mark.parametrize("clone", [copy.copy, copy.deepcopy, lambda t: pickle.loads(pickle.dumps(t))])
def test_a_text_survives_copy_and_pickle_with_its_template(clone):
    t = Text("{value} is not one of {allowed}", value=Text("nothing"), allowed="a, b")
    c = clone(t)
    assert c == t and type(c) is Text and c.template == t.template
    assert c.params == t.params and type(c.params["value"]) is Text


def test_joined_texts_keep_each_part_translatable():
    parts = [Text("added {values}", values="x"), "plain {braces}"]
    joined = join_texts("; ", parts)
    assert joined == "; ".join(parts) == "added x; plain {braces}"
    assert list(joined.params.values()) == parts
    assert join_texts("\n", []) == ""


def test_invalid_input_keeps_the_english_text_and_exposes_the_text():
    e = refusal(query_spec(statistic="median"))
    assert str(e) == ("queries[0].statistic: 'median' is not supported; use one of count, sum, mean, "
                      "histogram, quantile")
    assert e.field == "queries[0].statistic"
    assert e.message is e.args[0] and e.message.template == "{field}: {value} is not supported; use one of {allowed}"
    assert e.to_dict() == {"error": "invalid_input", "message": str(e), "field": "queries[0].statistic"}
    back = pickle.loads(pickle.dumps(e))
    assert str(back) == str(e) and back.message.template == e.message.template and back.field == e.field


def test_english_messages_are_unchanged():
    # Nested Texts (a column's kind, "a very large integer") read as before.
    e = refusal(query_spec(group_by=["person_id"]))
    assert str(e) == ("queries[0].group_by: 'person_id' is an identifier; group only by categorical columns: "
                      + ", ".join(c.name for c in manifest().columns if c.kind == "categorical"))
    assert type(e.message.params["kind"]) is Text
    e = refusal(query_spec(epsilon=10 ** 40))
    assert str(e) == ("queries[0].epsilon: must be a finite number greater than 0 and at most 10 "
                      "(got a very large integer)")
    assert type(e.message.params["value"]) is Text
    e = refusal({**query_spec(), "extra": 1})
    assert str(e) == "extra: unknown key 'extra'; allowed keys for the spec: mode, dataset, purpose, queries"
    with pytest.raises(InvalidInput) as info:
        load_spec_text('{"a": 1, "a": 2}')
    assert str(info.value) == "spec: key 'a' appears twice; keep one"


def test_admission_reasons_are_texts_with_the_english_text():
    p = policy()
    d = decide(p, JobRequest(operator="nobody", dataset="health_visits", mode="query",
                             purpose="public_health_planning", epsilon=6.0), balance([], p.budget, NOW),
               date(2025, 3, 10), dataset_balance([], p.budget, NOW))
    assert d.reasons == (
        "Operator 'nobody' holds no licence for 'health_visits'; ask the data owner for one.",
        "Privacy cost epsilon 6 exceeds the 5 epsilon available in the current monthly period; "
        "it refreshes on 2025-04-01.")
    assert all(type(r) is Text for r in d.reasons)
    assert d.reasons[1].params["period"].params["refresh"] == "monthly"
    assert json.loads(json.dumps(d.to_dict()))["reasons"] == list(d.reasons)


def test_policy_problems_keep_their_lines_and_english_text():
    with pytest.raises(PolicyError) as info:
        parse_policy("dataset: x\nmodes: []\n", "policies/x.yaml")
    e = info.value
    lines = str(e).splitlines()
    assert lines[0] == "policies/x.yaml:1: classification: is required"
    assert "policies/x.yaml:2: modes: must list at least one mode" in lines
    assert type(e.message) is Text and str(e.message) == str(e)

"""Query spec validation: every malformed spec is refused with InvalidInput naming the field."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from sandbox.core.errors import InvalidInput
from sandbox.core.manifest import parse_manifest
from sandbox.core.specs.common import load_spec_text
from sandbox.core.specs.query import MAX_CELLS, parse_query_spec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def manifest():
    return parse_manifest(yaml.safe_load((REPO / "datasets" / "health_visits.yaml").read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def enterprise():
    return parse_manifest(yaml.safe_load((REPO / "datasets" / "enterprise_registry.yaml").read_text(encoding="utf-8")))


@pytest.fixture()
def example():
    return json.loads((REPO / "jobs" / "health_query.json").read_text(encoding="utf-8"))


def test_example_job_parses_and_normalizes(manifest, example):
    spec = parse_query_spec(example, manifest)
    assert spec.dataset == "health_visits"
    assert [q.name for q in spec.queries] == [q["name"] for q in example["queries"]]
    d = spec.to_dict()
    assert d["queries"][0] == {"name": "visits_by_district", "statistic": "count", "column": None,
                               "group_by": ["district"], "epsilon": 0.3}
    assert d["queries"][3]["bins"] == [0.0, 18.0, 40.0, 65.0, 100.0]
    assert d["queries"][4]["q"] == 0.5
    assert spec.total_epsilon == pytest.approx(1.0)


def test_a_jobs_charge_is_its_queries_epsilons_rounded_up(manifest, example):
    # Rounded to nearest, 0.1 + 0.1 + 0.7 is 0.8999999999999999: a charge below the parts.
    example["queries"] = [dict(example["queries"][0], name=f"q{i}", epsilon=e)
                          for i, e in enumerate((0.1, 0.1, 0.7))]
    assert parse_query_spec(example, manifest).total_epsilon == 0.9


def test_normalized_spec_round_trips_with_the_same_hash(manifest, example):
    spec = parse_query_spec(example, manifest)
    again = parse_query_spec(spec.to_dict(), manifest)
    assert again == spec
    assert again.content_hash == spec.content_hash
    assert len(spec.content_hash) == 64


def test_content_hash_changes_with_any_query_field(manifest, example):
    base = parse_query_spec(example, manifest).content_hash
    example["queries"][0]["epsilon"] = 0.31
    assert parse_query_spec(example, manifest).content_hash != base


def test_integer_epsilon_is_accepted_as_float(manifest, example):
    example["queries"] = [{"name": "n", "statistic": "count", "epsilon": 1}]
    spec = parse_query_spec(example, manifest)
    assert spec.queries[0].epsilon == 1.0 and isinstance(spec.queries[0].epsilon, float)


def _set(path, value):
    """A mutation that sets spec[path...] = value (a path of keys/indices)."""
    def mutate(spec):
        target = spec
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def _delete(path):
    def mutate(spec):
        target = spec
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return mutate


MALFORMED = [
    # (id, mutation, field, message fragment)
    ("unknown top key", _set(["extra"], 1), "extra", "unknown key 'extra'"),
    ("missing purpose", _delete(["purpose"]), "purpose", "missing"),
    ("wrong mode", _set(["mode"], "program"), "mode", 'must be "query"'),
    ("unknown dataset", _set(["dataset"], "tax_records"), "dataset", 'use "health_visits"'),
    ("empty purpose", _set(["purpose"], "  "), "purpose", "non-empty"),
    ("long purpose", _set(["purpose"], "x" * 201), "purpose", "at most 200"),
    ("purpose not text", _set(["purpose"], 5), "purpose", "non-empty text"),
    ("queries not list", _set(["queries"], {"a": 1}), "queries", "must be a list"),
    ("no queries", _set(["queries"], []), "queries", "between 1 and 20"),
    ("too many queries", _set(["queries"], [{"name": f"q{i}", "statistic": "count", "epsilon": 0.01}
                                            for i in range(21)]), "queries", "between 1 and 20"),
    ("query not mapping", _set(["queries", 0], "count"), "queries[0]", "mapping"),
    ("unknown query key", _set(["queries", 1, "colum"], "cost"), "queries[1].colum", "unknown key 'colum'"),
    ("missing epsilon", _delete(["queries", 0, "epsilon"]), "queries[0].epsilon", "missing"),
    ("bad name", _set(["queries", 0, "name"], "drop table;"), "queries[0].name", "letters, digits"),
    ("long name", _set(["queries", 0, "name"], "a" * 65), "queries[0].name", "at most 64"),
    ("duplicate name", _set(["queries", 1, "name"], "visits_by_district"), "queries[1].name", "unique"),
    ("unknown statistic", _set(["queries", 0, "statistic"], "variance"), "queries[0].statistic",
     "use one of count, sum, mean, histogram, quantile"),
    ("unknown column", _set(["queries", 1, "column"], "salary"), "queries[1].column",
     "not a column of health_visits"),
    ("missing column", _delete(["queries", 1, "column"]), "queries[1].column", "needs a numeric column: age, cost"),
    ("categorical value column", _set(["queries", 2, "column"], "sex"), "queries[2].column",
     "'sex' is categorical; sum needs a numeric column: age, cost"),
    ("identifier value column", _set(["queries", 1, "column"], "person_id"), "queries[1].column",
     "'person_id' is an identifier"),
    ("date value column", _set(["queries", 1, "column"], "visit_date"), "queries[1].column", "is a date"),
    ("count with column", _set(["queries", 0, "column"], "cost"), "queries[0].column", "count takes no column"),
    ("group by numeric", _set(["queries", 1, "group_by"], ["cost"]), "queries[1].group_by",
     "'cost' is numeric; group only by categorical columns: sex, district, diagnosis_group"),
    ("group by identifier", _set(["queries", 0, "group_by"], ["person_id"]), "queries[0].group_by",
     "'person_id' is an identifier; group only by categorical columns"),
    ("group by unknown", _set(["queries", 0, "group_by"], ["county"]), "queries[0].group_by",
     "'county' is not a column"),
    ("group by not list", _set(["queries", 0, "group_by"], "district"), "queries[0].group_by", "must be a list"),
    ("group by too many", _set(["queries", 0, "group_by"], ["sex", "district", "diagnosis_group", "sex"]),
     "queries[0].group_by", "at most 3"),
    ("group by twice", _set(["queries", 0, "group_by"], ["sex", "sex"]), "queries[0].group_by", "listed twice"),
    ("epsilon zero", _set(["queries", 0, "epsilon"], 0), "queries[0].epsilon", "greater than 0"),
    ("epsilon negative", _set(["queries", 0, "epsilon"], -0.5), "queries[0].epsilon", "greater than 0"),
    ("epsilon nan", _set(["queries", 0, "epsilon"], float("nan")), "queries[0].epsilon", "finite"),
    ("epsilon inf", _set(["queries", 0, "epsilon"], float("inf")), "queries[0].epsilon", "finite"),
    ("epsilon huge", _set(["queries", 0, "epsilon"], 1e308), "queries[0].epsilon", "at most 10"),
    ("epsilon huge int", _set(["queries", 0, "epsilon"], 10 ** 400), "queries[0].epsilon", "at most 10"),
    ("epsilon above cap", _set(["queries", 0, "epsilon"], 10.5), "queries[0].epsilon", "at most 10"),
    ("epsilon string", _set(["queries", 0, "epsilon"], "0.5"), "queries[0].epsilon", "must be a number"),
    ("epsilon true", _set(["queries", 0, "epsilon"], True), "queries[0].epsilon", "must be a number"),
    ("epsilon null", _set(["queries", 0, "epsilon"], None), "queries[0].epsilon", "must be a number"),
    ("histogram without bins", _delete(["queries", 3, "bins"]), "queries[3].bins", "needs bins"),
    ("bins on a sum", _set(["queries", 2, "bins"], [0, 10]), "queries[2].bins", "only a histogram"),
    ("one bin edge", _set(["queries", 3, "bins"], [0]), "queries[3].bins", "2 to 101"),
    ("too many bin edges", _set(["queries", 3, "bins"], list(range(102))), "queries[3].bins", "2 to 101"),
    ("decreasing bins", _set(["queries", 3, "bins"], [0, 40, 18, 100]), "queries[3].bins", "strictly increasing"),
    ("repeated bin edge", _set(["queries", 3, "bins"], [0, 18, 18, 100]), "queries[3].bins", "strictly increasing"),
    ("bin edge out of bounds", _set(["queries", 3, "bins"], [0, 18, 120]), "queries[3].bins",
     "outside the public bounds of 'age' [0, 100]"),
    ("nan bin edge", _set(["queries", 3, "bins"], [0, float("nan"), 100]), "queries[3].bins", "outside"),
    ("string bin edge", _set(["queries", 3, "bins"], [0, "18", 100]), "queries[3].bins", "must be numbers"),
    ("bins not list", _set(["queries", 3, "bins"], "0-100"), "queries[3].bins", "increasing bin edges"),
    ("quantile without q", _delete(["queries", 4, "q"]), "queries[4].q", "needs q"),
    ("q zero", _set(["queries", 4, "q"], 0), "queries[4].q", "strictly between 0 and 1"),
    ("q one", _set(["queries", 4, "q"], 1.0), "queries[4].q", "strictly between 0 and 1"),
    ("q nan", _set(["queries", 4, "q"], float("nan")), "queries[4].q", "strictly between 0 and 1"),
    ("q string", _set(["queries", 4, "q"], "0.5"), "queries[4].q", "strictly between 0 and 1"),
    ("q too fine", _set(["queries", 4, "q"], 0.12345), "queries[4].q", "4 decimal places"),
    ("q on a count", _set(["queries", 0, "q"], 0.5), "queries[0].q", "only a quantile"),
    ("too many cells", _set(["queries", 3], {"name": "h", "statistic": "histogram", "column": "age",
                                             "bins": list(range(101)), "group_by": ["district", "diagnosis_group"],
                                             "epsilon": 0.1}),
     "queries[3].group_by", "releases 28000 cells; the limit is 10000"),
]


@pytest.mark.parametrize("mutate,field,fragment", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_spec_is_refused_naming_the_field(manifest, example, mutate, field, fragment):
    spec = copy.deepcopy(example)
    mutate(spec)
    with pytest.raises(InvalidInput) as exc:
        parse_query_spec(spec, manifest)
    assert exc.value.field == field
    assert fragment in str(exc.value)
    assert str(exc.value).startswith(field + ":") or str(exc.value).startswith(field + "[")


def test_too_many_cells_counts_histogram_bins(manifest, example):
    # 14 districts x 20 groups x 2 sexes = 560 cells is fine; x 99 bins exceeds the cap.
    q = {"name": "h", "statistic": "histogram", "column": "age", "bins": list(range(0, 100)),
         "group_by": ["district", "diagnosis_group", "sex"], "epsilon": 1}
    example["queries"] = [q]
    assert 560 * 99 > MAX_CELLS
    with pytest.raises(InvalidInput, match="releases 55440 cells"):
        parse_query_spec(example, manifest)
    q["bins"] = [0, 50, 100]
    assert parse_query_spec(example, manifest).queries[0].bins == (0.0, 50.0, 100.0)


def test_grouping_by_three_categorical_columns_is_allowed(manifest, example):
    example["queries"] = [{"name": "c", "statistic": "count", "group_by": ["sex", "district", "diagnosis_group"],
                           "epsilon": 0.5}]
    assert parse_query_spec(example, manifest).queries[0].group_by == ("sex", "district", "diagnosis_group")


def test_spec_for_another_dataset_names_the_expected_one(enterprise, example):
    with pytest.raises(InvalidInput, match='use "enterprise_registry"') as exc:
        parse_query_spec(example, enterprise)
    assert exc.value.field == "dataset"


def test_oversized_spec_is_refused(manifest, example):
    example["purpose"] = "p"
    example["queries"][0]["name"] = "x" * 10
    example["padding"] = "y" * (70 * 1024)
    with pytest.raises(InvalidInput, match="larger than the limit") as exc:
        parse_query_spec(example, manifest)
    assert exc.value.field == "spec"


def test_deeply_nested_spec_is_refused(manifest, example):
    nested = []
    for _ in range(50):
        nested = [nested]
    example["queries"][0]["group_by"] = nested
    with pytest.raises(InvalidInput, match="nested"):
        parse_query_spec(example, manifest)


def test_spec_not_a_mapping(manifest):
    with pytest.raises(InvalidInput) as exc:
        parse_query_spec(["mode", "query"], manifest)
    assert exc.value.field == "spec"


# ---- text input

def test_load_spec_text_reads_json_and_yaml_alike(manifest, example):
    from_json = load_spec_text(json.dumps(example))
    from_yaml = load_spec_text(yaml.safe_dump(example, allow_unicode=True))
    assert parse_query_spec(from_json, manifest) == parse_query_spec(from_yaml, manifest)


def test_load_spec_text_checks_size_before_parsing():
    text = "{" + " " * (64 * 1024) + "}"
    with pytest.raises(InvalidInput, match="limit is 65536 bytes"):
        load_spec_text(text)
    assert load_spec_text("{}", max_bytes=2) == {}


def test_load_spec_text_refuses_yaml_aliases():
    text = "a: &x [1, 2]\nb: *x\n"
    with pytest.raises(InvalidInput, match="anchors and aliases"):
        load_spec_text(text)


@pytest.mark.parametrize("text", ['{"mode": "query", "mode": "query"}', "mode: query\nmode: query\n"])
def test_load_spec_text_refuses_duplicate_keys(text):
    with pytest.raises(InvalidInput, match="'mode' appears twice"):
        load_spec_text(text)


@pytest.mark.parametrize("text", ['{"mode": ', "a: [1, 2\n", "", b"\xff\xfe"])
def test_load_spec_text_refuses_garbage(text):
    with pytest.raises(InvalidInput):
        load_spec_text(text)


def test_yaml_python_tags_are_not_executed():
    with pytest.raises(InvalidInput):
        load_spec_text("!!python/object/apply:os.system ['true']\n")


def test_yaml_boolean_epsilon_is_refused(manifest):
    text = ("mode: query\ndataset: health_visits\npurpose: planning\n"
            "queries:\n  - {name: n, statistic: count, epsilon: yes}\n")
    with pytest.raises(InvalidInput) as exc:
        parse_query_spec(load_spec_text(text), manifest)
    assert exc.value.field == "queries[0].epsilon"


@pytest.mark.parametrize("module", ["query", "common"])
def test_spec_module_imports_only_the_standard_library(module):
    import ast
    import importlib

    mod = importlib.import_module(f"sandbox.core.specs.{module}")
    tree = ast.parse(Path(mod.__file__).read_text(encoding="utf-8"))
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top_level if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in top_level if isinstance(n, ast.ImportFrom) and n.level == 0
              and not n.module.startswith("sandbox.core.")}
    assert names <= {"__future__", "hashlib", "json", "math", "re", "dataclasses"}

"""SQL query jobs compile to the same query list (so the same plan, runner and gate) as the
JSON form; everything outside the aggregate subset is refused with InvalidInput naming the part."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.core import dp
from sandbox.core.errors import InvalidInput
from sandbox.core.manifest import parse_manifest
from sandbox.core.specs.query import parse_query_spec
from sandbox.core.specs.sql import split_epsilon

REPO = Path(__file__).resolve().parents[2]


def _manifest(name):
    return parse_manifest(yaml.safe_load((REPO / "datasets" / f"{name}.yaml").read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def health():
    return _manifest("health_visits")


def sql_job(sql, epsilon=0.5, **extra):
    return {"mode": "query", "dataset": "health_visits", "purpose": "planning", "sql": sql, "epsilon": epsilon,
            **extra}


def compiled(health, sql, epsilon=0.5):
    return parse_query_spec(sql_job(sql, epsilon), health).to_dict()["queries"]


@pytest.mark.parametrize("dataset", ["health_visits", "enterprise_registry"])
def test_example_sql_jobs_compile_to_the_json_examples_plan(dataset):
    manifest = _manifest(dataset)
    stem = dataset.split("_")[0]
    sql = parse_query_spec(json.loads((REPO / "jobs" / f"{stem}_sql.json").read_text("utf-8")), manifest)
    plain = parse_query_spec(json.loads((REPO / "jobs" / f"{stem}_query.json").read_text("utf-8")), manifest)
    assert sql.to_dict() == plain.to_dict()
    assert sql.content_hash == plain.content_hash
    assert [p.to_dict() for p in dp.plan(sql, manifest)] == [p.to_dict() for p in dp.plan(plain, manifest)]


def test_each_aggregate_is_one_table_sharing_the_statements_epsilon(health):
    qs = compiled(health, "SELECT district, COUNT(*) AS n, AVG(cost), MEDIAN(age) FROM health_visits "
                          "GROUP BY district", 0.3)
    assert [(q["name"], q["statistic"], q.get("column"), q["group_by"]) for q in qs] == [
        ("n", "count", None, ["district"]), ("mean_cost_by_district", "mean", "cost", ["district"]),
        ("median_age_by_district", "quantile", "age", ["district"])]
    assert sum(Fraction(repr(q["epsilon"])) for q in qs) <= Fraction("0.3")


@pytest.mark.parametrize("epsilon,n", [(0.3, 3), (0.1, 7), (1.0, 3), (0.7, 6), (9.99, 9)])
def test_an_epsilon_split_never_adds_up_to_more_than_the_statement(epsilon, n):
    share = split_epsilon(epsilon, n)
    assert 0 < share and Fraction(repr(share)) * n <= Fraction(repr(epsilon))


@pytest.mark.parametrize("sql,expected", [
    ("SELECT PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY cost) FROM health_visits",
     {"statistic": "quantile", "column": "cost", "q": 0.9}),
    ("SELECT PERCENTILE_CONT(cost, 0.25) FROM health_visits", {"statistic": "quantile", "column": "cost", "q": 0.25}),
    ("SELECT SUM(cost) FROM health_visits", {"statistic": "sum", "column": "cost"}),
    ("SELECT WIDTH_BUCKET(age, 0, 100, 4) AS b, COUNT(*) FROM health_visits GROUP BY b",
     {"statistic": "histogram", "column": "age", "bins": [0.0, 25.0, 50.0, 75.0, 100.0]}),
    ("SELECT sex, WIDTH_BUCKET(age, ARRAY[0, 18, 100]), COUNT(*) FROM health_visits GROUP BY 1, 2",
     {"statistic": "histogram", "column": "age", "bins": [0.0, 18.0, 100.0], "group_by": ["sex"]}),
])
def test_supported_aggregates(health, sql, expected):
    (q,) = compiled(health, sql)
    assert {k: q[k] for k in expected} == expected


def test_epsilon_may_come_from_bigquery_options(health):
    spec = parse_query_spec(sql_job("SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS(epsilon => 0.2, "
                                    "privacy_unit_column = person_id) COUNT(*) FROM health_visits", None), health)
    assert spec.total_epsilon == 0.2


@pytest.mark.parametrize("job,fragment", [
    (sql_job("SELECT COUNT(*) FROM health_visits", None), "no epsilon"),
    (sql_job(["SELECT COUNT(*) FROM health_visits"] * 2, 0.5), "list of 2 epsilons"),
    (sql_job(["SELECT COUNT(*) FROM health_visits"] * 2, [0.5]), "one epsilon per statement"),
    (sql_job(["SELECT COUNT(*) FROM health_visits"] * 11, [0.1] * 11), "between 1 and 10 statements"),
    (sql_job("SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS(epsilon => 0.2) COUNT(*) FROM health_visits", 0.5),
     "keep one"),
    (sql_job("SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS(epsilon => 1, privacy_unit_column => sex) COUNT(*) "
             "FROM health_visits", None), "privacy unit"),
    (sql_job("SELECT COUNT(*) FROM health_visits", 0.5, queries=[]), "not both"),
    (sql_job("SELECT COUNT(*) FROM health_visits", 0.5, extra=1), "unknown key"),
])
def test_job_level_refusals(health, job, fragment):
    with pytest.raises(InvalidInput) as e:
        parse_query_spec(job, health)
    assert fragment in str(e.value)


@pytest.mark.parametrize("sql,fragment", [
    ("SELECT * FROM health_visits", "SELECT *"),
    ("SELECT age, COUNT(*) FROM health_visits", "neither aggregated nor in GROUP BY"),
    ("SELECT COUNT(*) FROM health_visits a JOIN lookup b ON a.sex = b.sex", "JOIN"),
    ("SELECT COUNT(*) FROM (SELECT * FROM health_visits) t", "subquery"),
    ("SELECT COUNT(*) FROM health_visits WHERE cost > (SELECT 1)", "subquery"),
    ("SELECT COUNT(*) FROM health_visits LIMIT 5", "LIMIT"),
    ("SELECT district, COUNT(*) FROM health_visits GROUP BY district ORDER BY 2", "ORDER BY"),
    ("SELECT age, COUNT(*) FROM health_visits GROUP BY age", "GROUP BY age: 'age' is numeric"),
    ("SELECT person_id, COUNT(*) FROM health_visits GROUP BY person_id", "'person_id' is an identifier"),
    ("SELECT AVG(person_id) FROM health_visits", "'person_id' is an identifier"),
    ("SELECT STDDEV(cost) FROM health_visits", "not supported"),
    ("SELECT my_udf(cost) FROM health_visits", "not supported"),
    ("SELECT COUNT(DISTINCT person_id) FROM health_visits", "only COUNT(*)"),
    ("SELECT COUNT(*) FROM health_visits WHERE sex = 'F' OR age > 3", "no OR"),
    ("SELECT COUNT(*) FROM health_visits WHERE sex = 'X'", "sql[0].where[0].value: 'X' is not a category"),
    ("SELECT COUNT(*) FROM health_visits WHERE person_id = 5", "is an identifier"),
    ("SELECT COUNT(*) FROM health_visits WHERE sex LIKE 'F%'", "WHERE"),
    ("SELECT COUNT(*) FROM other_table", "FROM 'other_table'"),
    ("SELECT COUNT(*) FROM health_visits HAVING COUNT(*) > 10", "HAVING"),
    ("SELECT DISTINCT district FROM health_visits", "DISTINCT"),
    ("DELETE FROM health_visits", "only SELECT"),
    ("SELECT COUNT(* FROM health_visits", "not valid SQL"),
    ("SELECT SUM(cost) OVER () FROM health_visits", "OVER"),
    ("SELECT PERCENTILE_CONT(1.5) WITHIN GROUP (ORDER BY cost) FROM health_visits", "between 0 and 1"),
    ("SELECT WIDTH_BUCKET(age, 0, 500, 4) AS b, COUNT(*) FROM health_visits GROUP BY b", "public bounds"),
    ("SELECT WIDTH_BUCKET(age, 0, 100, 4) AS b, SUM(cost) FROM health_visits GROUP BY b", "only COUNT(*)"),
    ("SELECT COUNT(*) AS n, SUM(cost) AS n FROM health_visits", "AS n"),
])
def test_statements_outside_the_subset_are_refused_naming_the_part(health, sql, fragment):
    with pytest.raises(InvalidInput) as e:
        parse_query_spec(sql_job(sql), health)
    assert fragment in str(e.value)


VALID = [
    "SELECT district, COUNT(*) AS n, AVG(cost) FROM health_visits GROUP BY district",
    "SELECT sex, SUM(cost), MEDIAN(age) FROM health_visits GROUP BY sex",
    "SELECT WIDTH_BUCKET(age, 0, 100, 4) AS b, COUNT(*) FROM health_visits GROUP BY b",
    "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS(epsilon => 0.2) PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY cost) "
    "FROM health_visits",
]
TOKENS = ["SELECT", "FROM", "WHERE", "GROUP BY", "ORDER BY", "LIMIT 1", "JOIN", "(", ")", ",", "*", "COUNT(*)",
          "AVG(", "SUM(cost)", "health_visits", "district", "person_id", "age", "'x'", "1e999", "-", ";", "ARRAY[",
          "]", "WITHIN GROUP", "OVER", "UNION", "WITH", "OPTIONS(", "=>", "epsilon", "\x00", "\"", "`", "--", "/*"]


@st.composite
def mutated(draw):
    base = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(base)))
        op = draw(st.sampled_from(["insert", "delete", "token"]))
        if op == "delete":
            base = base[:at] + base[at + draw(st.integers(1, 12)):]
        elif op == "token":
            base = base[:at] + " " + draw(st.sampled_from(TOKENS)) + " " + base[at:]
        else:
            base = base[:at] + draw(st.text(max_size=8)) + base[at:]
    return base


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), mutated(), st.lists(mutated(), min_size=1, max_size=3)))
def test_fuzzed_sql_is_either_compiled_or_refused_as_invalid_input(health, sql):
    n = len(sql) if isinstance(sql, list) else 1
    try:
        spec = parse_query_spec(sql_job(sql, [0.5] * n if isinstance(sql, list) else 0.5), health)
    except InvalidInput:
        return
    assert spec.queries and all(q.epsilon > 0 for q in spec.queries)


def test_where_becomes_row_filters_of_every_aggregate(health):
    qs = compiled(health, "SELECT district, COUNT(*), AVG(cost) FROM health_visits WHERE sex = 'F' AND "
                          "(age BETWEEN 18 AND 65) AND 100 < cost AND diagnosis_group NOT IN ('A00-B99', 'Z00-Z99') "
                          "GROUP BY district")
    want = [{"column": "sex", "op": "=", "value": "F"}, {"column": "age", "op": "between", "value": [18.0, 65.0]},
            {"column": "cost", "op": ">", "value": 100.0},
            {"column": "diagnosis_group", "op": "not_in", "value": ["A00-B99", "Z00-Z99"]}]
    assert [q["where"] for q in qs] == [want, want]


def test_queries_without_filters_keep_their_json_form(health):
    (q,) = compiled(health, "SELECT COUNT(*) FROM health_visits")
    assert "where" not in q


@pytest.mark.parametrize("where,fragment", [
    ([{"column": "sex", "op": ">", "value": "F"}], "does not apply to the categorical column"),
    ([{"column": "cost", "op": "in", "value": [1]}], "does not apply to a numeric column"),
    ([{"column": "cost", "op": "between", "value": [5, 1]}], "low <= high"),
    ([{"column": "cost", "op": "=", "value": float("inf")}], "finite number"),
    ([{"column": "visit_date", "op": "=", "value": "2024-01-01"}], "a date"),
    ([{"column": "sex", "op": "=", "value": "F", "extra": 1}], "unknown key"),
    ([{"column": "sex", "op": "="}], "missing"),
    ([{"column": "sex", "op": "=", "value": "F"}] * 6, "at most 5 filters"),
])
def test_json_row_filters_are_checked_naming_the_field(health, where, fragment):
    spec = {"mode": "query", "dataset": "health_visits", "purpose": "p",
            "queries": [{"name": "n", "statistic": "count", "epsilon": 0.5, "where": where}]}
    with pytest.raises(InvalidInput) as e:
        parse_query_spec(spec, health)
    assert fragment in str(e.value) and "queries[0].where" in str(e.value)

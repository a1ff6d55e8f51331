"""Per-column classification (分类分级, issue 14): a column the owner marks `access: hidden` is
absent from what operators read and refused in every job mode; a column with `modes` is
usable only in those modes. Enforced at submission (one place for query JSON, SQL, program
and reviewed jobs) and in the data the boxes running operator code get."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from sandbox.adapters.memory import MemoryRepository
from sandbox.agent.backends.fake import FakeBackend
from sandbox.agent.blocks import assign_blocks, new_block_seed
from sandbox.agent.columnview import data_view
from sandbox.agent.draft import draft_manifest
from sandbox.bootstrap import bootstrap
from sandbox.config import load
from sandbox.core import datafiles
from sandbox.core import states as st
from sandbox.core.errors import InvalidInput
from sandbox.core.manifest import parse_manifest
from sandbox.core.records import utcnow
from sandbox.core.specs.access import box_manifest

MANIFEST = {
    "name": "visits", "title": "Visits", "classification": "L3", "privacy_unit": "person", "max_rows_per_unit": 2,
    "columns": [
        {"name": "person", "type": "string", "kind": "identifier", "access": "hidden"},
        {"name": "region", "type": "string", "kind": "categorical", "categories": ["north", "south"]},
        {"name": "cost", "type": "float64", "kind": "numeric", "bounds": [0, 100], "modes": ["query"]},
        {"name": "age", "type": "int64", "kind": "numeric", "bounds": [0, 100]},
        {"name": "clinic", "type": "string", "kind": "categorical", "categories": ["x", "y"], "access": "hidden"},
    ],
}
QUERY = {"mode": "query", "dataset": "visits", "purpose": "planning"}
PROGRAM = {"mode": "program", "dataset": "visits", "purpose": "planning", "entrypoint": "analyse",
           "outputs": [{"name": "mean_age", "lower": 0, "upper": 100}], "default": [40], "blocks": 10,
           "epsilon": 1.0}
CODE_AGE = "def analyse(df):\n    return [float(df['age'].mean())]\n"


def visits_table() -> pa.Table:
    return pa.table({"person": ["a", "a", "b", "c"], "region": ["north", "south", "north", "south"],
                     "cost": [1.0, 2.0, 3.0, 4.0], "age": pa.array([30, 30, 40, 50], pa.int64()),
                     "clinic": ["x", "y", "x", "y"]})


@pytest.fixture
def svc(tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    svc = bootstrap(load({"SANDBOX_HOME": str(tmp_path / "home"), "SANDBOX_INGEST_ROOTS": str(incoming)}),
                    repo=MemoryRepository(utcnow), enqueue=lambda _j: None,
                    backend_factory=lambda _c=None: FakeBackend())
    for name, role in (("owner", st.OWNER), ("operator", st.OPERATOR)):
        svc.accounts.create_user(name, role, f"tok-{name}")
    pq.write_table(visits_table(), incoming / "visits.parquet")
    svc.owner.register_version(svc.accounts.user("owner"), yaml.safe_dump(MANIFEST), str(incoming / "visits.parquet"))
    return svc


def refused(svc, raw) -> InvalidInput:
    with pytest.raises(InvalidInput) as e:
        svc.operator.parse_submission(raw)
    return e.value


def test_the_manifest_parses_access_and_modes_and_refuses_bad_values():
    m = parse_manifest(MANIFEST)
    assert [c.name for c in m.restricted()] == ["person", "clinic"]
    assert [c.name for c in m.restricted("program")] == ["person", "cost", "clinic"]
    assert parse_manifest(m.to_dict()) == m
    for change, field in (({"access": "secret"}, "columns[1].access"), ({"modes": ["sql"]}, "columns[1].modes"),
                          ({"modes": []}, "columns[1].modes"),
                          ({"access": "hidden", "modes": ["query"]}, "columns[1].modes")):
        cols = [dict(c) for c in MANIFEST["columns"]]
        cols[1].update(change)
        with pytest.raises(InvalidInput) as e:
            parse_manifest({**MANIFEST, "columns": cols})
        assert e.value.field == field


def test_the_catalog_and_mock_data_leave_hidden_columns_out(svc):
    ds = svc.views.get_dataset("visits")
    assert [c["name"] for c in ds["columns"]] == ["region", "cost", "age"]  # person, clinic hidden
    assert ds["classification"] == "L3"
    assert next(c for c in ds["columns"] if c["name"] == "cost")["modes"] == ["query"]
    mock = pq.read_table(pa.BufferReader(svc.views.mock_data("visits", "parquet", rows=50)))
    assert {"person", "clinic"}.isdisjoint(mock.column_names) and "region" in mock.column_names


@pytest.mark.parametrize("query, field", [
    ({"name": "q", "statistic": "count", "group_by": ["person"], "epsilon": 0.5}, "queries[0].group_by"),
    ({"name": "q", "statistic": "count", "epsilon": 0.5,
      "where": [{"column": "person", "op": "==", "value": "a"}]}, "queries[0].where[0].column"),
])
def test_query_json_naming_a_hidden_column_is_refused_naming_it(svc, query, field):
    e = refused(svc, {**QUERY, "queries": [query]})
    assert "'person'" in str(e) and "hidden" in str(e) and e.field == field


def test_sql_naming_a_hidden_column_is_refused_through_the_compiled_query(svc):
    e = refused(svc, {**QUERY, "sql": "SELECT clinic, COUNT(*) AS n FROM visits GROUP BY clinic", "epsilon": 0.5})
    assert "'clinic'" in str(e) and "hidden" in str(e) and e.field == "queries[0].group_by"
    # Wrong on other counts too (an identifier cannot be grouped by): still named as hidden.
    e = refused(svc, {**QUERY, "sql": "SELECT person, COUNT(*) AS n FROM visits GROUP BY person", "epsilon": 0.5})
    assert "'person'" in str(e) and "hidden" in str(e) and e.field == "sql"
    # Open columns still work, and an unknown column's refusal does not list the hidden one.
    svc.operator.parse_submission({**QUERY, "sql": "SELECT region, AVG(cost) AS c FROM visits GROUP BY region",
                                   "epsilon": 0.5})
    e = refused(svc, {**QUERY, "queries": [{"name": "q", "statistic": "mean", "column": "nope", "epsilon": 1}]})
    assert "person" not in str(e) and "clinic" not in str(e)


def test_a_mode_restricted_column_is_usable_only_in_its_modes(svc):
    svc.operator.parse_submission({**QUERY, "queries": [{"name": "q", "statistic": "mean", "column": "cost",
                                                         "epsilon": 1}]})
    reviewed = {"mode": "reviewed", "dataset": "visits", "purpose": "planning",
                "tables": [{"name": "t", "group_by": ["region"],
                            "aggregates": [{"statistic": "sum", "column": "cost"}]}]}
    e = refused(svc, reviewed)
    assert "'cost'" in str(e) and "only in query jobs" in str(e) and e.field == "tables[0].aggregates[0].column"
    reviewed["tables"][0]["aggregates"] = [{"statistic": "sum", "column": "age"}]
    svc.operator.parse_submission(reviewed)


def test_program_code_naming_a_restricted_column_is_refused(svc):
    svc.operator.parse_submission({"spec": PROGRAM, "code": CODE_AGE})
    e = refused(svc, {"spec": PROGRAM, "code": CODE_AGE.replace("'age'", "'cost'")})
    assert e.field == "code" and "'cost'" in str(e) and "line 2" in str(e)
    e = refused(svc, {"spec": PROGRAM, "code": CODE_AGE.replace("'age'", "'person'")})
    assert "hidden" in str(e)


def test_program_blocks_lack_the_columns_kept_from_programs(tmp_path):
    pq.write_table(visits_table(), tmp_path / "v.parquet")
    dirs = assign_blocks(tmp_path, "person", 2, new_block_seed(), tmp_path / "blocks",
                         drop_columns=("person", "cost", "clinic"))
    rows = 0
    for d in dirs:
        t = pq.read_table(d)
        assert t.column_names == ["region", "age"]
        rows += t.num_rows
    assert rows == 4


def test_the_reviewed_program_box_gets_a_copy_without_restricted_columns(tmp_path):
    manifest = parse_manifest({**MANIFEST, "columns": MANIFEST["columns"][:3] + [
        {**MANIFEST["columns"][3], "access": "hidden"}]})
    for age in (30, 40):
        folder = tmp_path / "data" / f"age={age}"
        folder.mkdir(parents=True)
        pq.write_table(visits_table().drop_columns(["age", "clinic"]), folder / "part-0.parquet")
    view = data_view(tmp_path / "data", manifest, "reviewed", tmp_path / "view")
    files = datafiles.data_files(view)
    assert [f.partition for f in files] == [(), ()]  # the hidden partition folder is gone too
    # person hidden, cost usable in query jobs only, age hidden: region alone is left.
    assert all(pq.read_table(f.path).column_names == ["region"] for f in files)
    assert data_view(tmp_path / "data", parse_manifest({**MANIFEST, "columns": MANIFEST["columns"][1:2] + [
        {**MANIFEST["columns"][0], "access": "open"}]}), "reviewed", tmp_path / "v2") == tmp_path / "data"
    box = box_manifest(manifest, "reviewed").to_dict()
    assert [c["name"] for c in box["columns"]] == ["person", "region"]
    parse_manifest(box)  # the box parses it


def test_the_draft_suggests_hiding_identifier_columns(tmp_path):
    pq.write_table(pa.table({"person_id": [f"p{i}" for i in range(100)], "region": ["n", "s"] * 50}),
                   tmp_path / "d.parquet")
    cols = {c["name"]: c for c in yaml.safe_load(draft_manifest(tmp_path / "d.parquet"))["columns"]}
    assert cols["person_id"].get("access") == "hidden" and "access" not in cols["region"]


def test_a_local_mock_run_can_parse_the_catalog_entry_without_the_hidden_unit(svc):
    from sandbox.core.manifest import parse_public_manifest
    public = svc.views.get_dataset("visits")
    m = parse_public_manifest(public)  # parse_manifest alone refuses it: the unit is not among the columns
    assert m.privacy_unit == "person" and m.column("person").access == "hidden"
    assert [c.name for c in m.restricted()] == ["person"]

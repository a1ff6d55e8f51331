"""Owners register dataset versions from their own data (issue 14): copied into the store,
reported on against the manifest, refused or enforced, versioned and retired; every bad
input is a clear InvalidInput that leaves no version behind."""
from __future__ import annotations

import os
import stat

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from sandbox.adapters.memory import MemoryRepository
from sandbox.agent.backends.fake import FakeBackend
from sandbox.agent.draft import draft_manifest
from sandbox.agent.regreport import RegistrationRefused
from sandbox.bootstrap import bootstrap
from sandbox.config import load
from sandbox.core import states as st
from sandbox.core.errors import Forbidden, InvalidInput
from sandbox.core.manifest import parse_manifest
from sandbox.core.records import utcnow

MANIFEST = {
    "name": "visits", "title": "Visits", "classification": "L2", "privacy_unit": "person", "max_rows_per_unit": 2,
    "columns": [
        {"name": "person", "type": "string", "kind": "identifier"},
        {"name": "region", "type": "string", "kind": "categorical", "categories": ["north", "south"]},
        {"name": "cost", "type": "float64", "kind": "numeric", "bounds": [0, 100]},
    ],
}


def manifest_text(**changes) -> str:
    return yaml.safe_dump({**MANIFEST, **changes})


def table(persons, regions=None, costs=None, **extra) -> pa.Table:
    n = len(persons)
    cols = {"person": pa.array(persons, pa.string()),
            "region": pa.array(regions or ["north"] * n, pa.string()),
            "cost": pa.array(costs or [10.0] * n, pa.float64())}
    cols.update(extra)
    return pa.table(cols)


@pytest.fixture
def env(tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    svc = bootstrap(load({"SANDBOX_HOME": str(tmp_path / "home"), "SANDBOX_INGEST_ROOTS": str(incoming)}),
                    repo=MemoryRepository(utcnow), enqueue=lambda _j: None,
                    backend_factory=lambda _c=None: FakeBackend())
    for name, role in (("owner", st.OWNER), ("owner2", st.OWNER), ("operator", st.OPERATOR),
                       ("reviewer", st.COMPLIANCE)):
        svc.accounts.create_user(name, role, f"tok-{name}")
    return svc, incoming


def user(svc, name):
    return svc.accounts.user(name)


def store_entries(svc) -> list[str]:
    store = svc.owner.p.settings.store_dir
    return sorted(os.listdir(store)) if store.exists() else []


def audit_actions(svc) -> list[str]:
    with svc.owner.p.repo.transaction() as tx:
        return [r.action for r in tx.audit_records()]


def test_a_clean_file_is_copied_into_the_read_only_store_and_reported(env):
    svc, incoming = env
    pq.write_table(table(["a", "a", "b"], costs=[1.0, 2.0, 3.0]), incoming / "visits.parquet")
    reg = svc.owner.register_version(user(svc, "owner"), manifest_text(), str(incoming / "visits.parquet"))
    assert reg["bound_verified"] and not reg["enforced"] and reg["rows"] == 3
    report = reg["report"]
    assert (report["rows"], report["units"], report["units_over_bound"], report["null_unit_rows"]) == (3, 2, 0, 0)
    assert report["schema"] == {"missing_columns": [], "extra_columns": [], "wrong_types": {}, "partition_columns": []}
    with svc.owner.p.repo.transaction() as tx:
        ds = tx.dataset("visits")
    store = svc.owner.p.settings.store_dir
    assert ds.data_dir == str(store / reg["content_hash"]) and ds.owner_account == "owner"
    assert ds.version_id == reg["version"] and reg["content_hash"] not in ds.version_id
    copied = store / reg["content_hash"] / "visits.parquet"
    assert pq.read_table(copied).num_rows == 3
    assert stat.S_IMODE(copied.stat().st_mode) == 0o444 and stat.S_IMODE(copied.parent.stat().st_mode) == 0o555
    # The owner's original stays as it was (writable), and jobs never read it.
    assert stat.S_IMODE((incoming / "visits.parquet").stat().st_mode) & 0o200
    assert "dataset.version_registered" in audit_actions(svc)
    assert svc.owner.report(user(svc, "reviewer"), "visits")["report"] == report


def test_a_hive_partitioned_folder_registers_with_its_partition_column(env):
    svc, incoming = env
    for region in ("north", "south"):
        folder = incoming / "hive" / f"region={region}"
        folder.mkdir(parents=True)
        pq.write_table(table(["a", "b"]).drop(["region"]), folder / "part-0.parquet")
    reg = svc.owner.register_version(user(svc, "owner"), manifest_text(), f"file://{incoming / 'hive'}")
    assert reg["report"]["schema"]["partition_columns"] == ["region"]
    assert reg["rows"] == 4 and reg["bound_verified"]


def test_violations_are_refused_with_the_report_and_leave_nothing(env):
    svc, incoming = env
    pq.write_table(table(["a", "a", "a", None, "b"], costs=[1.0, 2.0, 3.0, 4.0, 500.0],
                         extra=pa.array([1, 2, 3, 4, 5])), incoming / "bad.parquet")
    with pytest.raises(RegistrationRefused) as e:
        svc.owner.register_version(user(svc, "owner"), manifest_text(), str(incoming / "bad.parquet"))
    report = e.value.report
    assert (report["units_over_bound"], report["rows_over_bound"], report["null_unit_rows"]) == (1, 1, 1)
    assert report["schema"]["extra_columns"] == ["extra"]
    assert report["columns"]["cost"] == {"nulls": 0, "below": 0, "above": 1}
    assert "--enforce" in str(e.value) and e.value.to_dict()["report"] == report
    with svc.owner.p.repo.transaction() as tx:
        assert tx.dataset("visits") is None and tx.dataset_versions("visits") == []
    assert store_entries(svc) == []
    assert audit_actions(svc)[-1] == "dataset.registration_refused"


def test_enforce_stores_a_new_verified_version(env):
    svc, incoming = env
    persons = ["a"] * 5 + [None, "b"]
    pq.write_table(table(persons, costs=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 500.0], extra=pa.array(range(7))),
                   incoming / "bad.parquet")
    reg = svc.owner.register_version(user(svc, "owner"), manifest_text(), str(incoming / "bad.parquet"),
                                     enforce=True)
    assert reg["enforced"] and reg["bound_verified"] and reg["rows"] == 3
    e = reg["report"]["enforcement"]
    assert (e["rows_in"], e["rows_kept"], e["null_unit_rows_dropped"], e["rows_over_bound_dropped"]) == (7, 3, 1, 3)
    assert e["columns_dropped"] == ["extra"] and e["values_clamped"] == {"cost": 1}
    assert e["after"] == {"rows": 3, "units": 2, "units_over_bound": 0, "null_unit_rows": 0}
    data = pq.read_table(svc.owner.p.settings.store_dir / reg["content_hash"]).to_pydict()
    assert set(data) == {"person", "region", "cost"} and max(data["cost"]) == 100.0
    assert sorted(data["person"]) == ["a", "a", "b"]


@pytest.mark.parametrize("changes, data, message", [
    ({}, "not-parquet", "not a readable Parquet file"),
    ({"columns": MANIFEST["columns"] + [{"name": "age", "type": "int64", "kind": "numeric", "bounds": [0, 9]}]},
     "ok", "declared in the manifest but not in the files: age"),
    ({"columns": [MANIFEST["columns"][0], MANIFEST["columns"][1],
                  {"name": "cost", "type": "date", "kind": "date"}]}, "ok", "'cost' is double in the files"),
    ({"columns": [MANIFEST["columns"][0], {**MANIFEST["columns"][1], "categories": ["north"]},
                  MANIFEST["columns"][2]]}, "ok", r"not in the manifest's categories \(south\)"),
])
def test_schema_mismatches_are_refused_even_with_enforce(env, changes, data, message):
    svc, incoming = env
    path = incoming / "v.parquet"
    if data == "not-parquet":
        path.write_text("person,region\n")
    else:
        pq.write_table(table(["a", "b"], regions=["north", "south"]), path)
    with pytest.raises(InvalidInput, match=message):
        svc.owner.register_version(user(svc, "owner"), manifest_text(**changes), str(path), enforce=True)
    with svc.owner.p.repo.transaction() as tx:
        assert tx.dataset("visits") is None
    assert store_entries(svc) == []


@pytest.mark.parametrize("source, message", [
    ("/etc/passwd", "outside the folders owners may register from"),
    ("relative/path.parquet", "relative path"),
    ("http://example.com/x.parquet", "scheme 'http' is not allowed"),
    ("s3://bucket/x.parquet", "outside the URI prefixes"),
    ("{incoming}/missing.parquet", "does not exist"),
    ("{incoming}/empty", "no Parquet files"),
])
def test_bad_sources_say_what_to_fix(env, source, message):
    svc, incoming = env
    (incoming / "empty").mkdir()
    with pytest.raises(InvalidInput, match=message):
        svc.owner.register_version(user(svc, "owner"), manifest_text(), source.format(incoming=incoming))


def test_a_symlink_escaping_the_roots_is_refused(env, tmp_path):
    svc, incoming = env
    outside = tmp_path / "outside.parquet"
    pq.write_table(table(["a"]), outside)
    (incoming / "link.parquet").symlink_to(outside)
    with pytest.raises(InvalidInput, match="outside the folders"):
        svc.owner.register_version(user(svc, "owner"), manifest_text(), str(incoming / "link.parquet"))


def test_only_the_owning_account_registers_and_reads_reports(env):
    svc, incoming = env
    pq.write_table(table(["a"]), incoming / "v.parquet")
    svc.owner.register_version(user(svc, "owner"), manifest_text(), str(incoming / "v.parquet"))
    with pytest.raises(Forbidden):
        svc.owner.register_version(user(svc, "owner2"), manifest_text(), str(incoming / "v.parquet"))
    for name in ("owner2", "operator"):
        with pytest.raises(Forbidden):
            svc.owner.versions(user(svc, name), "visits")
    with pytest.raises(Forbidden):
        svc.owner.register_version(user(svc, "operator"), manifest_text(), str(incoming / "v.parquet"))


def test_versions_and_retirement(env):
    svc, incoming = env
    owner = user(svc, "owner")
    pq.write_table(table(["a"]), incoming / "v1.parquet")
    pq.write_table(table(["a", "b"]), incoming / "v2.parquet")
    v1 = svc.owner.register_version(owner, manifest_text(), str(incoming / "v1.parquet"))["version"]
    v2 = svc.owner.register_version(owner, manifest_text(), str(incoming / "v2.parquet"))["version"]
    versions = svc.owner.versions(owner, "visits")
    assert [(v["version"], v["current"], v["rows"]) for v in versions] == [(v1, False, 1), (v2, True, 2)]
    assert svc.owner.report(owner, "visits", v1[:8])["rows"] == 1
    svc.owner.retire(owner, "visits", v1)
    with svc.owner.p.repo.transaction() as tx:
        assert not tx.dataset("visits").retired
    out = svc.owner.retire(owner, "visits")
    assert out == {"name": "visits", "version": v2, "state": "retired", "dataset_retired": True}
    with svc.owner.p.repo.transaction() as tx:
        assert tx.dataset("visits").retired
    assert [v["state"] for v in svc.owner.versions(owner, "visits")] == ["retired", "retired"]
    assert audit_actions(svc).count("dataset.version_retired") == 2
    with pytest.raises(Forbidden):
        svc.owner.retire(user(svc, "owner2"), "visits")


def test_the_draft_is_a_manifest_the_owner_can_register(env):
    svc, incoming = env
    persons = [f"p{i}" for i in range(60) for _ in range(2)]
    pq.write_table(table(persons, regions=["north", "south"] * 60, costs=[float(i) for i in range(120)],
                         visits=pa.array(list(range(120)), pa.int64())), incoming / "d.parquet")
    text = draft_manifest(incoming / "d.parquet", name="visits")
    assert text.startswith("# DRAFT manifest") and "rows per unit if the privacy unit is person" in text
    manifest = parse_manifest(yaml.safe_load(text))
    assert manifest.privacy_unit == "person" and manifest.max_rows_per_unit == 2
    assert manifest.column("region").categories == ("north", "south")
    assert manifest.column("cost").kind == "numeric" and manifest.column("cost").bounds[1] < 119
    reg = svc.owner.register_version(user(svc, "owner"), text, str(incoming / "d.parquet"), enforce=True)
    assert reg["bound_verified"]


def test_the_draft_command_prints_yaml_and_bad_paths_exit_2(env, tmp_path, capsys):
    from sandbox.controller import cli
    svc, incoming = env
    pq.write_table(table([f"p{i}" for i in range(60)]), incoming / "d.parquet")
    assert cli.main(["dataset", "draft", str(incoming / "d.parquet"), "--name", "visits"]) == 0
    assert parse_manifest(yaml.safe_load(capsys.readouterr().out)).privacy_unit == "person"
    assert cli.main(["dataset", "draft", str(tmp_path / "missing.parquet")]) == 2
    assert "no such file" in capsys.readouterr().err
    (incoming / "bad.parquet").write_text("not parquet")
    assert cli.main(["dataset", "draft", str(incoming / "bad.parquet")]) == 2
    assert "not readable as Parquet" in capsys.readouterr().err
    assert cli.main(["dataset", "draft", str(incoming / "d.parquet"), "--unit", "nobody"]) == 2

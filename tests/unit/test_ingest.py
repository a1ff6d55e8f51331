"""Owner-side registration checks (sandbox.agent.ingest)."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sandbox import datagen
from sandbox.agent import ingest
from sandbox.core.errors import InvalidInput

REPO = Path(__file__).resolve().parents[2]

SCHEMA = pa.schema([("pid", pa.string()), ("seq", pa.int64()), ("v", pa.float64())])


def write(path: Path, pids: list, start: int) -> None:
    seq = list(range(start, start + len(pids)))
    pq.write_table(pa.table({"pid": pids, "seq": seq, "v": [s * 1.5 for s in seq]}, schema=SCHEMA), path)


@pytest.fixture
def violating(tmp_path) -> Path:
    """Unit 'a' has 4 rows spread over two files, 'b' has 3, 'c' has 1; two rows have no unit."""
    d = tmp_path / "violating"
    (d / "sub").mkdir(parents=True)
    write(d / "part-0.parquet", ["a", "b", "a", None, "c", "b"], 0)
    write(d / "sub" / "part-1.parquet", ["a", "b", "a", None], 6)
    return d


def test_row_count_reads_parquet_footers(violating):
    assert ingest.row_count(violating) == 10


def test_version_hash_is_stable_and_changes_with_one_byte(violating):
    first = ingest.dataset_version_hash(violating)
    assert first == ingest.dataset_version_hash(violating) and len(first) == 64
    (violating / datagen.MARKER).write_text("markers are not data")
    assert ingest.dataset_version_hash(violating) == first
    path = violating / "part-0.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert ingest.dataset_version_hash(violating) != first


def test_version_hash_changes_when_a_file_is_renamed(violating):
    first = ingest.dataset_version_hash(violating)
    (violating / "part-0.parquet").rename(violating / "part-9.parquet")
    assert ingest.dataset_version_hash(violating) != first


def test_empty_or_missing_directory_is_invalid(tmp_path):
    with pytest.raises(InvalidInput):
        ingest.dataset_version_hash(tmp_path)
    with pytest.raises(InvalidInput):
        ingest.row_count(tmp_path / "missing")


def test_verify_reports_violating_units_and_null_units(violating):
    report = ingest.verify_unit_bound(violating, "pid", 2)
    assert not report.ok
    assert (report.rows, report.units, report.violating_units) == (10, 3, 2)
    assert report.rows_over_bound == (4 - 2) + (3 - 2)
    assert report.max_rows_per_unit == 4 and report.null_unit_rows == 2


def test_verify_is_the_same_over_many_hash_partitions(violating, monkeypatch):
    single = ingest.verify_unit_bound(violating, "pid", 2)
    monkeypatch.setattr(ingest, "_VERIFY_ROWS_PER_PASS", 3)
    assert ingest.verify_unit_bound(violating, "pid", 2) == single


def test_verify_rejects_unknown_unit_and_bad_k(violating):
    with pytest.raises(InvalidInput):
        ingest.verify_unit_bound(violating, "nope", 2)
    with pytest.raises(InvalidInput):
        ingest.verify_unit_bound(violating, "pid", 0)


def test_generated_demo_data_passes_its_manifest_bound(tmp_path):
    manifest = datagen.load_manifest(REPO / "datasets" / "health_visits.yaml")
    info = datagen.generate(manifest, 20_000, tmp_path / "hv", chunk_rows=6_000)
    report = ingest.verify_unit_bound(info.path, manifest.privacy_unit, manifest.max_rows_per_unit)
    assert report.ok and report.max_rows_per_unit == manifest.max_rows_per_unit and report.rows == 20_000
    assert not ingest.verify_unit_bound(info.path, manifest.privacy_unit, 1).ok


@pytest.mark.parametrize("rows_per_pass", [1_000_000, 3])
def test_enforce_keeps_first_k_rows_per_unit_in_storage_order(violating, tmp_path, monkeypatch, rows_per_pass):
    monkeypatch.setattr(ingest, "_ENFORCE_ROWS_PER_PASS", rows_per_pass)
    out = tmp_path / "bounded"
    report = ingest.enforce_unit_bound(violating, "pid", 2, out)
    assert (report.rows_in, report.rows_out, report.rows_dropped) == (10, 5, 5)
    df = pl.read_parquet([out / f for f in report.files]).sort("seq")
    # Storage order: part-0 (seq 0-5) before sub/part-1 (seq 6-9).
    assert df.select("pid", "seq").rows() == [("a", 0), ("b", 1), ("a", 2), ("c", 4), ("b", 5)]
    assert df["v"].to_list() == [s * 1.5 for s in df["seq"]]
    assert datagen.is_ready(out)
    assert ingest.verify_unit_bound(out, "pid", 2).ok
    for f in report.files:
        assert pq.read_schema(out / f).remove_metadata() == SCHEMA


def test_enforce_replaces_an_old_output_and_leaves_no_temp_dirs(violating, tmp_path):
    out = tmp_path / "out" / "bounded"
    ingest.enforce_unit_bound(violating, "pid", 1, out)
    report = ingest.enforce_unit_bound(violating, "pid", 3, out)
    assert ingest.row_count(out) == report.rows_out == 3 + 3 + 1
    assert [p.name for p in out.parent.iterdir()] == ["bounded"]


def test_enforce_refuses_to_write_inside_its_input(violating):
    with pytest.raises(InvalidInput):
        ingest.enforce_unit_bound(violating, "pid", 2, violating / "out")
    with pytest.raises(InvalidInput):
        ingest.enforce_unit_bound(violating, "pid", 2, violating)


# ------------------------------------------------------------------ registration: one file rule

MANIFEST = {"name": "tiny", "classification": "L2", "privacy_unit": "pid", "max_rows_per_unit": 4,
            "columns": [{"name": "pid", "type": "string", "kind": "identifier"},
                        {"name": "seq", "type": "int64", "kind": "numeric", "bounds": [0, 1000]},
                        {"name": "v", "type": "float64", "kind": "numeric", "bounds": [0, 1000]},
                        {"name": "month", "type": "int64", "kind": "categorical", "categories": [1, 2]}]}


def manifest():
    from sandbox.core.manifest import parse_manifest
    return parse_manifest(MANIFEST)


def test_a_late_underscore_file_is_refused_at_registration_not_skipped(tmp_path):
    # One person's 500 rows in _late.parquet: registration once hashed and verified the other
    # files only while every job read this one too.
    d = tmp_path / "d"
    d.mkdir()
    write(d / "part-0.parquet", ["a", "b", "c"], 0)
    write(d / "_late.parquet", ["z"] * 500, 3)
    with pytest.raises(InvalidInput, match="_late.parquet"):
        ingest.register_files(d, manifest())
    assert (d / "part-0.parquet").stat().st_mode & 0o222  # refused before anything changed
    # Every reader sees the file the same way: the bound check counts it too.
    report = ingest.verify_unit_bound(d, "pid", 4)
    assert (report.rows, report.violating_units, report.max_rows_per_unit) == (503, 1, 500)


@pytest.mark.parametrize("name", [".tmp/part.parquet", "_temporary/0/part.parquet"])
def test_parquet_files_under_hidden_or_underscore_folders_are_refused(tmp_path, name):
    d = tmp_path / "d"
    (d / name).parent.mkdir(parents=True)
    write(d / "part-0.parquet", ["a"], 0)
    write(d / name, ["b"], 1)
    with pytest.raises(InvalidInput, match=name.split("/")[0]):
        ingest.register_files(d, manifest())


def test_registration_leaves_the_version_read_only_and_counts_null_units(violating):
    facts = ingest.register_files(violating, manifest())
    assert facts.content_hash == ingest.dataset_version_hash(violating) and not facts.bound_verified
    assert (facts.rows, facts.null_unit_rows) == (10, 2)
    for path in [violating, violating / "sub", *violating.rglob("*")]:
        assert path.stat().st_mode & 0o777 == (0o555 if path.is_dir() else 0o444), path


def test_verify_snapshot_rehashes_with_the_same_rule(violating):
    facts = ingest.register_files(violating, manifest())
    assert ingest.verify_snapshot(violating, facts.content_hash)
    assert not ingest.verify_snapshot(violating, "0" * 64)
    (violating / "sub").chmod(0o755)
    write(violating / "sub" / "_late.parquet", ["z"] * 50, 100)  # a file added after registration
    assert not ingest.verify_snapshot(violating, facts.content_hash)
    assert not ingest.verify_snapshot(violating / "missing", facts.content_hash)


def hive(root: Path) -> Path:
    for month, pids in ((1, ["a", "b", "a"]), (2, ["a", "c"])):
        (root / f"month={month}").mkdir(parents=True)
        write(root / f"month={month}" / "part-0.parquet", pids, 10 * month)
    return root


def test_a_hive_partitioned_version_registers_with_its_partition_column(tmp_path):
    d = hive(tmp_path / "d")
    facts = ingest.register_files(d, manifest())
    assert facts.bound_verified and facts.rows == 5
    # the partition value is a column of the unit check's frame, as jobs read it
    report = ingest.verify_unit_bound(d, "pid", 2, ingest.column_types(manifest()))
    assert (report.units, report.violating_units) == (3, 1)


def test_enforcing_a_hive_partitioned_version_keeps_its_partition_column(tmp_path):
    d = hive(tmp_path / "d")
    report = ingest.enforce_unit_bound(d, "pid", 1, tmp_path / "out", ingest.column_types(manifest()))
    df = pl.read_parquet([tmp_path / "out" / f for f in report.files]).sort("seq")
    assert df.select("pid", "month").rows() == [("a", 1), ("b", 1), ("c", 2)]


def test_inconsistent_hive_partitions_are_refused_before_anything_changes(tmp_path):
    d = hive(tmp_path / "d")
    write(d / "part-9.parquet", ["q"], 99)  # no month folder: no value for the declared column
    with pytest.raises(InvalidInput, match="partition 'month' is missing for part-9.parquet"):
        ingest.register_files(d, manifest())
    assert (d / "part-9.parquet").stat().st_mode & 0o222

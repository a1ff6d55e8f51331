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

"""Demo-data generator and analyst mock data (sandbox.datagen)."""
from __future__ import annotations

import builtins
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sandbox import datagen
from sandbox.core.manifest import parse_manifest

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "datasets"
ROWS = 20_003  # odd on purpose: the last unit must be cut to fit


@pytest.fixture(scope="module")
def health():
    return datagen.load_manifest(MANIFESTS / "health_visits.yaml")


@pytest.fixture(scope="module")
def enterprise():
    return datagen.load_manifest(MANIFESTS / "enterprise_registry.yaml")


@pytest.fixture(scope="module")
def health_dir(health, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "health_visits"
    datagen.generate(health, ROWS, out, seed=3, chunk_rows=7_000)
    return out


@pytest.fixture(scope="module")
def enterprise_dir(enterprise, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "enterprise_registry"
    datagen.generate(enterprise, ROWS, out, seed=3, chunk_rows=7_000)
    return out


def read_parts(out: Path) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(p).with_columns(part=pl.lit(p.name))
                      for p in sorted(out.glob("part-*.parquet"))])


def assert_within_manifest(manifest, table: pa.Table) -> None:
    df = pl.from_arrow(table)
    for col in manifest.columns:
        s = df.get_column(col.name)
        assert s.null_count() == 0, col.name
        if col.categories:
            assert set(s.unique().to_list()) <= set(col.categories), col.name
        if col.bounds is not None and col.type in ("int64", "float64"):
            assert s.min() >= col.bounds[0] and s.max() <= col.bounds[1], col.name
        if col.bounds is not None and col.type == "date":
            lo, hi = (dt.date.fromisoformat(b) for b in col.bounds)
            assert s.min() >= lo and s.max() <= hi, col.name
    counts = df.group_by(manifest.privacy_unit).len().get_column("len")
    assert counts.min() >= 1 and counts.max() <= manifest.max_rows_per_unit


@pytest.mark.parametrize("name", ["health_visits", "enterprise_registry"])
def test_parquet_schema_matches_manifest_types_exactly(name, request):
    out = request.getfixturevalue(name.split("_")[0] + "_dir")
    manifest = request.getfixturevalue(name.split("_")[0])
    expected = pa.schema([(c.name, {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(),
                                    "date": pa.date32()}[c.type]) for c in manifest.columns])
    for part in out.glob("part-*.parquet"):
        assert pq.read_schema(part).remove_metadata() == expected
    assert datagen.arrow_schema(manifest) == expected


@pytest.mark.parametrize("name", ["health_visits", "enterprise_registry"])
def test_row_count_is_exact_and_parts_follow_chunk_size(name, request):
    out = request.getfixturevalue(name.split("_")[0] + "_dir")
    rows = [pq.ParquetFile(p).metadata.num_rows for p in sorted(out.glob("part-*.parquet"))]
    assert rows == [7_000, 7_000, 6_003]
    assert datagen.read_marker(out)["rows"] == ROWS


@pytest.mark.parametrize("name", ["health_visits", "enterprise_registry"])
def test_values_respect_public_categories_bounds_and_unit_bound(name, request):
    out = request.getfixturevalue(name.split("_")[0] + "_dir")
    manifest = request.getfixturevalue(name.split("_")[0])
    assert_within_manifest(manifest, pq.read_table(sorted(out.glob("part-*.parquet"))))


def test_each_person_has_one_to_k_visits_all_in_one_part_file(health, health_dir):
    per_person = read_parts(health_dir).group_by("person_id").agg(pl.len(), pl.col("part").n_unique())
    assert per_person["len"].min() == 1
    assert per_person["len"].max() == health.max_rows_per_unit
    assert per_person["part"].max() == 1
    # Realistic: most people have a single visit, fewer have many.
    share = per_person["len"].value_counts().sort("len")["count"].to_list()
    assert share == sorted(share, reverse=True)


def test_a_persons_visits_are_dated_in_order(health_dir):
    df = read_parts(health_dir)
    ordered = df.group_by("person_id", maintain_order=True).agg(pl.col("visit_date").is_sorted())
    assert ordered["visit_date"].all()


def test_health_visits_look_like_gansu(health_dir):
    df = read_parts(health_dir)
    districts = df["district"].value_counts(sort=True)["district"].to_list()
    assert districts[0] == "兰州市" and districts[-1] == "嘉峪关市"
    top3 = df["diagnosis_group"].value_counts(sort=True)["diagnosis_group"].to_list()[:3]
    assert "J00-J99" in top3 and "I00-I99" in top3
    assert df.filter(pl.col("diagnosis_group") == "O00-O99")["sex"].unique().to_list() == ["F"]
    assert 0 < (df["cost"] == 10_000).mean() < 0.1  # some costs clamped at the public bound
    assert df.filter(pl.col("age") >= 65)["cost"].median() > df.filter(pl.col("age") < 45)["cost"].median()


def test_enterprise_ids_unique_and_mix_is_realistic(enterprise_dir):
    df = read_parts(enterprise_dir)
    assert df["enterprise_id"].n_unique() == ROWS
    assert df["entity_type"].value_counts(sort=True)["entity_type"][0] == "个体工商户"
    assert df["industry"].value_counts(sort=True)["industry"][0] == "F"
    assert df["district"].value_counts(sort=True)["district"][0] == "兰州市"
    by_type = df.group_by("entity_type").agg(pl.col("registered_capital").median())
    cap = dict(zip(by_type["entity_type"], by_type["registered_capital"]))
    assert cap["股份有限公司"] > cap["有限责任公司"] > cap["个体工商户"]
    closed = df.filter(pl.col("status").is_in(["注销", "吊销"]))
    assert closed["employees"].max() == 0


def test_same_seed_gives_identical_data_other_seed_differs(health, health_dir, tmp_path):
    again = datagen.generate(health, ROWS, tmp_path / "a", seed=3, chunk_rows=7_000)
    other = datagen.generate(health, ROWS, tmp_path / "b", seed=4, chunk_rows=7_000)
    assert read_parts(again.path).equals(read_parts(health_dir))
    assert not read_parts(other.path).equals(read_parts(health_dir))


def test_no_marker_means_not_ready(tmp_path, health):
    out = tmp_path / "ds"
    assert not datagen.is_ready(out)
    out.mkdir()
    pq.write_table(datagen.generate_mock(health, 10), out / "part-00000.parquet")
    assert not datagen.is_ready(out)
    info = datagen.generate(health, 100, out, force=True)
    assert datagen.is_ready(out) and info.files == ("part-00000.parquet",)


def test_failure_midway_leaves_no_dataset_and_no_temp_dir(tmp_path, health, monkeypatch):
    real_write = pq.write_table
    calls = []

    def failing_write(table, where, **kw):
        calls.append(where)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_write(table, where, **kw)

    monkeypatch.setattr(pq, "write_table", failing_write)
    with pytest.raises(OSError):
        datagen.generate(health, 3_000, tmp_path / "ds", chunk_rows=1_000)
    assert list(tmp_path.iterdir()) == []


def test_generate_is_idempotent_unless_forced_or_parameters_change(tmp_path, health):
    out = tmp_path / "ds"
    first = datagen.generate(health, 500, out, seed=1)
    mtime = (out / "part-00000.parquet").stat().st_mtime_ns
    again = datagen.generate(health, 500, out, seed=1)
    assert again.skipped and not first.skipped and again.files == first.files
    assert (out / "part-00000.parquet").stat().st_mtime_ns == mtime
    assert not datagen.generate(health, 500, out, seed=1, force=True).skipped
    assert not datagen.generate(health, 600, out, seed=1).skipped
    assert not datagen.generate(health, 600, out, seed=2).skipped
    assert pq.read_table(out).num_rows == 600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_zero_rows_gives_an_empty_dataset_with_the_schema(tmp_path, health):
    info = datagen.generate(health, 0, tmp_path / "ds")
    table = pq.read_table(tmp_path / "ds" / info.files[0])
    assert table.num_rows == 0 and table.schema.remove_metadata() == datagen.arrow_schema(health)


CUSTOM = {
    "name": "custom_survey", "classification": "L2", "privacy_unit": "household",
    "max_rows_per_unit": 3,
    "columns": [
        {"name": "household", "type": "string", "kind": "identifier"},
        {"name": "row_id", "type": "int64", "kind": "identifier"},
        {"name": "county", "type": "string", "kind": "categorical", "categories": ["a", "b", "c"]},
        {"name": "size", "type": "int64", "kind": "numeric", "bounds": [1, 12]},
        {"name": "income", "type": "float64", "kind": "numeric", "bounds": [0, 5e5]},
        {"name": "owns_land", "type": "bool", "kind": "categorical", "categories": [True, False]},
        {"name": "surveyed", "type": "date", "kind": "date", "bounds": ["2024-01-01", "2024-03-31"]},
        {"name": "note", "type": "string", "kind": "text"},
    ],
}


def test_generic_fallback_uses_only_the_manifest(tmp_path):
    manifest = parse_manifest(CUSTOM)
    info = datagen.generate(manifest, 2_500, tmp_path / "custom", chunk_rows=1_000)
    table = pq.read_table(info.path)
    assert table.schema.remove_metadata() == datagen.arrow_schema(manifest)
    assert table.num_rows == 2_500
    assert_within_manifest(manifest, table)
    assert pl.from_arrow(table)["row_id"].n_unique() == 2_500


def test_generate_all_uses_default_rows_unless_overridden(tmp_path):
    infos = datagen.generate_all(MANIFESTS, tmp_path, rows={"health_visits": 1_234, "enterprise_registry": 55},
                                 seed=0)
    assert set(infos) == {"health_visits", "enterprise_registry"}
    assert pq.read_table(tmp_path / "health_visits").num_rows == 1_234
    assert pq.read_table(tmp_path / "enterprise_registry").num_rows == 55
    assert all(datagen.is_ready(tmp_path / name) for name in infos)


# ----------------------------------------------------------------------------- mock data

def test_mock_data_is_within_manifest_and_units_have_one_to_k_rows(health, enterprise):
    for manifest in (health, enterprise, parse_manifest(CUSTOM)):
        table = datagen.generate_mock(manifest, 1_000, seed=1)
        assert table.num_rows == 1_000
        assert table.schema == datagen.arrow_schema(manifest)
        assert_within_manifest(manifest, table)


def test_mock_is_deterministic_per_seed(health):
    assert datagen.generate_mock(health, 300, seed=5).equals(datagen.generate_mock(health, 300, seed=5))
    assert not datagen.generate_mock(health, 300, seed=5).equals(datagen.generate_mock(health, 300, seed=6))


def test_mock_does_not_depend_on_real_data(health, health_dir, tmp_path, monkeypatch):
    before = datagen.generate_mock(health, 500, seed=2)
    # Real data now exists where settings would point, and in the working directory.
    monkeypatch.setenv("SANDBOX_DATASETS_DIR", str(health_dir.parent))
    monkeypatch.chdir(health_dir)
    assert datagen.generate_mock(health, 500, seed=2).equals(before)
    # And generating mock data reads no file at all.
    def no_io(*args, **kwargs):
        raise AssertionError("mock generation tried to read something")
    for target, attr in [(builtins, "open"), (os, "open"), (os, "scandir"), (os, "listdir"),
                         (pq, "read_table"), (pq, "ParquetFile"), (pq, "ParquetDataset"),
                         (pl, "read_parquet"), (pl, "scan_parquet"), (Path, "open"), (Path, "read_bytes")]:
        monkeypatch.setattr(target, attr, no_io)
    assert datagen.generate_mock(health, 500, seed=2).equals(before)


def test_mock_differs_from_the_demo_dataset_with_the_same_seed(health, tmp_path):
    info = datagen.generate(health, 200, tmp_path / "real", seed=0)
    real = pq.read_table(info.path / info.files[0]).replace_schema_metadata()
    assert not real.equals(datagen.generate_mock(health, 200, seed=0))


def test_mock_parquet_and_csv(health, tmp_path):
    path = datagen.write_mock_parquet(health, tmp_path / "mock.parquet", rows=50, seed=1)
    assert pq.read_table(path).replace_schema_metadata().equals(datagen.generate_mock(health, 50, seed=1))
    csv = datagen.mock_csv_bytes(health, rows=50, seed=1).decode("utf-8").splitlines()
    assert len(csv) == 51
    assert csv[0].replace('"', "").split(",") == health.column_names


# ----------------------------------------------------------------------------- scale

@pytest.mark.slow
def test_two_million_rows_stream_with_bounded_memory(tmp_path):
    # A child process, so its peak is not the test runner's; VmHWM, not ru_maxrss, which Linux
    # carries across fork and exec (the child would report at least the runner's size).
    code = (
        "import sys; from pathlib import Path; from sandbox import datagen; from bench.peak import peak_rss_kib\n"
        f"m = datagen.load_manifest({str(MANIFESTS / 'health_visits.yaml')!r})\n"
        f"datagen.generate(m, 2_000_000, Path({str(tmp_path / 'big')!r}), chunk_rows=500_000)\n"
        "print(peak_rss_kib())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    peak_mib = int(out.stdout.strip()) / 1024
    assert peak_mib < 600, peak_mib
    assert pq.read_metadata(tmp_path / "big" / "part-00003.parquet").num_rows == 500_000

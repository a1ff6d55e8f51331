"""Which files make a dataset version (sandbox.core.datafiles): one rule for registration,
the runner, the block splitter and mock runs; hive partition folders."""
from __future__ import annotations

import datetime
import os

import pytest

from sandbox.core import datafiles
from sandbox.core.errors import InvalidInput


def touch(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_every_regular_parquet_file_at_any_depth_sorted_by_relative_path(tmp_path):
    touch(tmp_path, "b.parquet", "a/z.parquet", "a.parquet", "_late.parquet", ".hidden/x.parquet", "notes.txt",
          "_SUCCESS")
    (tmp_path / "dir.parquet").mkdir()
    touch(tmp_path, "dir.parquet/part.parquet")
    os.symlink(tmp_path / "b.parquet", tmp_path / "link.parquet")
    names = [f.name for f in datafiles.data_files(tmp_path)]
    # Nothing is skipped by its name: registration refuses such names instead.
    assert names == [".hidden/x.parquet", "_late.parquet", "a.parquet", "a/z.parquet", "b.parquet",
                     "dir.parquet/part.parquet"]
    assert datafiles.parquet_files(tmp_path) == [tmp_path / n for n in names]


def test_a_missing_folder_is_an_error_and_an_empty_one_has_no_files(tmp_path):
    assert datafiles.data_files(tmp_path) == []
    with pytest.raises(FileNotFoundError):
        datafiles.data_files(tmp_path / "missing")


def test_registration_refuses_underscore_and_hidden_names_and_links(tmp_path):
    touch(tmp_path, "part-0.parquet", "_late.parquet", "_tmp/part.parquet", ".x/part.parquet", "_SUCCESS",
          ".notes")
    os.symlink(tmp_path / "part-0.parquet", tmp_path / "alias.parquet")
    os.symlink(tmp_path / "_tmp", tmp_path / "more")
    assert datafiles.refused_entries(tmp_path) == [".x/part.parquet", "_late.parquet", "_tmp/part.parquet",
                                                   "alias.parquet", "more"]
    with pytest.raises(InvalidInput, match="_late.parquet"):
        datafiles.check_registrable(tmp_path)


def test_a_clean_folder_is_registrable(tmp_path):
    touch(tmp_path, "part-0.parquet", "month=1/part.parquet", "_SUCCESS")
    datafiles.check_registrable(tmp_path)


def test_hive_folders_give_typed_values_of_declared_columns_only(tmp_path):
    touch(tmp_path, "year=2024/month=1/day=2024-01-31/ok=true/region=a%2Fb/p.parquet",
          "year=2024/month=2/day=__HIVE_DEFAULT_PARTITION__/ok=false/region=north/p.parquet")
    files = datafiles.data_files(tmp_path)
    types = {"month": "int64", "day": "date", "ok": "bool", "region": "string", "pid": "int64"}
    parts = datafiles.partition_columns(files, types, {"pid"})
    assert parts == {"month": "int64", "day": "date", "ok": "bool", "region": "string"}  # year: not declared
    assert datafiles.partition_values(files[0], parts) == {"month": 1, "day": datetime.date(2024, 1, 31),
                                                           "ok": True, "region": "a/b"}
    assert datafiles.partition_values(files[1], parts) == {"month": 2, "day": None, "ok": False, "region": "north"}


@pytest.mark.parametrize("names,file_columns,problem", [
    (["month=1/a.parquet", "b.parquet"], set(), "missing for b.parquet"),
    (["month=x/a.parquet"], set(), "is not of type int64"),
    (["month=1/a.parquet"], {"month"}, "both a partition folder and a column"),
    (["month=1/month=2/a.parquet"], set(), "repeated"),
])
def test_inconsistent_partitions_are_refused(tmp_path, names, file_columns, problem):
    touch(tmp_path, *names)
    with pytest.raises(InvalidInput, match=problem):
        datafiles.partition_columns(datafiles.data_files(tmp_path), {"month": "int64"}, file_columns)

"""Which files make a dataset version: the one rule that registration (hash, bound check,
row count), the runner, the program-mode block splitter and mock runs all use.

The rule: every regular file named ``*.parquet`` under the version's folder, at any depth,
in the order of its POSIX path relative to that folder. Nothing is skipped: names that
readers often skip (``_*``, ``.*``: pyarrow's defaults) are refused at registration instead
(`refused_entries`), so no file is hashed and checked by one reader and read by another.

Hive partition folders (``key=value/``) are supported: a folder key that names a manifest
column gives that column's value for every row of the files below it (typed as the manifest
says, ``__HIVE_DEFAULT_PARTITION__`` or an empty value meaning null); keys the manifest does
not declare are ignored. Standard library only: this module ships in the runner image.
"""
from __future__ import annotations

import datetime
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from sandbox.core.errors import InvalidInput

SUFFIX = ".parquet"
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
# How many offending names an error message lists.
_SHOWN = 10


@dataclass(frozen=True)
class DataFile:
    path: Path                                        # data_dir / name
    name: str                                         # POSIX path relative to data_dir
    partition: tuple[tuple[str, str | None], ...]    # key=value folders, outermost first (None: null)


def _partition_of(folders: tuple[str, ...]) -> tuple[tuple[str, str | None], ...]:
    out = []
    for folder in folders:
        key, sep, value = folder.partition("=")
        if sep and key:
            value = unquote(value)  # Hive and pyarrow percent-encode special characters
            out.append((key, None if value in ("", HIVE_NULL) else value))
    return tuple(out)


def _walk(root: Path):
    """(relative POSIX name, lstat mode) of every entry under root; symbolic links to
    folders are listed, not followed."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        rel = Path(folder).relative_to(root)
        for name in dirs + files:
            yield (rel / name).as_posix(), os.lstat(os.path.join(folder, name)).st_mode


def data_files(data_dir: str | Path) -> list[DataFile]:
    """Every regular ``*.parquet`` file under data_dir (recursively), sorted by relative
    POSIX path. An empty list when there is none; FileNotFoundError when data_dir is not
    a folder."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {root}")
    found = []
    for name, mode in _walk(root):
        if name.endswith(SUFFIX) and stat.S_ISREG(mode):
            parts = tuple(name.split("/"))
            found.append(DataFile(path=root.joinpath(*parts), name=name, partition=_partition_of(parts[:-1])))
    return sorted(found, key=lambda f: f.name)


def parquet_files(data_dir: str | Path) -> list[Path]:
    return [f.path for f in data_files(data_dir)]


def refused_entries(data_dir: str | Path) -> list[str]:
    """Names that make a folder unfit to register, sorted: ``*.parquet`` files under a
    name starting with ``_`` or ``.`` (temporary files and markers to most readers: a
    dataset holding them is ambiguous), symbolic links (the box would not see their
    targets) and ``*.parquet`` entries that are neither files nor folders."""
    out = []
    for name, mode in _walk(Path(data_dir)):
        if stat.S_ISLNK(mode):
            out.append(name)
        elif name.endswith(SUFFIX) and stat.S_ISREG(mode):
            if any(part.startswith(("_", ".")) for part in name.split("/")):
                out.append(name)
        elif name.endswith(SUFFIX) and not stat.S_ISDIR(mode):
            out.append(name)
    return sorted(out)


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def check_registrable(data_dir: str | Path) -> None:
    refused = refused_entries(data_dir)
    if refused:
        raise InvalidInput(f"the dataset folder holds entries no job would read the same way: {_listed(refused)}; "
                           "rename Parquet files and folders that start with '_' or '.', and replace symbolic "
                           "links by the files themselves", "data_dir")


# ------------------------------------------------------------------ hive partitions

def _typed(value: str | None, typ: str):
    if value is None:
        return None
    if typ == "string":
        return value
    if typ == "int64":
        return int(value)
    if typ == "float64":
        return float(value)
    if typ == "bool":
        low = value.lower()
        if low not in ("true", "false"):
            raise ValueError(value)
        return low == "true"
    if typ == "date":
        return datetime.date.fromisoformat(value)
    raise ValueError(f"unknown column type {typ!r}")


def partition_columns(files: list[DataFile], column_types: Mapping[str, str],
                      file_columns: frozenset[str] | set[str] = frozenset()) -> dict[str, str]:
    """The manifest columns (name -> type) that ``key=value`` folders give, in folder order.
    Refused: a declared key missing from some file's folders, repeated in one path, also a
    column inside the files, or a value that is not of the column's type."""
    keys: list[str] = []
    for f in files:
        for key, _ in f.partition:
            if key in column_types and key not in keys:
                keys.append(key)
    problems = []
    for key in keys:
        if key in file_columns:
            problems.append(f"'{key}' is both a partition folder and a column in the files")
        missing = [f.name for f in files if key not in dict(f.partition)]
        if missing:
            problems.append(f"partition '{key}' is missing for {_listed(missing)}")
    for f in files:
        seen = [k for k, _ in f.partition if k in keys]
        if len(seen) != len(set(seen)):
            problems.append(f"{f.name}: a partition key is repeated")
        for key, value in f.partition:
            if key in keys:
                try:
                    _typed(value, column_types[key])
                except ValueError:
                    problems.append(f"{f.name}: partition value {key}={value!r} is not of type {column_types[key]}")
    if problems:
        raise InvalidInput("hive partitions: " + "; ".join(problems[:_SHOWN]), "data_dir")
    return {key: column_types[key] for key in keys}


def partition_values(file: DataFile, columns: Mapping[str, str]) -> dict:
    """The typed value of each partition column (from partition_columns) for one file's rows."""
    given = dict(file.partition)
    return {key: _typed(given[key], typ) for key, typ in columns.items()}

"""Reviewed mode inside the box: the operator's program gets the dataset as a pandas
DataFrame and the output folder, and writes its declared files there.

Nothing written here is trusted: the host collects /out with the output collector
(no links, devices, escapes; declared names only) and runs the disclosure checks. The
tables and models a job declares are computed in a box of their own (sandbox.runner.tables).
"""
from __future__ import annotations

import importlib.util
import sys


def load_frame(job: dict, manifest=None, columns: list[str] | None = None):
    """The dataset version as one pandas DataFrame: the files registration hashed (one rule,
    sandbox.core.datafiles), with the hive partition columns the manifest declares; only
    `columns` when given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sandbox.core import datafiles
    from sandbox.runner.frames import dataset_parts, with_partition_columns

    data_dir = job.get("data_dir", "/data")
    files, parts = datafiles.data_files(data_dir), {}
    if files and manifest is not None:
        files, parts = dataset_parts(data_dir, manifest)
    read = None if columns is None else [c for c in columns if c not in parts]
    tables = [with_partition_columns(pq.read_table(f.path, columns=read), datafiles.partition_values(f, parts), parts)
              for f in files]
    df = (pa.concat_tables(tables) if tables else pa.table({})).to_pandas()
    del tables
    return df


def run_reviewed_job(job: dict) -> None:
    from sandbox.core.manifest import parse_manifest

    df = load_frame(job, parse_manifest(job["manifest"]) if job.get("manifest") else None)
    spec = importlib.util.spec_from_file_location("analyst_program", job.get("program", "/job/program.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["analyst_program"] = module
    spec.loader.exec_module(module)
    getattr(module, job.get("entrypoint", "analyse"))(df, job.get("out_dir", "/out"))

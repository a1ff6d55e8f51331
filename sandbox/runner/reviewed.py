"""Reviewed mode inside the box: the operator's program gets the dataset as a pandas
DataFrame and the output folder, and writes its declared files there.

Nothing written here is trusted: the host collects /out with the output collector
(no links, devices, escapes; declared names only) and runs the disclosure checks.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import sys


def run_reviewed_job(job: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    files = sorted(glob.glob(os.path.join(job.get("data_dir", "/data"), "*.parquet")))
    tables = [pq.read_table(f) for f in files]
    df = (pa.concat_tables(tables) if tables else pa.table({})).to_pandas()
    del tables
    spec = importlib.util.spec_from_file_location("analyst_program", job.get("program", "/job/program.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["analyst_program"] = module
    spec.loader.exec_module(module)
    getattr(module, job.get("entrypoint", "analyse"))(df, job.get("out_dir", "/out"))

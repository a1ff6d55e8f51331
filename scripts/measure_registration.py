"""Peak memory of registering a large dataset (issue 14: 50M rows under 2 GiB).

    .venv/bin/python scripts/measure_registration.py /tmp/regmem 50000000 [--enforce]

Writes ROWS rows (person_id with 2 rows per unit, region, cost, age) chunked with pyarrow
(1M-row row groups, 5 per file) under DIR/incoming/big, registers them through the agent's
registration path (copy into the store, report, enforce if asked, hash) and prints the peak
RSS of this process. Generation is measured in a child process so it does not count.
"""
from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

CHUNK, PER_FILE = 1_000_000, 5


def generate(out: Path, total: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    regions = np.array(["north", "south", "east", "west"])
    writer = None
    for i in range(max(1, total // CHUNK)):
        n = min(CHUNK, total)
        ids = (np.arange(i * CHUNK, i * CHUNK + n) // 2).astype(np.int64)
        t = pa.table({"person_id": ids, "region": pa.array(regions[rng.integers(0, 4, n)]),
                      "cost": rng.gamma(2.0, 50.0, n), "age": rng.integers(0, 100, n).astype(np.int64)})
        if i % PER_FILE == 0:
            if writer:
                writer.close()
            writer = pq.ParquetWriter(out / f"part-{i // PER_FILE:03d}.parquet", t.schema, compression="zstd")
        writer.write_table(t, row_group_size=CHUNK)
    writer.close()


def measure(root: Path, enforce: bool) -> None:
    from sandbox.agent.registration import register_source
    from sandbox.config import load
    from sandbox.core.manifest import parse_manifest
    shutil.rmtree(root / "home", ignore_errors=True)
    settings = load({"SANDBOX_HOME": str(root / "home"), "SANDBOX_INGEST_ROOTS": str(root / "incoming")})
    manifest = parse_manifest({
        "name": "big", "classification": "L2", "privacy_unit": "person_id", "max_rows_per_unit": 2,
        "columns": [{"name": "person_id", "type": "int64", "kind": "identifier", "access": "hidden"},
                    {"name": "region", "type": "string", "kind": "categorical",
                     "categories": ["north", "south", "east", "west"]},
                    # With --enforce, a bound the data exceeds, so the version is rewritten.
                    {"name": "cost", "type": "float64", "kind": "numeric", "bounds": [0, 200 if enforce else 10000]},
                    {"name": "age", "type": "int64", "kind": "numeric", "bounds": [0, 100]}]})
    start = time.time()
    staged = register_source(str(root / "incoming" / "big"), manifest, settings, enforce=enforce)
    print(f"rows {staged.report['rows']} units {staged.report['units']} enforced {staged.enforced} "
          f"seconds {time.time() - start:.0f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
    shutil.rmtree(root / "home", ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1] == "--generate":
        generate(Path(sys.argv[2]), int(sys.argv[3]))
        sys.exit(0)
    root, rows = Path(sys.argv[1]), int(sys.argv[2])
    if not (root / "incoming" / "big").exists():
        subprocess.run([sys.executable, __file__, "--generate", str(root / "incoming" / "big"), str(rows)], check=True)
    measure(root, "--enforce" in sys.argv)

"""The data a box running operator code gets when the owner's classification keeps columns
from that mode (sandbox.core.specs.access): a per-attempt copy of the version's files
without those columns, so the code cannot read them even by opening /data itself.

Hive partition folders (``key=value/``) whose key is such a column are left out of the
copy's paths too: a folder name would otherwise tell the column's value. Files are
rewritten one row group at a time (bounded memory), world-readable for the box's user.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote

from sandbox.core import datafiles
from sandbox.core.manifest import Manifest


def data_view(data_dir: Path, manifest: Manifest, mode: str, out_dir: Path) -> Path:
    """data_dir itself when no column is kept from `mode`; else a copy in out_dir without them."""
    import pyarrow.parquet as pq

    drop = {c.name for c in manifest.restricted(mode)}
    if not drop:
        return Path(data_dir)
    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    out_dir.chmod(0o755)
    try:
        for i, f in enumerate(datafiles.data_files(data_dir)):
            folders = [f"{k}={datafiles.HIVE_NULL if v is None else quote(v, safe='')}"
                       for k, v in f.partition if k not in drop]
            # A running index keeps files apart whose dropped folders were all that told them apart.
            target = out_dir.joinpath(*folders, f"part-{i:05d}.parquet")
            for d in reversed(target.relative_to(out_dir).parents[:-1]):
                (out_dir / d).mkdir(exist_ok=True)
                (out_dir / d).chmod(0o755)
            source = pq.ParquetFile(f.path)
            keep = [n for n in source.schema_arrow.names if n not in drop]
            schema = source.schema_arrow
            for n in drop & set(schema.names):
                schema = schema.remove(schema.get_field_index(n))
            with pq.ParquetWriter(target, schema) as writer:
                for g in range(source.num_row_groups):
                    writer.write_table(source.read_row_group(g, columns=keep))
            target.chmod(0o644)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return out_dir

"""The demo "real" dataset that stands in for an owner's data inside the domain: realistic,
streamed to Parquet chunk by chunk so that tens of millions of rows never sit in memory,
seeded and deterministic.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from sandbox.core.manifest import Manifest
from sandbox.datagen.columns import arrow_schema, generic_chunk, load_manifest, random_stream, to_table
from sandbox.datagen.layout import COMPRESSION, MARKER, dir_bytes, publish_dir, read_marker
from sandbox.datagen.realistic import GENERATORS

# Bump when any generator's output changes for the same (manifest, rows, seed),
# so markers written by an older generator are not taken as up to date.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class GeneratedInfo:
    name: str
    path: Path
    rows: int
    seed: int
    files: tuple[str, ...]
    bytes: int
    seconds: float
    skipped: bool = False


def _manifest_fingerprint(manifest: Manifest) -> str:
    blob = json.dumps(manifest.to_dict(), sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


def generate(manifest: Manifest, rows: int, out_dir: str | Path, *, seed: int = 0,
             chunk_rows: int = 1_000_000, force: bool = False) -> GeneratedInfo:
    """Write ``rows`` synthetic rows for ``manifest`` as Parquet parts into ``out_dir``.

    Streams one chunk (= one part file, one row group) at a time, so memory does not
    grow with ``rows``. Deterministic for (manifest, rows, seed, chunk_rows). A unit's
    rows always sit in one chunk. Parts are written to a temporary sibling directory,
    the ``_SUCCESS`` marker last, and the directory is then renamed into place.
    Skips the work when a marker for the same parameters exists, unless ``force``.
    """
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise ValueError("rows must be a non-negative integer")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be positive")
    out_dir = Path(out_dir)
    params = {
        "manifest": manifest.name, "manifest_sha256": _manifest_fingerprint(manifest),
        "rows": rows, "seed": seed, "chunk_rows": chunk_rows, "generator_version": GENERATOR_VERSION,
    }
    marker = read_marker(out_dir)
    if marker is not None and not force and all(marker.get(k) == v for k, v in params.items()):
        files = tuple(marker["files"])
        return GeneratedInfo(manifest.name, out_dir, rows, seed, files, dir_bytes(out_dir, files), 0.0, True)

    started = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    chunk_fn = GENERATORS.get(manifest.name)
    schema = arrow_schema(manifest)
    files: list[str] = []
    try:
        # Writing (encode + compress) releases the GIL, so part i is written while
        # chunk i+1 is generated; at most two chunks are alive at once.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = None
            unit_start = row_start = 0
            for index, start in enumerate(range(0, rows, chunk_rows)):
                n = min(chunk_rows, rows - start)
                rng = random_stream(manifest, seed, "demo", index)
                if chunk_fn is None:
                    cols, units = generic_chunk(manifest, rng, n, unit_start, row_start, scrambled=True)
                else:
                    cols, units = chunk_fn(manifest, rng, n, unit_start, row_start)
                table = to_table(manifest, cols, rng, n, row_start)
                del cols
                unit_start += units
                row_start += n
                name = f"part-{index:05d}.parquet"
                if pending is not None:
                    pending.result()
                pending = pool.submit(pq.write_table, table, tmp / name, row_group_size=chunk_rows,
                                      compression=COMPRESSION)
                files.append(name)
                del table
            if pending is not None:
                pending.result()
        if not files:  # zero rows: still a valid, empty dataset with the right schema
            pq.write_table(schema.empty_table(), tmp / "part-00000.parquet", compression=COMPRESSION)
            files.append("part-00000.parquet")
        seconds = time.perf_counter() - started
        (tmp / MARKER).write_text(json.dumps(dict(params, files=files), indent=1), encoding="utf-8")
        publish_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return GeneratedInfo(manifest.name, out_dir, rows, seed, tuple(files), dir_bytes(out_dir, files), seconds)


def generate_all(manifests_dir: str | Path, datasets_dir: str | Path, rows: dict | None = None,
                 seed: int = 0, *, force: bool = False) -> dict[str, GeneratedInfo]:
    """Generate every manifest's dataset into ``datasets_dir/<name>/``, with the
    manifest's ``default_rows`` unless ``rows`` overrides it by dataset name."""
    rows = rows or {}
    out: dict[str, GeneratedInfo] = {}
    paths = sorted(p for pattern in ("*.yaml", "*.yml") for p in Path(manifests_dir).glob(pattern))
    for path in paths:
        manifest = load_manifest(path)
        n = int(rows.get(manifest.name, manifest.default_rows))
        out[manifest.name] = generate(manifest, n, Path(datasets_dir) / manifest.name, seed=seed, force=force)
    return out


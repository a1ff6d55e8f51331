"""Block partitioning for program mode: every row in exactly one block, one person
never split, the split a keyed function of the id under a secret seed."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.agent.blocks import SEED_BYTES, assign_blocks, block_of, new_block_seed

SEED = bytes(range(32))


def _write(dir_: Path, parts: list[dict]) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(parts):
        pq.write_table(pa.table(part), dir_ / f"part-{i:05d}.parquet")
    return dir_


def _read_blocks(dirs: list[Path]) -> list[list[dict]]:
    return [pq.read_table(sorted(d.glob("*.parquet"))).to_pylist() for d in dirs]


rows_strategy = st.lists(st.tuples(st.integers(min_value=0, max_value=40), st.floats(allow_nan=False)),
                         min_size=1, max_size=300)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, k=st.integers(min_value=1, max_value=12), files=st.integers(min_value=1, max_value=4),
       seed=st.binary(min_size=32, max_size=32), batch_rows=st.integers(min_value=1, max_value=64))
def test_every_row_lands_in_exactly_one_block_and_no_unit_is_split(tmp_path_factory, rows, k, files, seed,
                                                                   batch_rows):
    root = tmp_path_factory.mktemp("p")
    # Row ids make every row distinguishable; a unit's rows may sit in several input files.
    table = {"unit": [u for u, _ in rows], "value": [v for _, v in rows], "row": list(range(len(rows)))}
    chunks = [{c: vals[i::files] for c, vals in table.items()} for i in range(files)]
    data = _write(root / "data", [c for c in chunks if c["row"]])
    # A tiny buffer forces many flushes, so parts of one block come from several flushes.
    dirs = assign_blocks(data, "unit", k, seed, root / "blocks", batch_rows=batch_rows, buffer_bytes=200)
    assert [d.name for d in dirs] == [f"block-{b:04d}" for b in range(k)]
    blocks = _read_blocks(dirs)
    seen = sorted(r["row"] for block in blocks for r in block)
    assert seen == list(range(len(rows)))                      # every row, exactly once
    home = defaultdict(set)
    for b, block in enumerate(blocks):
        for r in block:
            home[r["unit"]].add(b)
            assert r["value"] == rows[r["row"]][1]
    assert all(len(bs) == 1 for bs in home.values())          # no unit split
    assert all(home[u] == {block_of(u, seed, k)} for u in home)
    for block in blocks:                                      # file order kept inside a block
        ordered = [r["row"] for r in block]
        by_file = sorted(ordered, key=lambda i: (i % files, i))
        assert ordered == by_file


def test_blocks_keep_the_schema_and_empty_blocks_get_an_empty_file(tmp_path):
    data = _write(tmp_path / "data", [{"pid": [7, 7, 7], "cost": [1.0, 2.0, 3.0], "sex": ["F", "F", "F"]}])
    dirs = assign_blocks(data, "pid", 5, SEED, tmp_path / "blocks")
    schema = pq.read_schema(next((tmp_path / "data").glob("*.parquet")))
    sizes = []
    for d in dirs:
        files = sorted(d.glob("*.parquet"))
        assert files, d
        t = pq.read_table(files)
        assert t.schema.equals(schema)
        sizes.append(t.num_rows)
        assert d.stat().st_mode & 0o777 == 0o755
        assert all(f.stat().st_mode & 0o777 == 0o644 for f in files)
    assert sorted(sizes) == [0, 0, 0, 0, 3]


def test_string_units_are_partitioned_too_and_null_units_go_to_no_block(tmp_path):
    # A null unit is no known person: no contribution bound covers its rows, so (as in the
    # query runner) they are dropped rather than handed to some block.
    units = ["a", "b", None, "a", None, "c", "1"]
    data = _write(tmp_path / "data", [{"pid": units, "row": list(range(len(units)))}])
    blocks = _read_blocks(assign_blocks(data, "pid", 3, SEED, tmp_path / "blocks"))
    home = defaultdict(set)
    for b, block in enumerate(blocks):
        for r in block:
            home[r["pid"]].add(b)
    assert sum(len(b) for b in blocks) == len(units) - 2
    assert all(len(v) == 1 for v in home.values()) and set(home) == {"a", "b", "c", "1"}


def test_blocks_read_every_parquet_file_recursively_with_hive_partition_columns(tmp_path):
    data = tmp_path / "data"
    for month, pids in ((1, [1, 2]), (2, [2, 3])):
        _write(data / f"month={month}", [{"pid": pids, "x": [1.0] * len(pids)}])
    dirs = assign_blocks(data, "pid", 2, SEED, tmp_path / "blocks", column_types={"pid": "int64", "month": "int64",
                                                                                "x": "float64"})
    rows = sorted((r["pid"], r["month"]) for block in _read_blocks(dirs) for r in block)
    assert rows == [(1, 1), (2, 1), (2, 2), (3, 2)]
    assert all(pq.read_schema(sorted(d.glob("*.parquet"))[0]).field("month").type == pa.int64() for d in dirs)


def test_the_split_is_deterministic_for_a_seed_and_unpredictable_without_it():
    ids = list(range(5000))
    k = 10
    a = [block_of(i, SEED, k) for i in ids]
    assert a == [block_of(i, SEED, k) for i in ids]
    other = [block_of(i, bytes(32), k) for i in ids]
    # Another key gives an unrelated split: agreement near chance (1/k), far from 1.
    agree = sum(x == y for x, y in zip(a, other)) / len(ids)
    assert 0.05 < agree < 0.15
    # and every block gets its share: no unit id pattern steers the split
    counts = [a.count(b) for b in range(k)]
    assert min(counts) > 400 and max(counts) < 600
    # an int id and its text form are different units
    assert [block_of(i, SEED, 1000) for i in range(50)] != [block_of(str(i), SEED, 1000) for i in range(50)]


def test_seeds_are_fresh_secret_bytes_and_never_written_to_the_blocks(tmp_path):
    seeds = {new_block_seed() for _ in range(100)}
    assert len(seeds) == 100 and all(len(s) == SEED_BYTES for s in seeds)
    seed = new_block_seed()
    data = _write(tmp_path / "data", [{"pid": list(range(100)), "x": [1.0] * 100}])
    dirs = assign_blocks(data, "pid", 4, seed, tmp_path / "blocks")
    for d in dirs:
        for f in d.iterdir():
            blob = f.read_bytes()
            assert seed not in blob and seed.hex().encode() not in blob


@pytest.mark.parametrize("kwargs,error", [
    ({"seed": b"short"}, ValueError),
    ({"seed": "a string of more than sixteen chars"}, ValueError),
    ({"k": 0}, ValueError),
    ({"k": True}, ValueError),
    ({"unit": "nope"}, KeyError),
])
def test_bad_arguments_are_refused_and_leave_nothing(tmp_path, kwargs, error):
    data = _write(tmp_path / "data", [{"pid": [1, 2], "x": [1.0, 2.0]}])
    args = {"unit": "pid", "k": 3, "seed": SEED, **kwargs}
    with pytest.raises(error):
        assign_blocks(data, args["unit"], args["k"], args["seed"], tmp_path / "blocks")
    assert not (tmp_path / "blocks").exists() or not any((tmp_path / "blocks").iterdir())


def test_a_non_empty_out_dir_or_an_empty_dataset_is_refused(tmp_path):
    data = _write(tmp_path / "data", [{"pid": [1], "x": [1.0]}])
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "stale").write_text("x")
    with pytest.raises(FileExistsError):
        assign_blocks(data, "pid", 2, SEED, tmp_path / "blocks")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        assign_blocks(tmp_path / "empty", "pid", 2, SEED, tmp_path / "blocks2")

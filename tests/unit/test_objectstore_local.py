"""The shared data store on a shared filesystem path (SANDBOX_DATA_STORE=/mnt/...), and how
leftovers are told apart by their place in the work area (issue 16)."""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sandbox.agent import objectstore
from sandbox.agent.ingest import dataset_version_hash
from sandbox.agent.leftovers import attempt_of, sweep_host
from sandbox.config import load
from tests.unit.test_dataset_register import table


def _version(tmp_path) -> tuple[Path, str]:
    folder = tmp_path / "registered"
    (folder / "year=2024").mkdir(parents=True)
    pq.write_table(table(["a", "b", "c"]), folder / "year=2024" / "part-0.parquet")
    return folder, dataset_version_hash(folder)


def test_a_version_pushed_to_a_shared_path_is_read_and_checked_on_another_host(tmp_path):
    folder, digest = _version(tmp_path)
    shared = str(tmp_path / "shared")
    objectstore.push(load({"SANDBOX_HOME": str(tmp_path / "api"), "SANDBOX_DATA_STORE": shared}), folder, digest)
    host = load({"SANDBOX_HOME": str(tmp_path / "host-b"), "SANDBOX_DATA_STORE": shared})
    copy = objectstore.local_copy(host, digest)
    assert copy == host.store_dir / digest and dataset_version_hash(copy) == digest
    assert (copy / "year=2024" / "part-0.parquet").is_file()       # hive layout kept


def test_a_missing_or_altered_version_is_refused(tmp_path):
    folder, digest = _version(tmp_path)
    shared = tmp_path / "shared"
    host = load({"SANDBOX_HOME": str(tmp_path / "host-b"), "SANDBOX_DATA_STORE": str(shared)})
    with pytest.raises(objectstore.VersionUnavailable, match="not in the shared data store"):
        objectstore.local_copy(host, digest)
    objectstore.push(host, folder, digest)
    part = shared / "versions" / digest / "year=2024" / "part-0.parquet"
    part.write_bytes(part.read_bytes() + b"\0")
    with pytest.raises(objectstore.VersionUnavailable, match="does not match"):
        objectstore.local_copy(host, digest)
    assert list(host.store_dir.iterdir()) == []


def test_leftovers_are_known_by_their_attempt_folder(tmp_path):
    jobs = tmp_path / "jobs"
    assert attempt_of(jobs, jobs / "j1" / "attempt-2" / "run-0003" / "out") == ("j1", 2)
    assert attempt_of(jobs, jobs / "j1" / "attempt-x") is None
    assert attempt_of(jobs, tmp_path / "elsewhere" / "j1" / "attempt-1") is None
    for attempt in ("attempt-1", "attempt-2"):
        (jobs / "j1" / attempt / "blocks").mkdir(parents=True)
    (jobs / "j2" / "attempt-1").mkdir(parents=True)

    class Boxes:
        def __init__(self):
            self.removed = []

        def leftovers(self):
            return [("box-old", str(jobs / "j1" / "attempt-1" / "run-0000")),
                    ("box-live", str(jobs / "j1" / "attempt-2" / "run-0001")),
                    ("box-other-host", str(tmp_path / "other" / "jobs" / "j1" / "attempt-1"))]

        def remove_box(self, box_id):
            self.removed.append(box_id)

    boxes = Boxes()
    done = sweep_host(jobs, boxes, lambda: {("j1", 2)})
    assert boxes.removed == ["box-old"]
    assert not (jobs / "j1" / "attempt-1").exists() and not (jobs / "j2").exists()
    assert (jobs / "j1" / "attempt-2" / "blocks").is_dir()
    assert done["boxes"] == ["box-old"]

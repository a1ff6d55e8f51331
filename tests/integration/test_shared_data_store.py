"""Registered versions on shared storage (SANDBOX_DATA_STORE, issue 16): registration
writes the content-addressed copy to an S3-compatible server (moto's server mode), a
worker host with its own home reads it through its own cache, and nothing that fails
the version hash is used: a corrupted cache is fetched again, a corrupted object is
refused and the job does not run on it."""
from __future__ import annotations

import os
from contextlib import contextmanager

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from sandbox.adapters.memory import MemoryRepository
from sandbox.agent import objectstore
from sandbox.agent.executor import Executor
from sandbox.agent.ingest import dataset_version_hash
from sandbox.bootstrap import bootstrap
from sandbox.config import load
from sandbox.core import states as st
from sandbox.core.records import utcnow
from tests.unit.test_dataset_register import manifest_text, table

STORE = "s3://owner-data/sandbox-store"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def moto_s3(bucket: str):
    """A real S3-compatible server on 127.0.0.1 (moto's server mode) with one bucket:
    yields (endpoint URL, a pyarrow filesystem on it). The caller sets CREDENTIALS."""
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        fs = pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", region="us-east-1",
                               access_key="testing", secret_key="testing", allow_bucket_creation=True)
        fs.create_dir(bucket)
        yield f"http://{host}:{port}", fs
    finally:
        server.stop()


@pytest.fixture
def s3(monkeypatch):
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    with moto_s3("owner-data") as server:
        yield server


def _services(tmp_path, name: str, **env):
    return bootstrap(load({"SANDBOX_HOME": str(tmp_path / name), "SANDBOX_INGEST_ROOTS": str(tmp_path / "incoming"),
                           **env}), repo=MemoryRepository(utcnow), enqueue=lambda _j: None)


@pytest.fixture
def registered(tmp_path, s3):
    endpoint, fs = s3
    (tmp_path / "incoming").mkdir()
    pq.write_table(table([f"p{i}" for i in range(40)]), tmp_path / "incoming" / "v.parquet")
    env = {"SANDBOX_S3_ENDPOINT": endpoint, "SANDBOX_DATA_STORE": STORE}
    api = _services(tmp_path, "api", **env)
    api.accounts.create_user("owner", st.OWNER, "tok-owner")
    reg = api.owner.register_version(api.accounts.user("owner"), manifest_text(), str(tmp_path / "incoming" / "v.parquet"))
    api.dispose()
    worker = load({"SANDBOX_HOME": str(tmp_path / "host-b"), **env})
    yield worker, fs, reg["content_hash"]


def _object(fs, digest: str) -> str:
    base = f"owner-data/sandbox-store/versions/{digest}"
    return next(e.path for e in fs.get_file_info(pafs.FileSelector(base, recursive=True))
                if e.path.endswith(".parquet"))


def test_a_worker_host_reads_the_version_through_its_own_verified_cache(registered):
    worker, fs, digest = registered
    assert fs.get_file_info(f"owner-data/sandbox-store/versions/{digest}/.complete").type == pafs.FileType.File
    assert not (worker.store_dir / digest).exists()
    copy = objectstore.local_copy(worker, digest)
    assert copy == worker.store_dir / digest and dataset_version_hash(copy) == digest
    assert oct(os.stat(copy).st_mode & 0o777) == "0o555"          # read-only, as the local store
    # A corrupted cache is never used: it is replaced by a fresh, checked copy.
    part = next(copy.glob("*.parquet"))
    os.chmod(part, 0o644)
    with open(part, "r+b") as f:
        f.seek(10)
        f.write(b"X")
    again = objectstore.local_copy(worker, digest)
    assert dataset_version_hash(again) == digest


def test_a_corrupted_object_is_refused_and_the_job_does_not_run_on_it(registered):
    worker, fs, digest = registered
    key = _object(fs, digest)
    with fs.open_input_stream(key) as f:
        data = bytearray(f.read())
    data[10] ^= 0xFF
    with fs.open_output_stream(key) as f:
        f.write(bytes(data))
    with pytest.raises(objectstore.VersionUnavailable, match="does not match"):
        objectstore.local_copy(worker, digest)
    assert not (worker.store_dir / digest).exists()
    assert [p for p in worker.store_dir.iterdir()] == []          # no half-fetched copy left
    work = {"job_version": "v1", "current_version": "v1", "content_hash": digest, "data_dir": "/elsewhere"}
    why, _ = Executor._stale_snapshot(work, worker)
    assert why.startswith("refused to run") and "does not match" in why


def test_without_a_data_store_the_version_stays_in_the_local_store(tmp_path):
    (tmp_path / "incoming").mkdir()
    pq.write_table(table([f"p{i}" for i in range(40)]), tmp_path / "incoming" / "v.parquet")
    api = _services(tmp_path, "api")
    api.accounts.create_user("owner", st.OWNER, "tok-owner")
    reg = api.owner.register_version(api.accounts.user("owner"), manifest_text(), str(tmp_path / "incoming" / "v.parquet"))
    local = api.settings.store_dir / reg["content_hash"]
    work = {"job_version": "v1", "current_version": "v1", "content_hash": reg["content_hash"], "data_dir": str(local)}
    assert Executor._stale_snapshot(work, api.settings) == ("", str(local))
    api.dispose()

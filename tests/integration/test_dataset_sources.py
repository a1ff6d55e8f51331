"""Owners register versions through the real API from a real S3-compatible server (moto's
server mode on 127.0.0.1) and from file:// URIs, on the SQLite store: the data is copied into
the sandbox's store, the report goes to the owner only, bad sources are a 400 naming what to
fix, and operators see only the public catalog entry."""
from __future__ import annotations

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import yaml

from sandbox.bootstrap import bootstrap
from sandbox.config import load
from sandbox.controller.web import create_app
from sandbox.core import states as st
from tests.unit.test_dataset_register import MANIFEST, manifest_text, table

BUCKET = "owner-data"


@pytest.fixture
def s3(monkeypatch):
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(key, value)
    fs = pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", region="us-east-1",
                           allow_bucket_creation=True)
    fs.create_dir(BUCKET)
    yield f"http://{host}:{port}", fs
    server.stop()


def make_api(tmp_path, **env):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    settings = load({"SANDBOX_HOME": str(tmp_path / "home"), "SANDBOX_DATABASE_URL": f"sqlite:///{tmp_path}/db",
                     "SANDBOX_INGEST_ROOTS": f"{incoming},s3://{BUCKET}/incoming", **env})
    svc = bootstrap(settings, enqueue=lambda _j: None)
    for name, role in (("owner", st.OWNER), ("operator", st.OPERATOR), ("reviewer", st.COMPLIANCE)):
        svc.accounts.create_user(name, role, f"tok-{name}")
    return svc, create_app(settings, services=svc), incoming


@pytest.fixture
def api(tmp_path, s3):
    svc, app, incoming = make_api(tmp_path, SANDBOX_S3_ENDPOINT=s3[0])
    yield svc, app.test_client(), incoming
    svc.dispose()


def headers(name: str) -> dict:
    return {"Authorization": f"Bearer tok-{name}"}


def test_a_hive_partitioned_version_registers_from_s3_into_the_store(api, s3):
    svc, client, _ = api
    _, fs = s3
    for region, persons in (("north", ["a", "b", "b"]), ("south", ["c", "d", "d"])):
        with fs.open_output_stream(f"{BUCKET}/incoming/visits/region={region}/part-0.parquet") as out:
            pq.write_table(table(persons).drop(["region"]), out)
    resp = client.post("/api/v1/datasets", headers=headers("owner"),
                       json={"manifest": manifest_text(), "data": f"s3://{BUCKET}/incoming/visits"})
    assert resp.status_code == 201, resp.get_json()
    reg = resp.get_json()
    assert reg["rows"] == 6 and reg["bound_verified"] and reg["report"]["schema"]["partition_columns"] == ["region"]
    copy = svc.settings.store_dir / reg["content_hash"]
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*.parquet")) == [
        "region=north/part-0.parquet", "region=south/part-0.parquet"]
    with svc.owner.p.repo.transaction() as tx:
        assert tx.dataset("visits").data_dir == str(copy)
    # The owner reads the report and the versions; operators get the public entry only.
    got = client.get("/api/v1/datasets/visits/report", headers=headers("owner")).get_json()
    assert got["report"] == reg["report"] and got["source"] == f"s3://{BUCKET}/incoming/visits"
    assert client.get("/api/v1/datasets/visits/versions", headers=headers("reviewer")).status_code == 200
    for path in ("/api/v1/datasets/visits/report", "/api/v1/datasets/visits/versions"):
        assert client.get(path, headers=headers("operator")).status_code == 403
    public = client.get("/api/v1/datasets/visits", headers=headers("operator")).get_json()
    assert public["version"] == reg["version"] and not {"rows", "content_hash", "report", "data_dir"} & set(public)


def test_enforce_through_the_api_and_a_refusal_with_the_report(api):
    svc, client, incoming = api
    pq.write_table(table(["a", "a", "a", None]), incoming / "v.parquet")
    body = {"manifest": manifest_text(), "data": f"file://{incoming / 'v.parquet'}"}
    resp = client.post("/api/v1/datasets", headers=headers("owner"), json=body)
    assert resp.status_code == 400
    refused = resp.get_json()
    assert refused["field"] == "data" and refused["report"]["units_over_bound"] == 1
    assert "--enforce" in refused["message"]
    assert client.get("/api/v1/datasets/visits", headers=headers("owner")).status_code == 404
    resp = client.post("/api/v1/datasets", headers=headers("owner"), json={**body, "enforce": True})
    assert resp.status_code == 201 and resp.get_json()["report"]["enforcement"]["rows_kept"] == 2


@pytest.mark.parametrize("body, field, message", [
    ({"data": "s3://owner-data/elsewhere/x.parquet"}, "data", "outside the URI prefixes"),
    ({"data": "s3://owner-data/incoming/missing"}, "data", "does not exist"),
    ({"data": "https://example.com/x.parquet"}, "data", "scheme 'https' is not allowed"),
    ({"data": "/etc"}, "data", "outside the folders"),
    ({"data": ""}, "data", "server-side path"),
    ({"manifest": "name: [unclosed"}, "manifest", "not valid YAML"),
    ({"manifest": yaml.safe_dump({**MANIFEST, "privacy_unit": "nobody"})}, "privacy_unit", "privacy_unit"),
])
def test_bad_requests_are_a_400_naming_what_to_fix(api, body, field, message):
    svc, client, incoming = api
    pq.write_table(table(["a"]), incoming / "v.parquet")
    resp = client.post("/api/v1/datasets", headers=headers("owner"),
                       json={"manifest": manifest_text(), "data": str(incoming / "v.parquet"), **body})
    assert resp.status_code == 400 and resp.get_json()["field"] == field and message in resp.get_json()["message"]
    assert not any(svc.settings.store_dir.glob("*")) if svc.settings.store_dir.exists() else True


def test_only_owners_register_and_policy_of_a_new_dataset_is_empty(api):
    svc, client, incoming = api
    pq.write_table(table(["a"]), incoming / "v.parquet")
    body = {"manifest": manifest_text(), "data": str(incoming / "v.parquet")}
    assert client.post("/api/v1/datasets", headers=headers("operator"), json=body).status_code == 403
    assert client.post("/api/v1/datasets", headers=headers("owner"), json=body).status_code == 201
    got = client.get("/api/v1/datasets/visits/policy", headers=headers("owner")).get_json()
    assert got == {"dataset": "visits", "version": None, "hash": None, "content": None}
    assert client.get("/api/v1/datasets/nothing/policy", headers=headers("owner")).status_code == 404
    resp = client.post("/api/v1/datasets/visits/retire", headers=headers("owner"), json={})
    assert resp.status_code == 200 and resp.get_json()["dataset_retired"]
    with svc.owner.p.repo.transaction() as tx:
        assert [e.action for e in tx.audit_records()][-1] == "dataset.version_retired"


def parquet_bytes(tmp_path, persons) -> bytes:
    pq.write_table(table(persons), tmp_path / "up.parquet")
    return (tmp_path / "up.parquet").read_bytes()


def test_an_upload_in_chunks_resumes_at_the_server_offset_and_registers(api, tmp_path):
    svc, client, _ = api
    data = parquet_bytes(tmp_path, ["a", "b", "c"])
    upload = client.post("/api/v1/uploads", headers=headers("owner")).get_json()["upload"]
    first = client.put(f"/api/v1/uploads/{upload}?offset=0", headers=headers("owner"), data=data[:100])
    assert first.get_json()["offset"] == 100
    # A chunk sent again after a lost answer (wrong offset) is refused, naming the right one.
    again = client.put(f"/api/v1/uploads/{upload}?offset=0", headers=headers("owner"), data=data[:100])
    assert again.status_code == 400 and "offset 100" in again.get_json()["message"]
    offset = client.get(f"/api/v1/uploads/{upload}", headers=headers("owner")).get_json()["offset"]
    client.put(f"/api/v1/uploads/{upload}?offset={offset}", headers=headers("owner"), data=data[offset:])
    assert client.get(f"/api/v1/uploads/{upload}", headers=headers("operator")).status_code == 403
    resp = client.post("/api/v1/datasets", headers=headers("owner"), json={"manifest": manifest_text(),
                                                                           "upload": upload})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["rows"] == 3
    assert client.get(f"/api/v1/uploads/{upload}", headers=headers("owner")).status_code == 404  # removed
    got = client.get("/api/v1/datasets/visits/report", headers=headers("owner")).get_json()
    assert got["source"] == f"upload:{upload}"


def test_an_upload_over_the_limit_is_a_400_and_is_removed(tmp_path):
    svc, app, _ = make_api(tmp_path, SANDBOX_UPLOAD_MAX_BYTES="500")
    client = app.test_client()
    data = parquet_bytes(tmp_path, ["a", "b", "c"])
    assert len(data) > 500
    upload = client.post("/api/v1/uploads", headers=headers("owner")).get_json()["upload"]
    resp = client.put(f"/api/v1/uploads/{upload}?offset=0", headers=headers("owner"), data=data)
    assert resp.status_code == 400 and "over the limit of 500 bytes" in resp.get_json()["message"]
    assert client.get(f"/api/v1/uploads/{upload}", headers=headers("owner")).status_code == 404
    resp = client.post("/api/v1/datasets", headers=headers("owner"), json={"manifest": manifest_text(),
                                                                           "upload": upload})
    assert resp.status_code == 404
    assert client.get("/api/v1/datasets/visits", headers=headers("owner")).status_code == 404
    svc.dispose()


def test_the_cli_uploads_a_local_file_over_http_and_registers_it(tmp_path, monkeypatch, capsys):
    import threading

    from werkzeug.serving import make_server

    from sandbox.controller import cli
    from sandbox.controller.cli import dataset
    svc, app, _ = make_api(tmp_path)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        local = tmp_path / "mine" / "visits.parquet"
        local.parent.mkdir()
        pq.write_table(table(["a", "a", "a", "b"]), local)
        (tmp_path / "m.yaml").write_text(manifest_text(), encoding="utf-8")
        monkeypatch.setattr(dataset, "CHUNK_BYTES", 256)
        argv = ["--url", url, "--token", "tok-owner", "dataset", "register", "visits", "--manifest",
                str(tmp_path / "m.yaml"), "--upload", str(local)]
        assert cli.main(argv) == 2
        out = capsys.readouterr()
        assert "units over the bound: 1 (1 rows over)" in out.out and "--enforce" in out.err
        assert cli.main(argv + ["--enforce"]) == 0
        out = capsys.readouterr()
        assert "registered visits version" in out.out and "uploaded 100%" in out.err
        assert cli.main(["--url", url, "--token", "tok-owner", "dataset", "versions", "visits"]) == 0
        assert "enforced" in capsys.readouterr().out
        assert cli.main(["--url", url, "--token", "tok-operator", "dataset", "versions", "visits"]) == 1
        assert cli.main(["--url", url, "--token", "tok-owner", "dataset", "register", "other", "--manifest",
                         str(tmp_path / "m.yaml"), "--upload", str(local)]) == 2
        assert "names the dataset 'visits', not 'other'" in capsys.readouterr().err
        assert list((svc.settings.home / "uploads" / "owner").iterdir()) == []  # none left behind
    finally:
        server.shutdown()
        svc.dispose()

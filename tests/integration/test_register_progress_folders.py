"""Issue 14: folder uploads through the API (the files of a hive-partitioned folder at their
relative paths, one limit for the whole upload), and the progress an owner sees while the
registration report is computed (API token, CLI progress bar only on a TTY, none in --json)."""
from __future__ import annotations

import argparse
import json
import threading
import time

import pyarrow.parquet as pq
import pytest

from sandbox.agent import regprogress, regreport
from sandbox.controller.cli import dataset as cli
from tests.integration.test_dataset_sources import headers, make_api
from tests.unit.test_dataset_register import manifest_text, table


@pytest.fixture
def api(tmp_path):
    svc, app, incoming = make_api(tmp_path)
    yield svc, app.test_client(), incoming
    svc.dispose()


def part_bytes(tmp_path, persons, name) -> bytes:
    pq.write_table(table(persons).drop_columns(["region"]), tmp_path / name)
    return (tmp_path / name).read_bytes()


def put(client, upload, path, data, offset=0):
    return client.put(f"/api/v1/uploads/{upload}", query_string={"offset": offset, "path": path},
                      headers=headers("owner"), data=data)


def test_a_hive_partitioned_folder_uploads_file_by_file_and_registers(api, tmp_path):
    svc, client, _ = api
    upload = client.post("/api/v1/uploads", headers=headers("owner")).get_json()["upload"]
    north, south = part_bytes(tmp_path, ["a", "b"], "n.parquet"), part_bytes(tmp_path, ["c"], "s.parquet")
    assert put(client, upload, "region=north/part-0.parquet", north[:50]).get_json()["offset"] == 50
    # Each file resumes at its own offset; the upload's total counts all of them.
    status = client.get(f"/api/v1/uploads/{upload}", query_string={"path": "region=north/part-0.parquet"},
                        headers=headers("owner")).get_json()
    assert status["offset"] == 50 and status["total"] == 50
    assert put(client, upload, "region=north/part-0.parquet", north[50:], 50).status_code == 200
    assert put(client, upload, "region=south/part-0.parquet", south).get_json()["total"] == len(north) + len(south)
    for bad in ("../x.parquet", "region=north/_x.parquet", ".hidden/x.parquet", "x.csv", "/abs.parquet"):
        resp = put(client, upload, bad, b"PAR1")
        assert resp.status_code == 400 and resp.get_json()["field"] == "path", bad
    resp = client.post("/api/v1/datasets", headers=headers("owner"),
                       json={"manifest": manifest_text(), "upload": upload})
    assert resp.status_code == 201, resp.get_json()
    got = resp.get_json()
    assert got["rows"] == 3 and got["report"]["schema"]["partition_columns"] == ["region"]
    stored = svc.owner.p.settings.store_dir / got["content_hash"]
    assert sorted(p.relative_to(stored).as_posix() for p in stored.rglob("*.parquet")) == [
        "region=north/part-0.parquet", "region=south/part-0.parquet"]


def test_the_upload_limit_holds_for_the_whole_folder(tmp_path):
    svc, app, _ = make_api(tmp_path, SANDBOX_UPLOAD_MAX_BYTES="1000")
    client = app.test_client()
    data = part_bytes(tmp_path, ["a", "b"], "n.parquet")
    assert 500 < len(data) <= 1000
    upload = client.post("/api/v1/uploads", headers=headers("owner")).get_json()["upload"]
    assert put(client, upload, "a/p.parquet", data).status_code == 200
    resp = put(client, upload, "b/p.parquet", data)
    assert resp.status_code == 400 and "over the limit of 1000 bytes" in resp.get_json()["message"]
    assert client.get(f"/api/v1/uploads/{upload}", headers=headers("owner")).status_code == 404
    svc.dispose()


def test_the_owner_can_poll_the_progress_of_a_running_registration(api, monkeypatch):
    svc, client, incoming = api
    pq.write_table(table(["a", "b", "c"]), incoming / "v.parquet")
    token = "ab" * 16
    seen = []
    real = regreport.column_report

    def spying(lf, manifest):
        seen.append(regprogress.read(svc.owner.p.settings, "owner", token))
        return real(lf, manifest)
    monkeypatch.setattr(regreport, "column_report", spying)
    resp = client.post("/api/v1/datasets", headers=headers("owner"),
                       json={"manifest": manifest_text(), "data": str(incoming / "v.parquet"), "progress": token})
    assert resp.status_code == 201
    assert seen[0]["stage"] == "checking columns against the manifest" and 0.2 < seen[0]["fraction"] < 0.55
    assert set(seen[0]) == {"stage", "fraction", "done"}  # stage names and a fraction, no figures
    # Finished: the registration's own answer says how it ended; the progress file is gone.
    assert client.get(f"/api/v1/registration-progress/{token}", headers=headers("owner")).status_code == 404
    assert client.get("/api/v1/registration-progress/nothex", headers=headers("owner")).status_code == 400
    resp = client.post("/api/v1/datasets", headers=headers("owner"),
                       json={"manifest": manifest_text(), "data": str(incoming / "v.parquet"), "progress": "x"})
    assert resp.status_code == 400 and resp.get_json()["field"] == "progress"


def test_the_progress_stages_rise_to_the_end(tmp_path):
    from sandbox.agent.registration import register_source
    from sandbox.config import load
    from sandbox.core.manifest import parse_manifest
    import yaml
    (tmp_path / "in").mkdir()
    pq.write_table(table(["a", "a", "a", "b"]), tmp_path / "in" / "v.parquet")
    settings = load({"SANDBOX_HOME": str(tmp_path / "home"), "SANDBOX_INGEST_ROOTS": str(tmp_path / "in")})
    heard = []
    register_source(str(tmp_path / "in" / "v.parquet"), parse_manifest(yaml.safe_load(manifest_text())), settings,
                    enforce=True, progress=lambda stage, f: heard.append((stage, f)))
    fractions = [f for _, f in heard]
    assert fractions == sorted(fractions) and fractions[-1] >= 0.99
    stages = [s for s, _ in heard]
    for stage in ("copying into the store", "counting rows per privacy unit", "enforcing the bound",
                  "hashing and verifying the stored copy"):
        assert stage in stages


def cli_args(tmp_path, as_json: bool):
    (tmp_path / "m.yaml").write_text(manifest_text())
    return argparse.Namespace(name="visits", manifest=str(tmp_path / "m.yaml"), data="/srv/v.parquet", upload=None,
                              enforce=False, json=as_json, url=None, token=None)


class FakeServer:
    """The two calls the CLI makes while registering: a slow POST and progress polls."""

    def __init__(self):
        self.polls = 0
        self.posted = threading.Event()

    def __call__(self, _args, method, path, **kw):
        if method == "POST":
            self.body = kw["json"]
            time.sleep(1.5)
            return {"name": "visits", "version": "v1", "enforced": False, "report": {"rows": 3}}
        self.polls += 1
        return {"stage": "counting rows per privacy unit", "fraction": 0.4, "done": False}


def test_the_cli_shows_a_progress_bar_on_a_tty_only(tmp_path, monkeypatch, capsys):
    server = FakeServer()
    monkeypatch.setattr(cli, "_call", server)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert cli.cmd_register(cli_args(tmp_path, as_json=False)) == 0
    assert server.polls >= 1 and len(server.body["progress"]) == 32
    assert "registered visits version v1" in capsys.readouterr().out


def test_the_cli_json_output_has_no_progress_bar(tmp_path, monkeypatch, capsys):
    server = FakeServer()
    monkeypatch.setattr(cli, "_call", server)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert cli.cmd_register(cli_args(tmp_path, as_json=True)) == 0
    out = capsys.readouterr()
    assert server.polls == 0 and json.loads(out.out)["version"] == "v1" and out.err == ""


OWNER_HEADERS = headers("owner")


class Answer:
    def __init__(self, body):
        self.body = body

    def json(self):
        return self.body


class FlaskAdapter:
    """sandbox.client's _req over Flask's test client (the CLI's upload calls, no server)."""

    def __init__(self, client):
        self.client = client
        self.puts = []

    def _req(self, method, path, params=None, data=None, headers=None, **_kw):
        if method == "PUT":
            self.puts.append(dict(params or {}))
        resp = self.client.open(f"/api/v1{path}", method=method, query_string=params or {}, data=data,
                                headers={**OWNER_HEADERS, **(headers or {})})
        assert resp.status_code < 400, resp.get_json()
        return Answer(resp.get_json())


def test_the_cli_uploads_a_hive_folder_file_by_file(api, tmp_path):
    svc, client, _ = api
    for region, persons in (("north", ["a", "b"]), ("south", ["c"])):
        (tmp_path / "hive" / f"region={region}").mkdir(parents=True)
        pq.write_table(table(persons).drop_columns(["region"]), tmp_path / "hive" / f"region={region}" / "p.parquet")
    adapter = FlaskAdapter(client)
    upload = cli.upload_file(adapter, tmp_path / "hive", chunk_bytes=200)
    assert {p["path"] for p in adapter.puts} == {"region=north/p.parquet", "region=south/p.parquet"}
    assert len(adapter.puts) > 2  # in chunks
    resp = client.post("/api/v1/datasets", headers=headers("owner"), json={"manifest": manifest_text(), "upload": upload})
    assert resp.status_code == 201 and resp.get_json()["rows"] == 3
    assert resp.get_json()["report"]["schema"]["partition_columns"] == ["region"]

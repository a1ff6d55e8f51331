"""The owner's register page without a browser (Flask's test client, the SQLite store): the
file goes up in chunks as static/dataset_upload.js sends it, the form registers it and shows
the report; an upload over the limit is refused and removed; other roles may not open it."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from sandbox.controller.web import auth
from tests.integration.test_dataset_sources import make_api
from tests.unit.test_dataset_register import manifest_text, table

CSRF = {"X-CSRF-Token": "t", "Content-Type": "application/octet-stream"}


def signed_in(svc, app, name: str):
    client = app.test_client()
    auth.set_password(svc, name, "a-long-passphrase-1")
    with client.session_transaction() as s:
        s["user"], s["pw"], s["csrf"], s["lang"] = name, auth._pw_marker(svc.accounts.user(name)), "t", "en"
    return client


def upload(client, data: bytes, chunk: int) -> str:
    up = client.post("/ui/uploads", headers=CSRF)
    assert up.status_code == 201, up.get_data(as_text=True)
    upload_id, offset = up.get_json()["upload"], 0
    while offset < len(data):
        resp = client.put(f"/ui/uploads/{upload_id}?offset={offset}", headers=CSRF, data=data[offset:offset + chunk])
        assert resp.status_code == 200, resp.get_json()
        offset = resp.get_json()["offset"]
    return upload_id


@pytest.fixture
def parquet(tmp_path) -> bytes:
    pq.write_table(table(["a", "a", "a", "b"], costs=[1.0, 2.0, 3.0, 400.0]), tmp_path / "v.parquet")
    return (tmp_path / "v.parquet").read_bytes()


def test_an_owner_uploads_in_chunks_registers_and_reads_the_report(tmp_path, parquet):
    svc, app, _ = make_api(tmp_path)
    client = signed_in(svc, app, "owner")
    page = client.get("/ui/datasets/register").get_data(as_text=True)
    assert 'id="register-form"' in page and 'id="nav-register"' in page and "dataset_upload.js" in page
    upload_id = upload(client, parquet, chunk=300)
    resp = client.post("/ui/datasets/register", data={"csrf_token": "t", "manifest": manifest_text(),
                                                      "upload": upload_id})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and 'id="register-error"' in html and 'id="report-units_over_bound">1<' in html
    upload_id = upload(client, parquet, chunk=300)
    resp = client.post("/ui/datasets/register", data={"csrf_token": "t", "manifest": manifest_text(),
                                                      "upload": upload_id, "enforce": "on"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'id="register-ok"' in html and 'id="report-enforcement"' in html
    assert svc.owner.report(svc.accounts.user("owner"), "visits")["enforced"]
    svc.dispose()


def test_an_upload_over_the_limit_is_refused_and_removed(tmp_path, parquet):
    svc, app, _ = make_api(tmp_path, SANDBOX_UPLOAD_MAX_BYTES="500")
    client = signed_in(svc, app, "owner")
    upload_id = client.post("/ui/uploads", headers=CSRF).get_json()["upload"]
    resp = client.put(f"/ui/uploads/{upload_id}?offset=0", headers=CSRF, data=parquet)
    assert resp.status_code == 400 and "over the upload limit of 500 bytes" in resp.get_json()["message"]
    assert client.get(f"/ui/uploads/{upload_id}").status_code == 404
    svc.dispose()


def test_other_roles_cannot_open_the_page(tmp_path):
    svc, app, _ = make_api(tmp_path)
    for name in ("operator", "reviewer"):
        client = signed_in(svc, app, name)
        assert client.get("/ui/datasets/register").status_code == 403
        assert client.post("/ui/uploads", headers=CSRF).status_code == 403
    svc.dispose()


def test_a_folder_uploads_by_relative_paths_and_the_page_can_poll_the_report(tmp_path):
    svc, app, _ = make_api(tmp_path)
    client = signed_in(svc, app, "owner")
    page = client.get("/ui/datasets/register").get_data(as_text=True)
    assert 'id="data-folder"' in page and "webkitdirectory" in page and 'id="report-progress"' in page
    up = client.post("/ui/uploads", headers=CSRF).get_json()["upload"]
    for region, persons in (("north", ["a", "b"]), ("south", ["c"])):
        pq.write_table(table(persons).drop_columns(["region"]), tmp_path / f"{region}.parquet")
        data = (tmp_path / f"{region}.parquet").read_bytes()
        resp = client.put(f"/ui/uploads/{up}", query_string={"offset": 0, "path": f"region={region}/p.parquet"},
                          headers=CSRF, data=data)
        assert resp.status_code == 200, resp.get_json()
    token = "cd" * 16
    # Before (and after) the registration runs, the poll answers "not running" (no failed request).
    assert client.get(f"/ui/registration-progress/{token}").get_json()["running"] is False
    resp = client.post("/ui/datasets/register", data={"csrf_token": "t", "manifest": manifest_text(),
                                                      "upload": up, "progress": token})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'id="register-ok"' in html and 'id="report-rows">3<' in html
    assert client.get("/ui/registration-progress/xyz").status_code == 400
    svc.dispose()

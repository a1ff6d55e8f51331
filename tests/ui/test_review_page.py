"""The review page without a browser (Flask's test client, fakes, in-memory repository): every
output rendered in full by its type, the code highlighted, every check explained in both
languages, a sign-off box per finding, a decision per file, and the vote they make."""
from __future__ import annotations

import base64
import io
import re

import pytest

from sandbox.controller.web import auth, create_app
from sandbox.core import states as st
from sandbox.core.records import Event, Output
from tests.unit import test_lifecycle_fakes as fakes
from tests.unit.test_lifecycle_fakes import make, user
from tests.unit.test_review_signoff import job_without_the_failing_table

tiny_datasets = fakes.tiny_datasets
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'


def _parquet() -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq
    buf = io.BytesIO()
    pq.write_table(pa.table({"industry": ["mining", "retail"], "n": [12, 40]}), buf)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def world(tmp_path, tiny_datasets):
    svc, queue, clock, _ = make(tmp_path, tiny_datasets)
    job_id = svc.operator.submit(user(svc, "operator"), job_without_the_failing_table())["job"]["id"]
    queue.drain()
    app = create_app(svc.settings, services=svc)
    client = app.test_client()
    rev = user(svc, "reviewer")
    auth.set_password(svc, "reviewer", "a-long-passphrase-1")
    with client.session_transaction() as s:
        s["user"], s["pw"], s["csrf"], s["lang"] = "reviewer", auth._pw_marker(svc.accounts.user("reviewer")), "t", "en"
    return svc, client, job_id, rev


def page(client, job_id, lang="en") -> str:
    with client.session_transaction() as s:
        s["lang"] = lang
    resp = client.get(f"/ui/reviews/{job_id}")
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


def test_every_output_shows_in_full_by_its_type_and_the_code_is_highlighted(world):
    svc, client, job_id, _ = world
    with svc.repo.transaction() as tx:   # free-form files of every type the page renders
        for name, content, enc in (("fig.png", base64.b64encode(PNG).decode(), "base64"), ("fig.svg", SVG, "utf-8"),
                                   ("t.parquet", _parquet(), "base64")):
            tx.add_output(Output(job_id, name, "0" * 64, len(content), content, enc,
                                 [{"name": f"free_form:{name}", "status": "needs_review", "explanation": "look"}]),
                          Event("test", "output.stored", job_id))
    html = page(client, job_id)
    assert '<img class="output-image" src="data:image/png;base64,' in html
    assert 'src="data:image/svg+xml;base64,' in html and "<script>alert" not in html   # never inline
    assert "<td>mining</td>" in html and "<td>retail</td>" in html                        # parquet as a table
    assert "notes" in html and '<pre class="output-text">' in html                         # text in full
    assert '<div class="highlight">' in html and 'class="k"' in html                       # pygments
    assert 'id="purpose"' in html and 'id="spec-full"' in html
    # One sign-off box per finding, one decision per file.
    detail = svc.compliance.review_detail(user(svc, "reviewer"), job_id)
    assert len(re.findall(r'type="checkbox" form="review-form" id="signoff-', html)) == len(detail["findings"]) >= 4
    assert len(re.findall(r'name="file-\d+-name"', html)) == len(detail["outputs"]) >= 4
    assert 'id="no-earlier-releases"' in html


def test_every_check_has_help_in_english_and_chinese_on_the_page(world):
    _, client, job_id, _ = world
    for lang, marker in (("en", "computed by trusted code"), ("zh_CN", "可信代码")):
        html = page(client, job_id, lang)
        helps = re.findall(r'<td class="check-help">(.*?)</td>', html, re.S)
        assert helps and all(h.strip() for h in helps), lang
        assert marker in html


def test_the_form_signs_off_findings_and_decides_each_file(world):
    svc, client, job_id, _ = world
    html = page(client, job_id)
    files = dict(re.findall(r'name="file-(\d+)-name" value="([^"]+)"', html))
    boxes = re.findall(r'id="signoff-(\d+)-(\d+)" name="signoff-\d+-\d+" value="([^"]+)"', html)
    form = {"csrf_token": "t", "decision": "files"}
    for i, name in files.items():
        form[f"file-{i}-name"], form[f"file-{i}-decision"] = name, "approve"
    form.update({f"signoff-{i}-{j}": check for i, j, check in boxes[:-1]})    # one finding left out
    resp = client.post(f"/ui/reviews/{job_id}", data=form)
    # Refused: the review page again (400), with what was ticked still ticked (issue 17).
    i0, j0, check0 = boxes[0]
    assert resp.status_code == 400
    assert f'name="signoff-{i0}-{j0}" value="{check0}" checked' in resp.get_data(as_text=True)
    assert svc.views.get_job(user(svc, "reviewer"), job_id)["state"] == st.AWAITING_REVIEW
    i, j, check = boxes[-1]
    form[f"signoff-{i}-{j}"], form[f"signoff-{i}-{j}-note"] = check, "read every line"
    resp = client.post(f"/ui/reviews/{job_id}", data=form)
    assert resp.status_code == 302 and resp.location.endswith("/ui/reviews")
    assert svc.views.get_job(user(svc, "reviewer"), job_id)["state"] == st.RELEASED
    vote = svc.compliance.review_detail(user(svc, "reviewer"), job_id)["reviews"][0]
    assert len(vote["signoffs"]) == len(boxes) and {"output": files[i], "check": check,
                                                    "note": "read every line"} in vote["signoffs"]
    assert "✓ reviewer: read every line" in page(client, job_id)

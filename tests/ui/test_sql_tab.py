"""The query page's SQL tab without a browser (Flask's test client, fakes): the schema beside
the editor, the live cost preview with each query's 95% interval, refusals shown in place,
and a submission that opens the job page."""
from __future__ import annotations

import pytest

from sandbox.controller.web import auth, create_app
from tests.unit import test_lifecycle_fakes as fakes
from tests.unit.test_lifecycle_fakes import make

tiny_datasets = fakes.tiny_datasets
SQL = "SELECT entity_type, COUNT(*) AS n, AVG(employees) AS m FROM enterprise_registry GROUP BY entity_type"


@pytest.fixture
def client(tmp_path, tiny_datasets):
    svc, _queue, _clock, _ = make(tmp_path, tiny_datasets)
    app = create_app(svc.settings, services=svc)
    c = app.test_client()
    auth.set_password(svc, "operator", "a-long-passphrase-1")
    with c.session_transaction() as s:
        s["user"], s["pw"], s["csrf"], s["lang"] = "operator", auth._pw_marker(svc.accounts.user("operator")), "t", "en"
    return c


def _form(sql=SQL, epsilon="0.4", **extra):
    return {"csrf_token": "t", "dataset": "enterprise_registry", "purpose": "business_environment_analysis",
            "sql_text": sql, "sql_epsilon": epsilon, **extra}


def test_the_sql_tab_shows_the_schema_beside_the_editor(client):
    html = client.get("/ui/jobs/new?dataset=enterprise_registry").get_data(as_text=True)
    assert 'id="sql-tab"' in html and 'id="sql-text"' in html and 'id="sql-schema"' in html
    assert "<code>entity_type</code>" in html and "<code>employees</code>" in html


def test_the_live_preview_states_cost_and_interval(client):
    resp = client.post("/ui/jobs/sql/preview", data=_form())
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "would be admitted" in html and "ε 0.4" in html
    assert "Interval per cell" in html and html.count("<tr") >= 3   # header + one row per aggregate


def test_a_refusal_names_the_part_to_change_in_place(client):
    html = client.post("/ui/jobs/sql/preview", data=_form(sql="SELECT * FROM enterprise_registry")).get_data(
        as_text=True)
    assert 'id="preview-error"' in html and "SELECT *" in html


def test_submitting_sql_opens_the_job_page(client):
    resp = client.post("/ui/jobs/sql", data=_form(action="submit"))
    assert resp.status_code == 302 and "/ui/jobs/" in resp.headers["Location"]


def test_the_preview_in_chinese_with_a_quantile_and_a_mean(client):
    with client.session_transaction() as s:
        s["lang"] = "zh"
    sql = "SELECT MEDIAN(employees) AS med, AVG(employees) AS m FROM enterprise_registry"
    html = client.post("/ui/jobs/sql/preview", data=_form(sql=sql)).get_data(as_text=True)
    assert "每个单元的区间" in html and "排名 ±" in html and "逐单元给出" in html
    html = client.post("/ui/jobs/sql/preview", data=_form(sql="SELECT * FROM enterprise_registry")).get_data(
        as_text=True)
    assert "SELECT * 会发布逐行数据" in html


def test_the_preview_states_a_quantiles_interval_per_cell_and_its_rank_error(client):
    sql = "SELECT entity_type, MEDIAN(employees) AS med FROM enterprise_registry GROUP BY entity_type"
    html = client.post("/ui/jobs/sql/preview", data=_form(sql=sql)).get_data(as_text=True)
    assert "per cell, in the release" in html and "rank ±" in html and "bound_shift_rows" in html

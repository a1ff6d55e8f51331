"""The budget ledger is sealed by the audit chain (issue 16): a ledger row edited, deleted or
inserted in the database fails `audit verify`, naming the row, and a ledger that breaks its
own invariants is a 503 refusal on /budget and submissions, never a 500 or a refund."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import delete, select, update

from sandbox.adapters.store.models import LedgerEntry
from sandbox.controller.web import create_app
from tests.conftest import make_services
from tests.integration.test_ledger_store import TIGHT_POLICY, spec

OPERATOR = {"Authorization": "Bearer op-token"}


@pytest.fixture
def world(database_url, demo_datasets_dir, tmp_path):
    svc = make_services(tmp_path, demo_datasets_dir, database_url=database_url, policy=TIGHT_POLICY,
                        users=[("operator", "operator", "op-token")])
    user = svc.accounts.authenticate("op-token")
    job_id = svc.operator.submit(user, spec(0.3))["job"]["id"]
    assert svc.agent.claim(job_id) is not None  # running: the reserve is charged
    yield svc, user, job_id
    svc.dispose()


def set_ledger(svc, job_id, kinds, **values):
    with svc.store.transaction() as s:
        s.execute(update(LedgerEntry).where(LedgerEntry.job_id == job_id, LedgerEntry.kind.in_(kinds))
                  .values(**values))


def entry_id(svc, job_id, kind) -> int:
    with svc.store.transaction() as s:
        return s.execute(select(LedgerEntry.id).where(LedgerEntry.job_id == job_id,
                                                      LedgerEntry.kind == kind)).scalar_one()


def test_an_untouched_ledger_verifies(world):
    svc, _user, _job = world
    result = svc.views.audit_verify()
    assert result["ok"], result["problems"]
    assert result["ledger_entries"] == 2


def test_zeroing_a_jobs_reserve_and_charge_fails_verify_naming_both_rows(world):
    svc, user, job_id = world
    assert svc.views.balance(user, "health_visits")["period_available"] == pytest.approx(0.7)
    set_ledger(svc, job_id, ["reserve", "charge"], epsilon=0.0)
    result = svc.views.audit_verify()
    assert not result["ok"]
    for kind in ("reserve", "charge"):
        assert any(f"ledger entry id={entry_id(svc, job_id, kind)} ({kind} of job {job_id}" in p
                   and "epsilon is 0.0, sealed as 0.3" in p for p in result["problems"]), result["problems"]


def test_editing_only_the_charge_fails_verify_and_is_a_503_not_a_500(world, caplog):
    svc, user, job_id = world
    set_ledger(svc, job_id, ["charge"], epsilon=0.0)
    problems = svc.views.audit_verify()["problems"]
    assert any(f"charge of job {job_id}" in p and "modified" in p for p in problems)
    client = create_app(svc.settings, services=svc).test_client()
    with caplog.at_level(logging.ERROR, logger="sandbox.ledger"):
        budget = client.get("/api/v1/budget/health_visits", headers=OPERATOR)
        submitted = client.post("/api/v1/jobs", json=spec(0.1), headers=OPERATOR)
    for resp in (budget, submitted):
        assert resp.status_code == 503, resp.get_json()
        assert resp.get_json()["error"] == "ledger_unavailable"
        assert "health_visits" in resp.get_json()["message"] and job_id not in resp.get_json()["message"]
    assert any(job_id in r.getMessage() for r in caplog.records)  # the administrators' log names the job


def test_a_deleted_or_inserted_ledger_row_fails_verify(world):
    svc, _user, job_id = world
    charge = entry_id(svc, job_id, "charge")
    with svc.store.transaction() as s:
        # Inserted first: SQLite would hand the deleted row's id to the new one.
        s.add(LedgerEntry(dataset="health_visits", operator="operator", job_id="forged", kind="reserve",
                          resolution="reserve", epsilon=0.1, delta=0.0))
        s.flush()
        s.execute(delete(LedgerEntry).where(LedgerEntry.id == charge))
    problems = svc.views.audit_verify()["problems"]
    assert any(f"ledger entry id={charge}" in p and "missing from the ledger" in p for p in problems)
    assert any("reserve of job forged" in p and "not sealed" in p for p in problems)


def test_the_web_ui_shows_a_broken_ledger_as_a_page_in_the_users_language(world):
    import json

    from sandbox.controller.web import auth
    svc, _user, job_id = world
    set_ledger(svc, job_id, ["charge"], epsilon=0.0)
    client = create_app(svc.settings, services=svc).test_client()
    auth.set_password(svc, "operator", "a-long-passphrase-1")
    with client.session_transaction() as s:
        s["user"], s["pw"], s["csrf"], s["lang"] = "operator", auth._pw_marker(svc.accounts.user("operator")), "t", "zh"
    resp = client.post("/ui/jobs/spec", data={"spec_text": json.dumps(spec(0.1)), "action": "preview",
                                              "dataset": "health_visits", "csrf_token": "t"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 503 and "隐私预算账本未通过完整性校验" in html and "Traceback" not in html

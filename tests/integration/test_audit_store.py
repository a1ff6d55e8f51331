"""The audit log in the real store: tampering with rows is detected and located."""
from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update

from sandbox.bootstrap import bootstrap
from sandbox.config import load
from sandbox.adapters.store.models import AuditEvent
from tests.conftest import make_env


@pytest.fixture
def services(database_url, tmp_path):
    svc = bootstrap(load(make_env(tmp_path, database_url, tmp_path / "data")), enqueue=lambda _j: None)
    for i in range(6):
        svc.accounts.create_user(f"user{i}", "operator")
    yield svc
    svc.dispose()


def test_untouched_log_verifies(services):
    result = services.views.audit_verify()
    assert result["ok"] and result["entries"] == 6 and result["head"]["seq"] == 6


def test_modified_row_is_detected(services):
    with services.store.transaction() as s:
        s.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(actor="mallory"))
    result = services.views.audit_verify()
    assert not result["ok"] and any("seq=3" in p for p in result["problems"])


def test_deleted_row_is_detected(services):
    with services.store.transaction() as s:
        s.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
    assert not services.views.audit_verify()["ok"]


def test_deleted_last_row_is_detected_through_the_head(services):
    with services.store.transaction() as s:
        s.execute(delete(AuditEvent).where(AuditEvent.seq == 6))
    result = services.views.audit_verify()
    assert not result["ok"] and any("head" in p for p in result["problems"])


def test_reordered_rows_are_detected(services):
    with services.store.transaction() as s:
        a, b = (s.execute(select(AuditEvent).where(AuditEvent.seq == n)).scalar_one() for n in (2, 4))
        fields = ("at", "actor", "action", "subject", "payload", "prev_hash", "hash")
        va, vb = ({f: getattr(a, f) for f in fields}, {f: getattr(b, f) for f in fields})
        for f in fields:
            setattr(a, f, vb[f])
            setattr(b, f, va[f])
    assert not services.views.audit_verify()["ok"]


def test_inserted_row_is_detected(services):
    with services.store.transaction() as s:
        s.execute(update(AuditEvent).where(AuditEvent.seq >= 4).values(seq=AuditEvent.seq + 100))
        last = s.execute(select(AuditEvent).where(AuditEvent.seq == 3)).scalar_one()
        s.add(AuditEvent(seq=4, at=last.at, actor="mallory", action="user.token_issued", subject="x",
                         payload={}, prev_hash=last.hash, hash=last.hash))
    assert not services.views.audit_verify()["ok"]

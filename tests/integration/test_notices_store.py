"""Notices round-trip through both repositories (SQL on SQLite and PostgreSQL, and the in-memory
one): one per (recipient, dedup_key), listed by visible_at (never by when they were created),
filtered by visibility, read and mailed state, each change with its audit event."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sandbox.core import states as st
from sandbox.core.records import Event, Notice, User
from tests.integration.repositories import BACKENDS, each_repository

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


@pytest.fixture(params=BACKENDS)
def repo(request, tmp_path):
    yield from each_repository(request, tmp_path, lambda: T0)


def notice(nid, key, hours, created_hours=0, recipient="op"):
    return Notice(id=nid, recipient=recipient, kind="released", subject="j", params={"job": "j", "dataset": "d"},
                  visible_at=T0 + timedelta(hours=hours), dedup_key=key, created_at=T0 + timedelta(hours=created_hours))


def test_notices_round_trip_in_order_of_visibility_once_per_key(repo):
    with repo.transaction() as tx:
        tx.save_user(User("op", st.OPERATOR, "h1", email="op@example.org"), Event("admin", "user", "op"))
        tx.save_user(User("rev", st.COMPLIANCE, "h2"), Event("admin", "user", "rev"))
        added = [tx.add_notice(notice("a", "k1", 3, created_hours=0), Event("system", "n", "a")),
                 tx.add_notice(notice("b", "k2", 1, created_hours=5), Event("system", "n", "b")),
                 tx.add_notice(notice("c", "k1", 0), Event("system", "n", "c")),
                 tx.add_notice(notice("d", "k1", 0, recipient="rev"), Event("system", "n", "d"))]
        head_after_adds = tx.audit_head()[0]
    assert added == [True, True, False, True]
    assert head_after_adds == 2 + 3   # two users, three notices: the duplicate recorded nothing
    with repo.transaction() as tx:
        assert [n.id for n in tx.notices("op")] == ["a", "b"]    # by visible_at, not by created_at
        assert [n.id for n in tx.notices("op", visible_by=T0 + timedelta(hours=2))] == ["b"]
        assert [u.name for u in tx.users(st.COMPLIANCE)] == ["rev"]
        assert tx.user_by_name("op").email == "op@example.org" and tx.user_by_name("rev").email is None
        a = tx.notice("a", for_update=True)
        assert a.params == {"job": "j", "dataset": "d"} and a.visible_at == T0 + timedelta(hours=3)
        a.read_at, a.emailed_at = T0 + timedelta(hours=4), T0 + timedelta(hours=4)
        tx.save_notice(a, Event("op", "notice.read", "a"))
    with repo.transaction() as tx:
        assert [n.id for n in tx.notices("op", unread_only=True)] == ["b"]
        assert [n.id for n in tx.notices(unemailed_only=True)] == ["b", "d"]
        assert tx.notice("a").read_at == T0 + timedelta(hours=4)
        assert tx.notice("zz") is None and tx.notice("x" * 40) is None
        assert tx.audit_records()[-1].action == "notice.read"

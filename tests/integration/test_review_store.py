"""Votes with per-file decisions and sign-offs round-trip through both repositories (SQL on
SQLite and PostgreSQL, and the in-memory one), each with its audit event; a migrated database
from before revision 0006 keeps its votes, with no file decisions and no sign-offs."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from sandbox.adapters.store.db import Store
from sandbox.adapters.store.repository import SqlRepository
from sandbox.core.records import Event, Job, Review
from tests.integration.repositories import BACKENDS, each_repository

FILES = {"t.csv": {"decision": "approve", "reason": "", "note": ""},
         "notes.txt": {"decision": "request_changes", "reason": "", "note": "compliance only: 区县 7"}}
SIGNOFFS = [{"output": "t.csv", "check": "dominance_p:t.csv", "note": "checked the two largest firms"}]


def _clock():
    return datetime(2026, 12, 1, tzinfo=timezone.utc)


@pytest.fixture(params=BACKENDS)
def repo(request, tmp_path):
    yield from each_repository(request, tmp_path, _clock)


def _job() -> Job:
    return Job(id="j1", operator="op", dataset="enterprise_registry", mode="reviewed", purpose="p", spec={},
               spec_hash="0" * 64, epsilon=0.0, state="awaiting_review")


def test_a_vote_keeps_its_file_decisions_and_sign_offs(repo):
    with repo.transaction() as tx:
        tx.add_job(_job(), Event("op", "job.submitted", "j1"))
        tx.add_review(Review(job_id="j1", reviewer="rev", decision="reject", reason="changes_requested",
                             note="n", files=FILES, signoffs=SIGNOFFS),
                      Event("rev", "review.vote", "j1", {"files": FILES, "signoffs": SIGNOFFS}))
        tx.add_review(Review(job_id="j1", reviewer="rev2", decision="approve"), Event("rev2", "review.vote", "j1"))
    with repo.transaction() as tx:
        first, second = tx.reviews("j1")
        audit = [a for a in tx.audit_records() if a.action == "review.vote"]
    assert (first.files, first.signoffs) == (FILES, SIGNOFFS)
    assert (second.files, second.signoffs) == ({}, [])        # a vote without them
    assert audit[0].payload["signoffs"] == SIGNOFFS and len(audit) == 2


def test_votes_from_before_revision_0006_have_no_file_decisions_or_sign_offs(database_url):
    import sqlalchemy as sa
    from alembic import command

    store = Store(database_url)
    cfg = store.alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
        conn.execute(sa.text(
            "INSERT INTO jobs (id, operator, dataset, mode, purpose, spec, spec_hash, code, compliance, epsilon, "
            "delta, state, policy_hash, dataset_version, reviewers_required, message, attempts, backend, "
            "created_at, updated_at) VALUES ('j1', 'op', 'd', 'reviewed', 'p', '{}', 'h', '', '{}', 0, 0, "
            "'released', '', '', 1, '', 0, '', :t, :t)"), {"t": _clock()})
        conn.execute(sa.text("INSERT INTO reviews (job_id, reviewer, decision, reason, note, at) "
                             "VALUES ('j1', 'rev', 'approve', '', '', :t)"), {"t": _clock()})
        command.upgrade(cfg, "head")
    with SqlRepository(store, _clock).transaction() as tx:
        (old,) = tx.reviews("j1")
    store.dispose()
    assert (old.decision, old.files, old.signoffs) == ("approve", {}, [])

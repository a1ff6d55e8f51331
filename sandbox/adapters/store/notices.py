"""The notices part of the SQL repository (adapters/store/repository.py), kept apart so each
file reads in one sitting. Same contract as the in-memory one (core/ports.py: Tx)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from sandbox.adapters.store import models as m
from sandbox.core import records as r


class SqlNotices:
    """Mixed into SqlTx: `self.s` is the session, `self._all`/`self.record` its helpers."""

    def users(self, role=None):
        q = select(m.User).order_by(m.User.name)
        if role is not None:
            q = q.where(m.User.role == role)
        return self._all(r.User, q)

    def add_notice(self, notice, event):
        from sandbox.adapters.store.repository import to_row
        exists = select(m.Notice.id).where(m.Notice.recipient == notice.recipient,
                                           m.Notice.dedup_key == notice.dedup_key)
        if self.s.execute(exists).first() is not None:
            return False
        try:
            with self.s.begin_nested():
                self.s.add(to_row(notice, m.Notice()))
        except IntegrityError:
            return False  # a concurrent scan added it first
        self.record(event)
        return True

    def save_notice(self, notice, event):
        row = self.s.get(m.Notice, notice.id)
        if row is None:
            raise KeyError(f"no notice {notice.id}")
        self.record(event)
        row.read_at, row.emailed_at = notice.read_at, notice.emailed_at

    def notice(self, notice_id, *, for_update=False):
        from sandbox.adapters.store.repository import to_record
        if not isinstance(notice_id, str) or len(notice_id) > 32:
            return None
        stmt = select(m.Notice).where(m.Notice.id == notice_id)
        row = self.store.lock_for_update(self.s, stmt) if for_update else self.s.execute(stmt).scalar_one_or_none()
        return to_record(row, r.Notice)

    def notices(self, recipient=None, *, visible_by=None, unread_only=False, unemailed_only=False, limit=None):
        q = select(m.Notice)
        if recipient is not None:
            q = q.where(m.Notice.recipient == recipient)
        if visible_by is not None:
            q = q.where(m.Notice.visible_at <= visible_by)
        if unread_only:
            q = q.where(m.Notice.read_at.is_(None))
        if unemailed_only:
            q = q.where(m.Notice.emailed_at.is_(None))
        q = q.order_by(m.Notice.visible_at.desc(), m.Notice.id.desc())
        if limit is not None:
            q = q.limit(limit)
        return self._all(r.Notice, q)

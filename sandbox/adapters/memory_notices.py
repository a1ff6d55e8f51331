"""The notices part of the in-memory repository (adapters/memory.py), kept apart so each
file reads in one sitting. Same contract as the SQL one (core/ports.py: Tx)."""
from __future__ import annotations

import copy


class MemoryNotices:
    """Mixed into MemoryTx: `self.st.notices` is a list of Notice, `self.st.users` a dict."""

    def users(self, role=None):
        return self._copies(self.st.users[k] for k in sorted(self.st.users)
                            if role is None or self.st.users[k].role == role)

    def add_notice(self, notice, event):
        if any((n.recipient, n.dedup_key) == (notice.recipient, notice.dedup_key) for n in self.st.notices):
            return False
        self.record(event)
        self.st.notices.append(copy.deepcopy(notice))
        return True

    def save_notice(self, notice, event):
        self.record(event)
        for n in self.st.notices:
            if n.id == notice.id:
                n.read_at, n.emailed_at = notice.read_at, notice.emailed_at

    def notice(self, notice_id, *, for_update=False):
        return next((copy.deepcopy(n) for n in self.st.notices if n.id == notice_id), None)

    def notices(self, recipient=None, *, visible_by=None, unread_only=False, unemailed_only=False, limit=None):
        found = [n for n in self.st.notices
                 if (recipient is None or n.recipient == recipient)
                 and (visible_by is None or n.visible_at <= visible_by)
                 and not (unread_only and n.read_at is not None)
                 and not (unemailed_only and n.emailed_at is not None)]
        found.sort(key=lambda n: n.id, reverse=True)
        found.sort(key=lambda n: n.visible_at, reverse=True)
        return self._copies(found[:limit] if limit is not None else found)

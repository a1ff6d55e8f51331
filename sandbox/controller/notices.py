"""Notices (站内信) for every role: the inbox, marking read, mail addresses, and the periodic
work (licence-expiring scan, mailing). What notices exist and when each becomes visible is
core/notices.py's; here a recipient only ever reads notices whose visible_at has passed."""
from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

from sandbox.controller.accounts import SYSTEM_USER
from sandbox.core import notices as nt
from sandbox.core import permissions as perm
from sandbox.core.errors import InvalidInput, NotFound, Text
from sandbox.core.ports import Parts
from sandbox.core.records import Event

log = logging.getLogger(__name__)
TRANSLATIONS = Path(__file__).resolve().parent / "web" / "translations"
EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+")


@lru_cache(maxsize=1)
def _chinese():
    from babel.support import Translations
    return Translations.load(str(TRANSLATIONS), ["zh"])


def in_chinese(message) -> str:
    """A core Text in Chinese without Flask (mail is sent outside any request)."""
    if not isinstance(message, Text):
        return str(message)
    params = {k: in_chinese(v) if isinstance(v, Text) else v for k, v in message.params.items()}
    try:
        return _chinese().gettext(message.template).format(**params)
    except (KeyError, IndexError, ValueError):
        return str(message)


def mail_text(notice) -> tuple[str, str]:
    """(subject, body) of a notice's mail: Chinese, then English. No more than the inbox shows."""
    msg = nt.message(notice)
    subject = Text("Public-data sandbox notice")
    footer = Text("Read your notices in the sandbox's inbox (/ui/inbox).")
    return (f"{in_chinese(subject)} / {subject}",
            f"{in_chinese(msg)}\n{in_chinese(footer)}\n\n{msg}\n{footer}\n")


class Notices:
    def __init__(self, parts: Parts):
        self.p = parts

    # ------------------------------------------------------------ the inbox
    def inbox(self, user, unread_only: bool = False, limit: int = 200) -> dict:
        now = self.p.clock()
        with self.p.repo.transaction() as tx:
            shown = tx.notices(user.name, visible_by=now, unread_only=unread_only, limit=limit)
            unread = len(tx.notices(user.name, visible_by=now, unread_only=True))
        return {"notices": [nt.view(n) for n in shown], "unread": unread}

    def unread_count(self, user) -> int:
        with self.p.repo.transaction() as tx:
            return len(tx.notices(user.name, visible_by=self.p.clock(), unread_only=True))

    def mark_read(self, user, notice_id: str) -> dict:
        now = self.p.clock()
        with self.p.repo.transaction() as tx:
            n = tx.notice(notice_id, for_update=True)
            # Someone else's, or not visible yet: answered as an unknown id.
            if n is None or n.recipient != user.name or n.visible_at > now:
                raise NotFound("no such notice")
            if n.read_at is None:
                n.read_at = now
                tx.save_notice(n, Event(user.name, "notice.read", n.id, {}))
            return nt.view(n)

    def mark_all_read(self, user) -> int:
        now = self.p.clock()
        with self.p.repo.transaction() as tx:
            unread = tx.notices(user.name, visible_by=now, unread_only=True)
            if unread:
                event = Event(user.name, "notice.read_all", user.name, {"count": len(unread)})
                for n in unread:
                    n.read_at = now
                    tx.save_notice(n, event)
        return len(unread)

    def set_email(self, name: str, email: str | None, actor=SYSTEM_USER) -> None:
        """An administrator sets (or, with None/"", clears) where a user's notices are mailed."""
        perm.check(actor, "user.manage")
        email = (email or "").strip() or None
        if email is not None and not EMAIL.fullmatch(email):
            raise InvalidInput(Text("'{email}' is not a mail address", email=email), "email")
        with self.p.repo.transaction() as tx:
            user = tx.user_by_name(name)
            if user is None:
                raise InvalidInput(Text("no user named '{name}'", name=name), "name")
            user.email = email
            tx.save_user(user, Event(actor.name, "user.email_set", name, {"set": email is not None}))

    # ------------------------------------------------------------ periodic, idempotent
    def scan_licences(self) -> int:
        with self.p.repo.transaction() as tx:
            return nt.scan_licences(tx, self.p.clock())

    def send_mail(self, mailer=None) -> dict:
        """Mail every visible, not yet mailed notice to a recipient with an address. Each is
        claimed (emailed_at set) in its own transaction before sending, so concurrent
        senders never mail one twice; a failed send un-claims it for the next round."""
        if mailer is None:
            if not self.p.settings.smtp_url:
                return {"mailed": 0, "failed": 0, "mail": "off"}
            from sandbox.adapters.mail import SmtpMailer
            mailer = SmtpMailer(self.p.settings.smtp_url, self.p.settings.mail_from)
        now = self.p.clock()
        with self.p.repo.transaction() as tx:
            # Only recipients with an address: the others' notices stay in their inbox alone.
            addresses = {u.name: u.email for u in tx.users() if u.active and u.email}
            due = [(n.id, address) for name, address in addresses.items()
                   for n in tx.notices(name, visible_by=now, unemailed_only=True)]
        mailed = failed = 0
        conn = None
        for notice_id, address in due:
            with self.p.repo.transaction() as tx:
                n = tx.notice(notice_id, for_update=True)
                if n is None or n.emailed_at is not None:
                    continue
                n.emailed_at = now
                tx.save_notice(n, Event("system", "notice.emailed", n.id, {"recipient": n.recipient}))
            try:
                conn = conn or mailer.open()
                conn.send_message(mailer.message(address, *mail_text(n)))
                mailed += 1
            except Exception:  # noqa: BLE001 - the next round retries this notice
                log.exception("mailing notice %s failed", notice_id)
                failed, conn = failed + 1, None
                with self.p.repo.transaction() as tx:
                    n = tx.notice(notice_id, for_update=True)
                    n.emailed_at = None
                    tx.save_notice(n, Event("system", "notice.email_failed", n.id, {}))
        if conn is not None:
            try:
                conn.quit()
            except Exception:  # noqa: BLE001 - the mails went; closing is courtesy
                pass
        return {"mailed": mailed, "failed": failed, "mail": "on"}

    def tick(self, mailer=None) -> dict:
        """The periodic work: called by each worker's sweeper and `sandbox notices send-mail`."""
        return {"licence_notices": self.scan_licences(), **self.send_mail(mailer)}

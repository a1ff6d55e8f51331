"""Users: API tokens (stored as SHA-256 only), UI passwords, sign-in records."""
from __future__ import annotations

import hashlib
import secrets

from sandbox.core import permissions as perm
from sandbox.core import states as st
from sandbox.core.errors import InvalidInput, Text
from sandbox.core.ports import Parts
from sandbox.core.records import Event, User

SYSTEM_USER = User(name="system", role=st.SYSTEM, token_hash="")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, parts: Parts):
        self.p = parts

    def create_user(self, name: str, role: str, token: str | None = None, actor=SYSTEM_USER) -> str:
        perm.check(actor, "user.manage")
        if role not in st.ROLES:
            raise InvalidInput(Text("role must be one of {allowed}", allowed=", ".join(st.ROLES)), "role")
        token = token or secrets.token_urlsafe(24)
        with self.p.repo.transaction() as tx:
            user = tx.user_by_name(name) or User(name=name, role=role, token_hash="")
            user.role, user.token_hash = role, token_hash(token)
            tx.save_user(user, Event(actor.name, "user.token_issued", name, {"role": role}))
        return token

    def authenticate(self, token: str) -> User | None:
        if not token:
            return None
        with self.p.repo.transaction() as tx:
            user = tx.user_by_token_hash(token_hash(token))
        return user if user is not None and user.active else None

    def user(self, name: str) -> User | None:
        with self.p.repo.transaction() as tx:
            return tx.user_by_name((name or "").strip())

    def set_password_hash(self, name: str, password_hash: str, actor: str = "system") -> None:
        """Store a UI password hash (hashing is the web layer's, werkzeug)."""
        with self.p.repo.transaction() as tx:
            user = tx.user_by_name(name)
            if user is None:
                raise InvalidInput(Text("no user named '{name}'", name=name), "name")
            user.password_hash = password_hash
            tx.save_user(user, Event(actor, "user.password_set", name, {}))

    def record_sign_in_failure(self, name: str, reason: str) -> None:
        # The name as typed (capped): a flood of guesses shows in the audit log.
        with self.p.repo.transaction() as tx:
            tx.record(Event("anonymous", "user.sign_in_failed", (name or "")[:64], {"reason": reason}))

"""Browser sign-in for the web UI: passwords, sessions, CSRF, role checks.

The JSON API keeps its bearer tokens (sandbox/web/api.py); everything here is for
the server-rendered pages under /ui. Sessions are Flask's signed cookies; the
secret is generated once into settings.home/keys/flask_secret unless the app was
given one. CSRF uses a per-session synchronizer token checked on every unsafe UI
request (the API needs none: a bearer header is never sent by a browser on its own).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import deque
from datetime import timedelta
from functools import wraps
from pathlib import Path
from urllib.parse import urlsplit

from flask import Response, abort, current_app, g, redirect, request, session, url_for
from werkzeug.security import check_password_hash, generate_password_hash

from sandbox.core.errors import InvalidInput
from sandbox.core.records import User

MIN_PASSWORD_CHARS = 10
SESSION_HOURS = 8
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# A hash checked when the user does not exist, so a wrong name costs as long as a
# wrong password; made on first use (nothing at import time).
_dummy_cache: dict = {}
# Password guessing: after MAX_FAILURES wrong passwords for one name within FAILURE_WINDOW,
# that name is refused (right password or not) until the oldest failure is out of the window.
# Kept per web process: `sandbox up` serves from one; several processes each allow as many.
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)


class _Throttle:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, deque] = {}

    def _recent(self, key: str, now: float) -> deque:
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] > FAILURE_WINDOW.total_seconds():
            q.popleft()
        return q

    def blocked(self, key: str) -> bool:
        with self._lock:
            return len(self._recent(key, time.monotonic())) >= MAX_FAILURES

    def failed(self, key: str) -> None:
        with self._lock:
            self._recent(key, time.monotonic()).append(time.monotonic())

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


_throttle = _Throttle()


def sign_in_blocked(name: str) -> bool:
    """True while too many wrong passwords were given for this name (see MAX_FAILURES)."""
    return _throttle.blocked((name or "").strip().lower())


# ------------------------------------------------------------------ secret key
def secret_key_path(settings) -> Path:
    return settings.home / "keys" / "flask_secret"


def load_or_create_secret(settings) -> bytes:
    """One random secret per installation, created atomically (two processes
    starting together must end up with the same key)."""
    path = secret_key_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    key = path.read_text().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} holds no usable secret; delete it to generate a new one")
    return key.encode()


def init_app(app, settings) -> None:
    """Session settings for the UI; called by create_app."""
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_or_create_secret(settings)
    app.config.setdefault("SESSION_COOKIE_NAME", "sandbox_session")
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", timedelta(hours=SESSION_HOURS))


# ------------------------------------------------------------------ passwords
def _dummy_hash() -> str:
    if "h" not in _dummy_cache:
        _dummy_cache["h"] = generate_password_hash(secrets.token_hex(16))
    return _dummy_cache["h"]


def set_password(services, name: str, password: str, actor: str = "system") -> None:
    """Set a user's UI password; the change is audited in the same transaction."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"password: at least {MIN_PASSWORD_CHARS} characters", "password")
    services.accounts.set_password_hash(name, generate_password_hash(password), actor)


def password_is(services, name: str, password: str) -> bool:
    """True if `password` is the user's current one (used to keep setup idempotent)."""
    user = services.accounts.user(name)
    return bool(user and user.password_hash and check_password_hash(user.password_hash, password))


def check_credentials(services, name: str, password: str) -> User | None:
    key = (name or "").strip().lower()
    if _throttle.blocked(key):
        check_password_hash(_dummy_hash(), password or "")  # a refusal costs the same either way
        services.accounts.record_sign_in_failure(name, "throttled")
        return None
    user = services.accounts.user(name)
    if user is None or not user.password_hash or not user.active:
        check_password_hash(_dummy_hash(), password or "")
        _throttle.failed(key)
        services.accounts.record_sign_in_failure(name, "unknown or inactive user")
        return None
    if not check_password_hash(user.password_hash, password or ""):
        _throttle.failed(key)
        services.accounts.record_sign_in_failure(name, "wrong password")
        return None
    _throttle.succeeded(key)
    return user


def _pw_marker(user: User) -> str:
    # Stored in the session: changing the password ends every existing session.
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


# ------------------------------------------------------------------ sessions
def log_in(user: User) -> None:
    lang = session.get("lang")
    session.clear()  # a fresh session (and CSRF token) on every sign-in: no fixation
    if lang:
        session["lang"] = lang
    session["user"] = user.name
    session["pw"] = _pw_marker(user)
    session.permanent = True


def log_out() -> None:
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def current_user() -> User | None:
    """The signed-in user, loaded from the store once per request."""
    if "ui_user" in g:
        return g.ui_user
    user = None
    name = session.get("user")
    if name:
        user = current_app.config["SERVICES"].accounts.user(name)
        if user is None or not user.active or not user.password_hash or session.get("pw") != _pw_marker(user):
            user = None
            log_out()
    g.ui_user = user
    return user


def login_required(*roles):
    """Redirect to sign-in when nobody is signed in; 403 when the role may not see the page."""
    def deco(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if user is None:
                if request.headers.get("HX-Request"):
                    # A polling fragment after the session ended: send the whole page to sign-in.
                    return Response(status=204, headers={"HX-Redirect": url_for("ui.login")})
                return redirect(url_for("ui.login", next=request.full_path.rstrip("?")))
            if roles and user.role not in roles:
                abort(403)
            return view(*args, **kwargs)
        return wrapper
    return deco


def safe_next(target: str | None, default: str) -> str:
    """Only same-site paths: an attacker's link must not bounce a signed-in user elsewhere."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


# ------------------------------------------------------------------ CSRF
def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_protect() -> None:
    """before_request of the UI blueprint: unsafe methods need the session's token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    expected = session.get("csrf") or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="csrf")

"""Password guessing in the web UI is slowed: after a few wrong passwords for one name,
that name cannot sign in for a while, even with the right password."""
from __future__ import annotations

import re

from sandbox.controller.web import auth, create_app
from tests.conftest import make_services


def _csrf(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _sign_in(client, name: str, password: str):
    return client.post("/ui/login", data={"name": name, "password": password,
                                          "csrf_token": _csrf(client, "/ui/login")})


def test_wrong_passwords_pause_signing_in_for_that_name_only(demo_datasets_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(auth, "_throttle", auth._Throttle())  # a fresh count for this test
    svc = make_services(tmp_path, demo_datasets_dir, users=[("alice", "operator", "a-token"),
                                                            ("bob", "operator", "b-token")])
    try:
        for name in ("alice", "bob"):
            auth.set_password(svc, name, "correct horse battery")
        app = create_app(svc.settings, svc)
        client = app.test_client()
        for _ in range(auth.MAX_FAILURES):
            assert _sign_in(client, "alice", "wrong password!").status_code == 401
        blocked = _sign_in(client, "alice", "correct horse battery")
        assert blocked.status_code == 401
        assert "暂停" in blocked.get_data(as_text=True)  # says why, in the default language
        # Every failed sign-in is an audit event, the throttled one included.
        failures = [r for r in svc.views.audit_records() if r.action == "user.sign_in_failed"]
        assert [(r.subject, r.payload["reason"]) for r in failures] == (
            [("alice", "wrong password")] * auth.MAX_FAILURES + [("alice", "throttled")])
        # Another name is not affected, and its right password still works.
        assert _sign_in(app.test_client(), "bob", "correct horse battery").status_code == 302
        # Once the failures are out of the window, the right password works again.
        monkeypatch.setattr(auth, "FAILURE_WINDOW", auth.timedelta(seconds=0))
        assert _sign_in(client, "alice", "correct horse battery").status_code == 302
    finally:
        svc.dispose()

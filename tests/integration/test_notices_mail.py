"""Notices by mail through a real SMTP server (aiosmtpd, in-process on 127.0.0.1), on the real app
(create_app over a real SQL store): the owner is mailed a run waiting for approval, the operator
the refusal; nothing is mailed twice, and a notice not yet visible is not mailed until it is."""
from __future__ import annotations

import json
import re
import socket
import time
from datetime import timedelta
from email import message_from_bytes, policy

import pytest

from sandbox.config import REPO_ROOT
from sandbox.controller.web import create_app
from sandbox.core import notices as nt
from sandbox.core.records import Event
from tests.conftest import make_services

POLICY = re.sub(r"(?m)^run_approval: .*$", "run_approval: owner",
                (REPO_ROOT / "policies" / "health_visits.yaml").read_text(encoding="utf-8"))


class Sink:
    """aiosmtpd handler: keeps every message it is handed."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller
    with socket.socket() as s:   # a free port on the loopback (aiosmtpd needs a fixed one)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, f"smtp://127.0.0.1:{port}"
    controller.stop()


@pytest.fixture
def app(smtp, demo_datasets_dir, tmp_path):
    svc = make_services(tmp_path, demo_datasets_dir, dataset="health_visits", policy=POLICY,
                        users=[("operator", "operator", "op-token"), ("owner", "owner", "owner-token")],
                        SANDBOX_SMTP_URL=smtp[1], SANDBOX_MAIL_FROM="sandbox@example.org")
    svc.notices.set_email("operator", "operator@example.org")
    svc.notices.set_email("owner", "owner@example.org")
    yield svc, create_app(svc.settings, services=svc).test_client()
    svc.dispose()


def call(client, token, method, path, body=None):
    resp = client.open(f"/api/v1{path}", method=method, headers={"Authorization": f"Bearer {token}"},
                       json=body)
    assert resp.status_code < 300, resp.get_data(as_text=True)
    return resp.get_json()


def wait_for(sink, n):
    deadline = time.monotonic() + 10
    while len(sink.messages) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return sink.messages


def test_the_owner_and_the_operator_are_mailed_once_each(app, smtp):
    svc, client = app
    sink, _ = smtp
    spec = json.loads((REPO_ROOT / "jobs" / "health_query.json").read_text())
    job_id = call(client, "op-token", "POST", "/jobs", spec)["job"]["id"]
    owner_inbox = call(client, "owner-token", "GET", "/notices")
    assert [n["kind"] for n in owner_inbox["notices"]] == ["run-approval-needed"] and owner_inbox["unread"] == 1
    assert svc.notices.tick()["mailed"] == 1
    (to, msg), = wait_for(sink, 1)
    assert to == ["owner@example.org"] and msg["From"] == "sandbox@example.org"
    body = msg.get_content()
    assert job_id in body and "等待您批准运行" in body and "waiting for your approval" in body

    call(client, "owner-token", "POST", f"/jobs/{job_id}/run-approval", {"decision": "reject", "reason": "not now"})
    assert svc.notices.tick()["mailed"] == 1
    assert svc.notices.tick()["mailed"] == 0     # idempotent: nothing is mailed twice
    messages = wait_for(sink, 2)
    assert [m[0] for m in messages] == [["owner@example.org"], ["operator@example.org"]]
    assert "rejected" in messages[1][1].get_content() and "not now" not in messages[1][1].get_content()

    mine = call(client, "op-token", "GET", "/notices?unread=1")
    assert [n["kind"] for n in mine["notices"]] == ["rejected"]
    call(client, "op-token", "POST", f"/notices/{mine['notices'][0]['id']}/read")
    assert call(client, "op-token", "GET", "/notices")["unread"] == 0
    assert client.post(f"/api/v1/notices/{owner_inbox['notices'][0]['id']}/read",
                       headers={"Authorization": "Bearer op-token"}).status_code == 404   # not theirs


def test_a_notice_not_yet_visible_is_neither_listed_nor_mailed_until_it_is(app, smtp):
    svc, client = app
    sink, _ = smtp
    now = svc.clock()
    hidden = nt.new_notice("operator", nt.RELEASED, "j1", {"job": "j1", "dataset": "health_visits"},
                           now + timedelta(hours=1), "released:j1", now)
    with svc.repo.transaction() as tx:
        tx.add_notice(hidden, Event("system", "test", "j1"))
    assert svc.notices.tick()["mailed"] == 0 and sink.messages == []
    assert call(client, "op-token", "GET", "/notices") == {"notices": [], "unread": 0}
    svc.clock = lambda: now + timedelta(hours=1)
    assert call(client, "op-token", "GET", "/notices")["unread"] == 1
    assert svc.notices.tick()["mailed"] == 1
    assert wait_for(sink, 1)[0][0] == ["operator@example.org"]

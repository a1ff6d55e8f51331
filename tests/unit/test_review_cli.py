"""`sandbox review decide|approve` pass per-file decisions and sign-offs to the API; a malformed
--file is exit code 2 naming what to write."""
from __future__ import annotations

import pytest

from sandbox.controller import cli
from sandbox.controller.cli import operator


class FakeClient:
    def __init__(self):
        self.calls = []

    def review(self, job_id, decision, reason="", note="", files=None, signoffs=None):
        self.calls.append((job_id, decision, reason, note, files, signoffs))
        return {"id": job_id, "state": "released"}


@pytest.fixture
def client(monkeypatch):
    fake = FakeClient()
    monkeypatch.setattr(operator, "_client", lambda _args: fake)
    return fake


def test_decide_sends_a_decision_per_file_and_the_sign_offs(client, capsys):
    assert cli.main(["review", "decide", "j1", "--file", "t.csv=approve", "--file", "m.json=reject:too_detailed",
                     "--file", "n.txt=request_changes", "--signoff", "t.csv", "suppression:t.csv",
                     "--note", "for compliance", "--json"]) == 0
    assert client.calls == [("j1", None, "", "for compliance",
                             {"t.csv": {"decision": "approve", "reason": ""},
                              "m.json": {"decision": "reject", "reason": "too_detailed"},
                              "n.txt": {"decision": "request_changes", "reason": ""}},
                             [{"output": "t.csv", "check": "suppression:t.csv"}])]
    assert '"released"' in capsys.readouterr().out


def test_approve_takes_sign_offs_for_every_file(client):
    assert cli.main(["review", "approve", "j1", "--signoff", "notes.txt", "free_form:notes.txt"]) == 0
    assert client.calls[0][1] == "approve" and client.calls[0][4] is None
    assert client.calls[0][5] == [{"output": "notes.txt", "check": "free_form:notes.txt"}]


@pytest.mark.parametrize("argv", [["review", "decide", "j1"], ["review", "decide", "j1", "--file", "t.csv"],
                                  ["review", "decide", "j1", "--file", "t.csv=maybe"]])
def test_malformed_decisions_exit_2(client, argv, capsys):
    assert cli.main(argv) == 2 and "error:" in capsys.readouterr().err and not client.calls

"""`sandbox notices`: the inbox for people fits 100 columns; --json prints the API document;
`read` takes one id or --all."""
from __future__ import annotations

import json

from rich.cells import cell_len

from tests.unit import test_cli_output as cli_output

WIDTH = cli_output.WIDTH
run = cli_output.run   # the same fixture: argv in, (exit code, stdout, stderr) out

DOC = {"unread": 1, "notices": [
    {"id": "3f9c0a1b2c3d4e5f", "kind": "released", "subject": "8bc6bd21db5946ea", "at": "2026-12-01T03:13:00+00:00",
     "read": False, "params": {"job": "8bc6bd21db5946ea", "dataset": "health_visits"},
     "message": "Job 8bc6bd21db5946ea on health_visits: released. Its results are on the job's page."},
    {"id": "0a1b2c3d4e5f6a7b", "kind": "budget-low", "subject": "health_visits", "at": "2026-11-30T09:00:00+00:00",
     "read": True, "params": {"dataset": "health_visits", "available": "0.5", "allowance": "5"},
     "message": "Your privacy budget on health_visits this period is below a fifth of the allowance: ε 0.5 of 5 "
                "left."}]}


class Client:
    def __init__(self):
        self.calls = []

    def notices(self, unread=False):
        self.calls.append(("notices", unread))
        return DOC

    def read_notice(self, notice_id):
        self.calls.append(("read", notice_id))
        return dict(DOC["notices"][0], read=True)

    def read_all_notices(self):
        self.calls.append(("read_all",))
        return 1


def test_the_inbox_fits_100_columns_and_json_is_the_document(run):
    client = Client()
    code, out, err = run(["notices", "--unread"], client)
    assert code == 0, err
    assert not [line for line in out.splitlines() if cell_len(line) > WIDTH]
    assert "8bc6bd21db5946ea" in out and "budget-low" in out and "2 notice(s), 1 unread" in out
    assert client.calls == [("notices", True)]
    code, out, _ = run(["notices", "--json"], client)
    assert json.loads(out) == DOC


def test_read_takes_one_id_or_all(run):
    client = Client()
    assert run(["notices", "read", "3f9c0a1b2c3d4e5f"], client)[:2] == (0, "notice 3f9c0a1b2c3d4e5f: read\n")
    assert run(["notices", "read", "--all"], client)[:2] == (0, "1 notice(s) marked read\n")
    assert run(["notices", "read"], client)[0] == 2
    assert client.calls == [("read", "3f9c0a1b2c3d4e5f"), ("read_all",)]

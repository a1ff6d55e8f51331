"""`--wait` keeps a status line on stderr from the caller's own view of the job (the state,
the time until the outcome may be visible, "waiting for review" once an operator's job is
still in progress past that time), follows it through review to the outcome, and exits 0
released, 1 not released, 3 when --timeout ends the wait. `sandbox completion bash` prints a
script that completes commands, subcommands and options."""
from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from sandbox.controller import cli
from sandbox.controller.cli import follow, operator
from sandbox.controller.cli.render import status_line

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)


def view(state, visible_in: float | None = None, **extra):
    """An operator's view of a job (sandbox/core/jobview.py): coarse state, fixed outcome time."""
    v = {"id": "j1", "dataset": "health_visits", "mode": "query", "purpose": "p", "operator": "operator",
         "epsilon": 1.0, "delta": 0.0, "created_at": NOW.isoformat(), "message": "", "state": state, **extra}
    if visible_in is not None:
        v["outcome_visible_after"] = (datetime.now(timezone.utc) + timedelta(seconds=visible_in)).isoformat()
    return v


class Sequence:
    def __init__(self, *views):
        self.views, self.polls = list(views), 0

    def job(self, job_id):
        self.polls += 1
        return self.views.pop(0) if len(self.views) > 1 else self.views[0]


@pytest.fixture
def wait(monkeypatch, capsys):
    monkeypatch.setattr(follow.time, "sleep", lambda _s: None)

    def wait(client, *extra):
        monkeypatch.setattr(operator, "_client", lambda _args: client)
        code = cli.main(["status", "j1", "--wait", *extra])
        out = capsys.readouterr()
        return code, out.out, out.err
    return wait


def test_the_status_line_names_the_wait_and_the_time_left():
    after = (NOW + timedelta(seconds=95)).isoformat()
    assert status_line({"state": "queued"}, NOW) == "queued: waiting for a worker"
    assert status_line({"state": "awaiting_approval"}, NOW) == "waiting for the data owner to approve the run"
    assert status_line({"state": "in_progress", "outcome_visible_after": after}, NOW) == \
        "in progress: the outcome may be visible in 1m 35s"
    # Past the time fixed before the run, an operator's job still in progress is with compliance.
    assert status_line({"state": "in_progress", "outcome_visible_after": after}, NOW + timedelta(seconds=96)) == \
        "waiting for review"
    assert status_line({"state": "awaiting_review"}, NOW) == "waiting for review"   # compliance's own view


def test_wait_follows_through_review_to_the_release(wait):
    jobs = Sequence(view("queued"), view("in_progress", visible_in=60), view("in_progress", visible_in=60),
                    view("in_progress", visible_in=-1), view("in_progress", visible_in=-1), view("released"))
    code, out, err = wait(jobs, "--json")
    assert code == 0 and json.loads(out)["state"] == "released"
    lines = err.splitlines()
    assert lines[0] == "job j1: queued: waiting for a worker"
    assert lines[1].startswith("job j1: in progress: the outcome may be visible in ")
    assert lines[2:] == ["job j1: waiting for review", "job j1: released"]   # one line per change


@pytest.mark.parametrize("outcome", ["rejected", "failed", "cancelled"])
def test_wait_exits_1_when_the_job_ends_without_a_release(wait, outcome):
    code, out, err = wait(Sequence(view("in_progress", visible_in=-1), view(outcome)))
    assert code == 1 and f"job j1: {outcome}" in err and outcome in out


def test_wait_stops_at_the_timeout_with_exit_3(wait):
    jobs = Sequence(view("in_progress", visible_in=-1))
    code, _out, err = wait(jobs, "--timeout", "0")
    assert code == 3 and jobs.polls == 1
    assert "still waiting for review" in err and "sandbox status j1 --wait" in err


def test_submit_wait_prints_the_job_it_followed(wait, monkeypatch, capsys):
    from sandbox.config import REPO_ROOT

    class Client(Sequence):
        def submit(self, text, dry_run=False):
            return {"admitted": True, "reasons": [], "job": view("queued")}
    monkeypatch.setattr(operator, "_client", lambda _args: Client(view("released")))
    assert cli.main(["submit", str(REPO_ROOT / "jobs" / "health_query.json"), "--wait"]) == 0
    out = capsys.readouterr()
    assert "released" in out.out and "job j1: released" in out.err


def _complete(script: str, words: list[str]) -> list[str]:
    """What bash offers after `words` (the last one being completed), using the script."""
    line = " ".join(f"'{w}'" for w in words)
    probe = f'{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _sandbox; echo "${{COMPREPLY[*]}}"'
    return subprocess.run(["bash", "--norc", "-c", probe], capture_output=True, text=True, check=True).stdout.split()


def test_completion_script_completes_commands_subcommands_and_options(capsys):
    assert cli.main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "complete -o default -o bashdefault -F _sandbox sandbox" in script
    assert _complete(script, ["sandbox", "rev"]) == ["review"]
    assert _complete(script, ["sandbox", "--url", "http://x", "bud"]) == ["budget"]
    assert set(_complete(script, ["sandbox", "policy", ""])) == {"validate", "diff", "apply", "versions", "decide"}
    assert "--json" in _complete(script, ["sandbox", "status", "j1", "--"])
    assert set(_complete(script, ["sandbox", "review", "app"])) == {"approve"}

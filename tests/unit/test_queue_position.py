"""What an operator is told about waiting (core/waiting.py): a place among its own jobs whose
outcome is not yet visible, in submission order, from its job views alone; and the CLI's budget
table names the period's refresh date as the web gauge does."""
from __future__ import annotations

import json

from rich.console import Console

from sandbox.config import REPO_ROOT
from sandbox.controller.cli import render
from sandbox.core.waiting import own_position, waiting_jobs


def view(job_id: str, created: str, state: str, **extra) -> dict:
    return {"id": job_id, "created_at": f"2026-12-01T{created}:00+00:00", "state": state, **extra}


VIEWS = [view("c", "10:02", "queued"), view("a", "10:00", "in_progress", outcome_visible_after="2026-12-01T11:00"),
         view("r", "09:00", "released"), view("b", "10:01", "awaiting_approval"), view("f", "09:30", "failed"),
         view("x", "09:45", "cancelled"), view("s", "10:03", "submitted"), view("j", "09:50", "rejected")]


def test_the_position_counts_only_own_jobs_whose_outcome_is_not_visible_in_submission_order():
    assert [v["id"] for v in waiting_jobs(VIEWS)] == ["a", "b", "c", "s"]
    assert own_position(VIEWS, "a") == {"position": 1, "of": 4}
    assert own_position(VIEWS, "c") == {"position": 3, "of": 4}
    assert own_position(VIEWS, "s") == {"position": 4, "of": 4}


def test_a_job_whose_outcome_shows_has_no_position_and_frees_the_next():
    assert own_position(VIEWS, "r") is None and own_position(VIEWS, "missing") is None
    # "a" reaches its fixed time: its view is final now, and only then does "c" move up.
    later = [{**v, "state": "released"} if v["id"] == "a" else v for v in VIEWS]
    assert own_position(later, "c") == {"position": 2, "of": 3}


def test_the_position_reads_nothing_but_the_views_given():
    # Same views in another order, with run facts a staff view would carry: same answer.
    staffish = [{**v, "attempts": 3, "updated_at": "2026-12-01T12:00:00+00:00"} for v in reversed(VIEWS)]
    assert own_position(staffish, "c") == own_position(VIEWS, "c")


def test_the_cli_budget_table_has_the_refresh_date_per_row():
    doc = json.loads((REPO_ROOT / "tests/unit/cli_documents/budget.json").read_text())
    console = Console(width=100, record=True)
    console.print(render.budget(doc))
    lines = console.export_text().splitlines()
    header = next(line for line in lines if "spent" in line and "reserved" in line)
    assert "available" in header and "refreshes" in header
    assert "2027-01-01" in next(line for line in lines if line.startswith("ε this period"))
    assert "never" in next(line for line in lines if line.startswith("ε lifetime"))

"""What the role commands print: by default a summary or table that fits a 100-column
terminal (issue 17), with --json the API's document unchanged, for scripts.

The documents in cli_documents/ were captured from a running sandbox (demo data, the example
job jobs/health_query.json, an operator, the demo owner and a reviewer), so the renderers
are tested on real shapes, including the dry run's 1,001 quantile candidates."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.cells import cell_len

from sandbox.config import REPO_ROOT
from sandbox.controller import cli
from sandbox.controller.cli import operator

DOCS = Path(__file__).parent / "cli_documents"
WIDTH = 100


def doc(name: str):
    return json.loads((DOCS / f"{name}.json").read_text(encoding="utf-8"))


class FakeClient:
    """The HTTP client's read methods, answering with the captured documents."""

    def __init__(self, submit_doc="dry_run", budget_doc="budget"):
        self.submit_doc, self.budget_doc = submit_doc, budget_doc

    def datasets(self):
        return doc("datasets")

    def dataset(self, name):
        return doc("dataset")

    def submit(self, text, dry_run=False):
        return doc(self.submit_doc if dry_run else "submitted")

    def jobs(self, state=None):
        return doc("jobs")

    def job(self, job_id):
        return doc("job_operator_review")

    def budget(self, dataset, operator=None):
        return doc(self.budget_doc)

    def review_queue(self):
        return doc("review_list")

    def review_detail(self, job_id):
        return doc("review_show")

    def review_reasons(self):
        return doc("reasons")

    def consumption(self, dataset):
        return doc("consumption")

    def cancel(self, job_id):
        return doc("cancel")


@pytest.fixture
def run(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", str(WIDTH))

    def run(argv, client=None):
        fake = client or FakeClient()
        monkeypatch.setattr(operator, "_client", lambda _args: fake)
        code = cli.main(argv)
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


HEALTH_QUERY = str(REPO_ROOT / "jobs" / "health_query.json")
# (argv, document --json must print, what the summary must say)
CASES = {
    "datasets": (["datasets"], "datasets", ["health_visits", "enterprise_registry", "甘肃省门诊住院就诊记录"]),
    "dataset": (["datasets", "health_visits"], "dataset", ["privacy unit person_id", "0 .. 100", "兰州市"]),
    "dry-run": (["submit", HEALTH_QUERY, "--dry-run"], "dry_run",
                ["Cost: ε 1", "visits_by_district", "± 50", "± 748,933", "median_cost", "± 990.4 ranks",
                 "relative", "0.42%", "0.13% range", "assumed: 1,000,000 rows"]),
    "submit": (["submit", HEALTH_QUERY], "submitted", ["8bc6bd21db5946ea", "status 8bc6bd21db5946ea --wait"]),
    "jobs": (["jobs"], "jobs", ["8bc6bd21db5946ea", "released"]),
    "status": (["status", "8bc6bd21db5946ea"], "job_operator_review", ["in_progress", "waiting for review"]),
    "budget": (["budget", "health_visits"], "budget", ["ε this period", "ε lifetime", "refreshes 2027-01-01"]),
    "review-list": (["review", "list"], "review_list", ["8bc6bd21db5946ea", "public_health_planning"]),
    "review-show": (["review", "show", "8bc6bd21db5946ea"], "review_show", ["age_histogram.csv", "27 of 27 pass"]),
    "review-reasons": (["review", "reasons"], "reasons", ["disclosure_risk"]),
    "consumption": (["consumption", "health_visits"], "consumption", ["ε charged"]),
    "cancel": (["cancel", "5a70b1c2fdb41ba1"], "cancel", ["Job 5a70b1c2fdb41ba1: cancelled"]),
}


@pytest.mark.parametrize("case", CASES)
def test_default_output_is_a_summary_that_fits_100_columns(run, case):
    argv, _name, says = CASES[case]
    code, out, err = run(argv)
    assert code == 0, err
    lines = out.splitlines()
    too_wide = [line for line in lines if cell_len(line) > WIDTH]
    assert not too_wide, too_wide
    with pytest.raises(ValueError):
        json.loads(out)   # for people, not the raw document
    for text in says:
        assert text in out, (text, out)


def test_the_dry_run_is_one_line_per_query_not_the_candidate_grid(run):
    code, out, _ = run(["submit", HEALTH_QUERY, "--dry-run"])
    assert code == 0 and len(out.splitlines()) < 30
    assert "balance" in out and "before" in out and "after" in out
    assert "9990" not in out   # a quantile candidate (0, 10, ..., 10000)


@pytest.mark.parametrize("name, says", [("dry_run_program", ["mean_cost", "± 269.6", "100 blocks"]),
                                        ("dry_run_reviewed", ["notes.txt", "not differentially private"]),
                                        ("dry_run_sql", ["enterprises_by_district_industry", "± 6"])])
def test_the_dry_run_of_each_mode_fits(run, name, says):
    code, out, _ = run(["submit", HEALTH_QUERY, "--dry-run"], FakeClient(submit_doc=name))
    assert code == 0 and max(map(cell_len, out.splitlines())) <= WIDTH
    for text in says:
        assert text in out, (text, out)


def test_the_dry_run_shows_one_error_measure_the_95_percent_interval(run):
    """Issue 17: the mean absolute error is gone from what people read; the 95% interval stays."""
    _, out, _ = run(["submit", HEALTH_QUERY, "--dry-run"])
    assert "95% interval" in out and "expected error" not in out
    _, out, _ = run(["submit", HEALTH_QUERY, "--dry-run"], FakeClient(submit_doc="dry_run_program"))
    assert "95% interval" in out and "expected error" not in out


def test_a_query_whose_noise_swamps_its_cells_is_flagged_on_its_line_with_what_to_do(run):
    swamped = doc("dry_run_sql")
    swamped["queries"][0]["utility"].update(level="swamped", relative=0.87,
                                            advice=["fewer_groups", "coarser_categories", "more_epsilon"])

    class Swamped(FakeClient):
        def submit(self, text, dry_run=False):
            return swamped
    code, out, _ = run(["submit", HEALTH_QUERY, "--dry-run"], Swamped())
    assert code == 0 and max(map(cell_len, out.splitlines())) <= WIDTH
    line = next(x for x in out.splitlines() if x.startswith("enterprises_by_district_industry "))
    assert "± 6" in line and "87%" in line and "SWAMPED" in line
    assert "the noise may swamp the signal; try fewer groups or coarser" in out and "more ε" in out
    assert "assumed: 200,000 rows" in out


def test_a_budget_table_also_shows_the_dataset_wide_caps_to_the_owner(run):
    code, out, _ = run(["budget", "health_visits", "--operator", "operator"], FakeClient(budget_doc="budget_owner"))
    assert code == 0 and "Dataset-wide" in out and max(map(cell_len, out.splitlines())) <= WIDTH


def test_review_show_names_failed_checks_and_the_findings_to_sign_off(run):
    detail = doc("review_show")
    detail["outputs"][0]["checks"] = [{"name": "min_cell_size", "status": "fail", "explanation": "cell < 10"},
                                      {"name": "free_form", "status": "needs_review", "explanation": "text"}]
    detail["findings"] = [{"output": detail["outputs"][0]["name"], "check": "free_form:notes.txt"}]

    class Reviewed(FakeClient):
        def review_detail(self, job_id):
            return detail
    code, out, _ = run(["review", "show", "j1"], Reviewed())
    assert code == 0 and "0 of 2 pass; fail: min_cell_size; needs review: free_form" in out
    assert "free_form:notes.txt" in out and max(map(cell_len, out.splitlines())) <= WIDTH


@pytest.mark.parametrize("case", CASES)
def test_json_prints_the_api_document_unchanged(run, case):
    argv, name, _ = CASES[case]
    code, out, _ = run([*argv, "--json"])
    assert code == 0 and json.loads(out) == doc(name)


def test_a_refused_submission_exits_1_with_the_reasons(run):
    refused = {"admitted": False, "reasons": ["the licence does not cover this purpose"],
               "job": {**doc("cancel"), "state": "rejected"}}

    class Refusing(FakeClient):
        def submit(self, text, dry_run=False):
            return refused
    code, out, _ = run(["submit", HEALTH_QUERY], Refusing())
    assert code == 1 and "refused" in out and "the licence does not cover this purpose" in out


def test_help_documents_the_exit_codes_and_completion(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out and "\n  3 " in out and "completion bash" in out

"""A reviewed-mode job reviewed from the `sandbox` command line on a real run (bubblewrap):
`review show` lists the findings, `review approve` without their sign-offs is refused, and
`review decide` with a decision per file and every sign-off releases the job."""
from __future__ import annotations

import json

import pytest

from tests.conftest import DEMO_ROWS, make_env, need_backend
from tests.integration.harness import running
from tests.integration.test_cli import cli


@pytest.mark.bwrap
def test_a_reviewed_job_is_signed_off_and_decided_per_file_from_the_cli(demo_datasets_dir, tmp_path):
    need_backend("bwrap")
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'sandbox.db'}", demo_datasets_dir, "bwrap")
    with running(env, DEMO_ROWS) as h:
        h.apply_policy("enterprise_registry", wall_seconds=60)   # trusted tables, then the program
        r = cli(h, "operator", "submit", "jobs/reviewed_enterprise.json", "--json")
        assert r.returncode == 0, r.stderr
        job_id = json.loads(r.stdout)["job"]["id"]
        h.wait_state(job_id, {"awaiting_review"})
        detail = json.loads(cli(h, "reviewer", "review", "show", job_id, "--json").stdout)
        assert detail["outputs"], json.dumps(detail["run_logs"])[:3000]
        findings = [(f["output"], f["check"]) for f in detail["findings"]]
        assert ("notes.txt", "free_form:notes.txt") in findings

        r = cli(h, "reviewer", "review", "approve", job_id)
        assert r.returncode == 1 and "sign off" in r.stderr and "free_form:notes.txt" in r.stderr   # 409
        failing = {o["name"] for o in detail["outputs"] if any(c["status"] == "fail" for c in o["checks"])}
        files = [f"--file={o['name']}={'reject:disclosure_risk' if o['name'] in failing else 'approve'}"
                 for o in detail["outputs"]]
        signoffs = [arg for output, check in findings for arg in ("--signoff", output, check)]
        r = cli(h, "reviewer", "review", "decide", job_id, *files, *signoffs, "--note", "all looked at", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["state"] == ("rejected" if failing else "released")
        vote = json.loads(cli(h, "reviewer", "review", "show", job_id, "--json").stdout)["reviews"][0]
        assert {(s["output"], s["check"]) for s in vote["signoffs"]} == set(findings)

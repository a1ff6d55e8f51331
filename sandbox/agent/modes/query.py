"""Query mode: the trusted runner computes the declared DP statistics in one box."""
from __future__ import annotations

from pathlib import Path

from sandbox.agent.boxes import run_box
from sandbox.agent.modes import GateResult, RunFacts, image_digest, run_log, text_output
from sandbox.core.lookups import job_policy
from sandbox.core.manifest import parse_manifest
from sandbox.core.release import gate
from sandbox.core.errors import Text


def run(work: dict, attempt_dir: Path, backend) -> RunFacts:
    job = {"kind": "query", "spec": work["spec"], "manifest": work["manifest"], "data_dir": "/data",
           "bound_verified": work["bound_verified"], "out_dir": "/out"}
    result, collected = run_box(backend, attempt_dir, Path(work["data_dir"]), job, work["limits"], work["job_id"],
                                expected={"result.json"}, max_files=4)
    raw = collected.accepted.get("result.json")
    name = getattr(backend, "name", "")
    return RunFacts(ok=result.ok and raw is not None, backend=name, runner_image=image_digest(backend),
                    run_log=run_log(work["job_id"], work["attempt"], name, result,
                                    [list(r) for r in collected.refused]),
                    payload=raw)


def judge(tx, job, facts: RunFacts) -> GateResult:
    raw = facts.payload
    checks, parsed = gate.check_query_result(raw, job.spec, parse_manifest(tx.dataset(job.dataset).manifest))
    check_dicts = [c.to_dict() for c in checks]
    if parsed is None:
        return GateResult(check_dicts, failed="output failed the release gate")
    policy = job_policy(tx, job)
    sdc = gate.disclosure_checks_for_query(parsed, job.spec, forbidden_columns=policy.forbidden_columns,
                                           min_group=policy.min_group_size)
    check_dicts += [c.to_dict() for c in sdc]
    if any(c.status == gate.FAIL for c in sdc):
        return GateResult(check_dicts, failed="output failed a disclosure check",
                          operator_message=Text("The output failed a disclosure check; compliance has the details."))
    outputs = [text_output(job.id, "result.json", raw.decode(), check_dicts)]
    outputs += [text_output(job.id, f"{t['name']}.csv", gate.table_csv(t), []) for t in parsed["tables"]]
    return GateResult(check_dicts, outputs=outputs, may_auto_release=True)

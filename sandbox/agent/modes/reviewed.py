"""Reviewed mode: the operator's program writes declared files in one box; every file
goes through the disclosure checks and to a person."""
from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from sandbox.agent.backends import Limits
from sandbox.agent.boxes import run_box
from sandbox.agent.modes import GateResult, RunFacts, image_digest, run_log
from sandbox.core.lookups import job_policy
from sandbox.core.manifest import parse_manifest
from sandbox.core.records import Output
from sandbox.core.release import gate
from sandbox.core.release.differencing import ReleasedAggregate as Agg
from sandbox.core.specs.reviewed import parse_reviewed_spec


def run_program(spec, data_dir: Path, work_dir: Path, limits: Limits, label: str, backend, manifest=None):
    job = {"kind": "reviewed", "program": "/job/program.py", "entrypoint": spec.entrypoint,
           "data_dir": "/data", "out_dir": "/out"}
    if manifest is not None:  # its column types give the data's hive partition columns
        job["manifest"] = manifest.to_dict()
    # Collect everything (declared or not) so compliance sees what was dropped and why.
    return run_box(backend, work_dir, data_dir, job, limits, label, program=spec.code, expected=None,
                   max_files=limits.output_files)


def run(work: dict, attempt_dir: Path, backend) -> RunFacts:
    manifest = parse_manifest(work["manifest"])
    spec = parse_reviewed_spec(work["spec"], manifest, code=work["code"])
    lim = work["limits"]
    limits = Limits(memory_mb=lim.memory_mb, cpus=lim.cpus, wall_seconds=min(lim.wall_seconds, spec.timeout_seconds),
                    output_bytes=lim.output_bytes, output_files=len(spec.outputs) + 8)
    result, collected = run_program(spec, Path(work["data_dir"]), attempt_dir, limits, work["job_id"], backend,
                                    manifest)
    dropped = [[n, "not declared in the output contract"] for n in collected.accepted if not spec.declared(n)]
    refused = [list(r) for r in collected.refused] + dropped
    name = getattr(backend, "name", "")
    return RunFacts(ok=result.ok, backend=name, runner_image=image_digest(backend),
                    run_log=run_log(work["job_id"], work["attempt"], name, result, refused),
                    compliance={"dropped_files": dropped + [list(r) for r in collected.refused]},
                    payload=(spec, collected.accepted, lim.output_bytes))


def judge(tx, job, facts: RunFacts) -> GateResult:
    spec, accepted, output_bytes = facts.payload
    policy = job_policy(tx, job)
    previous = [Agg(r.dataset_version, tuple(r.grouping), {tuple(k): v for k, v in r.cells}, label=f"job {r.job_id}")
                for r in tx.released_aggregates(job.dataset, job.dataset_version)]
    all_checks, outputs = [], []
    for o in spec.outputs:
        data = accepted.get(o.name)
        checks = gate.check_declared_file(o, data, output_bytes, policy, previous, job.dataset_version)
        all_checks += [c.to_dict() for c in checks]
        if data is None:
            continue
        binary = o.type in ("parquet", "png")
        outputs.append(Output(job_id=job.id, name=o.name, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                              content=base64.b64encode(data).decode() if binary else data.decode("utf-8", "replace"),
                              encoding="base64" if binary else "utf-8", checks=[c.to_dict() for c in checks]))
    # Non-DP output always goes to people; failed checks block approval (compliance.review).
    return GateResult(all_checks, outputs=outputs, audit={"dropped": job.compliance.get("dropped_files", [])})

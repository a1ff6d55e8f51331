"""Reviewed mode: the declared tables and models are computed by trusted code in one box
(no operator code in it), the operator's program writes its declared files in another; the
rules run on the trusted statistics, every output goes to a person."""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

from sandbox.agent.backends import Limits, RunResult
from sandbox.agent.boxes import run_box
from sandbox.agent.columnview import data_view
from sandbox.agent.modes import GateResult, RunFacts, image_digest, run_log
from sandbox.agent.outputs import CollectedOutputs
from sandbox.agent.reencode import reencode
from sandbox.core.errors import Text
from sandbox.core.lookups import job_policy
from sandbox.core.manifest import parse_manifest
from sandbox.core.records import Output
from sandbox.core.schedule import Timing
from sandbox.core.release import gate
from sandbox.core.release.checks import PASS, Check
from sandbox.core.release.differencing import ReleasedAggregate as Agg
from sandbox.core.release.trusted import Rules, judge_model, judge_table
from sandbox.core.specs.access import box_manifest
from sandbox.core.specs.reviewed import TRUSTED_RESULT_FILE as TRUSTED_FILE, parse_reviewed_spec


def run_program(spec, data_dir: Path, work_dir: Path, limits: Limits, label: str, backend, manifest=None):
    job = {"kind": "reviewed", "program": "/job/program.py", "entrypoint": spec.entrypoint,
           "data_dir": "/data", "out_dir": "/out"}
    if manifest is not None:  # its column types give the data's hive partition columns
        job["manifest"] = manifest.to_dict()
    # Collect everything (declared or not) so compliance sees what was dropped and why.
    return run_box(backend, work_dir, data_dir, job, limits, label, program=spec.code, expected=None,
                   max_files=limits.output_files)


def run_trusted(spec, manifest, data_dir: Path, work_dir: Path, limits: Limits, label: str, backend):
    """The declared tables and models, computed by the runner alone (sandbox.runner.tables) in
    a box of their own: no operator code runs next to the statistics that decide the release."""
    job = {"kind": "reviewed_tables", "manifest": manifest.to_dict(), "computations": spec.computations(),
           "data_dir": "/data", "out_dir": "/out"}
    return run_box(backend, work_dir, data_dir, job, limits, label, expected={TRUSTED_FILE}, max_files=1)


def run(work: dict, attempt_dir: Path, backend) -> RunFacts:
    manifest = parse_manifest(work["manifest"])
    spec = parse_reviewed_spec(work["spec"], manifest, code=work["code"])
    lim = work["limits"]
    name = getattr(backend, "name", "")
    # Both boxes share the one run time the slot was sized for (lim.wall_seconds, from the
    # executor): a second box must not make the worker's release time depend on the data.
    deadline = time.monotonic() + lim.wall_seconds
    box_start = getattr(work.get("timing"), "box_start_seconds", Timing().box_start_seconds)
    results, refused, dropped, accepted, trusted = [], [], [], {}, None
    if spec.has_computations:
        # The trusted box gets its own calibrated part of the run time (core/schedule.py), so
        # the program's time does not depend on how long the statistics took.
        trusted_wall = min(lim.wall_seconds, work.get("trusted_seconds") or lim.wall_seconds)
        limits = Limits(memory_mb=lim.memory_mb, cpus=lim.cpus, wall_seconds=trusted_wall,
                        output_bytes=lim.output_bytes, output_files=1)
        result, collected = run_trusted(spec, manifest, Path(work["data_dir"]), attempt_dir / "trusted", limits,
                                        f"{work['job_id']}-t", backend)
        trusted = _trusted_result(collected.accepted.get(TRUSTED_FILE)) if result.ok else None
        results.append(("trusted tables and models", result if trusted is not None or not result.ok
                        else replace(result, exit_code=1, stderr=result.stderr + b"\nno readable trusted.json")))
    if spec.has_program:
        left = lim.wall_seconds if not results else deadline - time.monotonic() - box_start
        if results and work.get("trusted_seconds"):  # the program's share follows the trusted share,
            left = min(left, lim.wall_seconds - trusted_wall - box_start)  # however early that ended
        limits = Limits(memory_mb=lim.memory_mb, cpus=lim.cpus, wall_seconds=round(min(left, spec.timeout_seconds), 2),
                        output_bytes=lim.output_bytes, output_files=len(spec.outputs) + 8)
        if limits.wall_seconds < 0.5:   # the trusted box used the run time: no program run
            result = RunResult(exit_code=None, timed_out=True, oom_killed=False, stdout=b"", wall_seconds=0.0,
                               stderr=b"no run time left for the program after the trusted tables and models")
            collected = CollectedOutputs()
        else:
            # The owner's classification: the program's box gets neither the columns kept from
            # reviewed jobs nor their names in its manifest (sandbox.core.specs.access).
            view = data_view(Path(work["data_dir"]), manifest, "reviewed", attempt_dir / "view")
            try:
                result, collected = run_program(spec, view, attempt_dir, limits, work["job_id"],
                                                backend, box_manifest(manifest, "reviewed"))
            finally:
                if view != Path(work["data_dir"]):
                    shutil.rmtree(view, ignore_errors=True)
        accepted = collected.accepted
        dropped = [[n, "not declared in the output contract"] for n in collected.accepted if not spec.declared(n)]
        refused = [list(r) for r in collected.refused]
        results.append(("the operator's program", result))
    combined = _combined(results)
    return RunFacts(ok=combined.ok, backend=name, runner_image=image_digest(backend),
                    run_log=run_log(work["job_id"], work["attempt"], name, combined, refused + dropped),
                    compliance={"dropped_files": dropped + refused},
                    payload=(spec, accepted, lim.output_bytes, trusted))


def _trusted_result(raw: bytes | None) -> dict | None:
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _combined(results: list) -> RunResult:
    """One run log for the attempt's boxes: the first failure's exit code, both outputs."""
    if len(results) == 1:
        return results[0][1]
    failed = next((r for _, r in results if not r.ok), results[-1][1])
    def joined(attr):
        return b"".join(f"--- {what} ---\n".encode() + getattr(r, attr) for what, r in results)
    return RunResult(exit_code=failed.exit_code, timed_out=any(r.timed_out for _, r in results),
                     oom_killed=any(r.oom_killed for _, r in results), stdout=joined("stdout"),
                     stderr=joined("stderr"), wall_seconds=sum(r.wall_seconds for _, r in results))


def judge(tx, job, facts: RunFacts) -> GateResult:
    spec, accepted, output_bytes, trusted = facts.payload
    policy = job_policy(tx, job)
    previous = [Agg(r.dataset_version, tuple(r.grouping), {tuple(k): v for k, v in r.cells}, label=f"job {r.job_id}")
                for r in tx.released_aggregates(job.dataset, job.dataset_version)]
    all_checks, outputs = [], []
    if spec.has_computations:
        for judged in judge_trusted(spec, trusted, policy, job.dataset_version, previous):
            all_checks += [c.to_dict() for c in judged.checks]
            outputs.append(trusted_output(job.id, judged))
    for o in spec.outputs:
        data, checks = judge_free_form(o, accepted.get(o.name), output_bytes, policy, previous, job.dataset_version)
        all_checks += [c.to_dict() for c in checks]
        outputs.append(declared_output(job.id, o, data, checks))
    # Non-DP output always goes to people; failed checks block approval (compliance.review).
    return GateResult(all_checks, outputs=outputs, audit={"dropped": job.compliance.get("dropped_files", [])})


def judge_free_form(declared, raw: bytes | None, output_bytes: int, policy, previous: list, version: str):
    """(re-encoded bytes or None, checks) of one file the program wrote (None: not written).
    Trusted code re-writes the file first: only the re-encoded bytes are checked and stored.
    The real run and the mock run (sandbox.agent.mockrun) both judge files here."""
    data, checks = reencode(declared, raw, output_bytes)
    if data is not None or not checks:  # a refused file already has its failing check
        checks += gate.check_declared_file(declared, data, output_bytes, policy, previous, version)
    return data, checks


def declared_output(job_id: str, declared, data: bytes | None, checks: list) -> Output:
    """A free-form file as trusted code re-wrote it. One that was refused or not written is
    stored empty with its failing check, as a trusted table that could not be computed: the
    reviewer sees why, and the job cannot be approved without it (core.release.decision)."""
    data = data if data is not None else b""
    binary = declared.type in ("parquet", "png")
    return Output(job_id=job_id, name=declared.name, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                  content=base64.b64encode(data).decode() if binary else data.decode("utf-8", "replace"),
                  encoding="base64" if binary else "utf-8", checks=[c.to_dict() for c in checks])


def judge_trusted(spec, trusted: dict, policy, version: str, previous: list) -> list:
    """The rules on every trusted table and model (sandbox.core.release.trusted). Each table
    is also checked against the earlier tables of this job, as if they were released first."""
    rules = Rules(threshold=policy.min_group_size, forbidden_columns=frozenset(policy.forbidden_columns))
    by_name = {r.get("name"): r for r in trusted.get("tables", []) + trusted.get("models", [])}
    judged, earlier = [], list(previous)
    for t in spec.tables:
        one = judge_table(t, by_name.get(t.name, {"error": "missing"}), rules, version=version, previous=earlier)
        one.statistics["rows_without_unit"] = trusted.get("rows_without_unit")
        if one.released is not None:
            earlier.append(one.released)
        judged.append(one)
    for m in spec.models:
        judged.append(judge_model(m, by_name.get(m.name, {"error": "missing"}), rules))
    return judged


def trusted_output(job_id: str, judged) -> Output:
    """A trusted table or model as an Output; its checks carry, for compliance, one more entry
    with the per-cell statistics trusted code computed (`details`). One that could not be
    computed is stored empty with its failing check: the reviewer sees why, and cannot approve it."""
    data = (judged.content or "").encode("utf-8")
    stats = {**Check(f"cell_statistics:{judged.file_name}", PASS,
                     Text("statistics computed by trusted code with this output (kept for compliance)")).to_dict(),
             "details": judged.statistics}
    return Output(job_id=job_id, name=judged.file_name, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                  content=judged.content or "", encoding="utf-8", checks=[c.to_dict() for c in judged.checks] + [stats])

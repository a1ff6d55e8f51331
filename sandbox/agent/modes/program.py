"""Program mode: sample-and-aggregate. The dataset is split into k blocks by a keyed
hash of the privacy unit (a secret per-attempt seed, kept nowhere); each block runs in
its own box (a task of its own); trusted code clamps the k vectors and releases their
DP aggregate."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sandbox.agent import aggregation as saa
from sandbox.agent import blocks
from sandbox.agent.backends import Limits
from sandbox.agent.modes import GateResult, text_output
from sandbox.core.manifest import parse_manifest
from sandbox.core.records import BlockResult, Event
from sandbox.core.release import gate
from sandbox.core.specs.program import parse_program_spec


def program_spec(spec: dict, manifest: dict, code: str):
    return parse_program_spec(spec, parse_manifest(manifest), code=code)


def split(work: dict, attempt_dir: Path) -> dict:
    """Assign the blocks; returns the audit payload (the seed's hash, never the seed)."""
    spec = program_spec(work["spec"], work["manifest"], work["code"])
    seed = blocks.new_block_seed()
    manifest = parse_manifest(work["manifest"])
    blocks.assign_blocks(Path(work["data_dir"]), manifest.privacy_unit, spec.k, seed, attempt_dir / "blocks",
                         column_types={c.name: c.type for c in manifest.columns},
                         drop_columns=tuple(c.name for c in manifest.restricted("program")))
    payload = {"attempt": work["attempt"], "k": spec.k, "seed_sha256": hashlib.sha256(seed).hexdigest()}
    del seed
    return {"k": spec.k, "audit": payload}


def share_blocks(settings, work: dict, attempt_dir: Path) -> dict:
    """With a shared data store, put the attempt's blocks there so any worker host may run
    a block: {block folder: content hash}; {} when blocks stay on this host."""
    from sandbox.agent import objectstore
    if not objectstore.enabled(settings):
        return {}
    return objectstore.push_blocks(settings, work["job_id"], work["attempt"], attempt_dir / "blocks")


def _block_dir(settings, job_id: str, attempt: int, index: int, shared: dict) -> tuple[Path, bool]:
    """(the block's folder on this host, fetched here from the shared store)."""
    from sandbox.agent import objectstore
    name = blocks.BLOCK_DIR.format(index)
    local = settings.jobs_dir / job_id / f"attempt-{attempt}" / "blocks" / name
    if local.is_dir() or name not in shared:
        return local, False
    local.parent.mkdir(parents=True, exist_ok=True)
    return objectstore.fetch_block(settings, job_id, attempt, name, shared[name], local), True


def block_outcome(parts, spec, classification: str, limits, job_id: str, attempt: int, index: int,
                  timing, shared: dict | None = None) -> BlockResult:
    from sandbox.agent.leftovers import clear_work_area
    from sandbox.agent.sources import discard
    attempt_dir = parts.settings.jobs_dir / job_id / f"attempt-{attempt}"
    work_dir = attempt_dir / f"run-{index:04d}"
    clear_work_area(work_dir)
    block_dir, fetched = _block_dir(parts.settings, job_id, attempt, index, shared or {})
    try:
        outcome = saa.run_block(parts.backend_factory(classification), spec, block_dir, work_dir,
                                saa.block_limits(spec, Limits(memory_mb=limits.memory_mb, cpus=limits.cpus),
                                                 timing=timing),
                                label=f"{job_id}-b{index}", timing=timing)
    finally:
        clear_work_area(work_dir)
        if fetched:  # a copy of raw data on a host that does not finish the job: not kept
            discard(block_dir)
    return BlockResult(job_id=job_id, attempt=attempt, block=index, vector=outcome.vector,
                       reason=outcome.reason or "", exit_code=outcome.run.exit_code,
                       wall_seconds=outcome.run.wall_seconds,
                       stderr=outcome.run.stderr.decode("utf-8", "replace")[-4000:])


def block_event(job_id: str, attempt: int, index: int) -> Event:
    return Event("worker", "program.block_done", job_id, {"attempt": attempt, "block": index})


def judge(tx, job, facts) -> GateResult:
    spec = program_spec(job.spec, tx.dataset(job.dataset).manifest, job.code)
    by_block = {r.block: r for r in tx.block_results(job.id, job.attempts)}
    vectors = [by_block[i].vector for i in range(spec.k)]
    result = saa.aggregate(vectors, spec)
    raw = json.dumps(result, allow_nan=False)
    check_dicts = [c.to_dict() for c in gate.check_program_result(raw.encode(), spec)]
    audit = {"blocks": job.compliance.get("blocks")}
    if any(c["status"] == gate.FAIL for c in check_dicts):
        return GateResult(check_dicts, failed="output failed the release gate", audit=audit)
    # Program outputs always go to a person (reviewers_for(program) >= 1).
    return GateResult(check_dicts, audit=audit, outputs=[
        text_output(job.id, "result.json", raw, check_dicts),
        text_output(job.id, "program_output.csv", gate.table_csv(result["tables"][0]), [])])


def blocks_summary(tx, job) -> dict | None:
    """All k blocks of this attempt are in: the compliance summary, else None."""
    spec = program_spec(job.spec, tx.dataset(job.dataset).manifest, job.code)
    results = tx.block_results(job.id, job.attempts)
    if len(results) < spec.k:
        return None
    by_block = {r.block: r for r in results}
    return saa.compliance_summary([by_block[i].reason or None for i in range(spec.k)], spec)


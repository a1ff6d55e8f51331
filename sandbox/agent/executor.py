"""The secure side's use cases: claim a queued job, run it next to the data, and finish
it through one sequence for every mode (record the run, gate, store, release or review).
Also the sweeper that recovers lost workers and lost messages.

Tasks are idempotent: the claim queued -> running is atomic, every later step checks
that the job is still running this attempt, so a redelivered message never runs a job
twice and a worker killed mid-job is recovered by the sweeper (lease expiry).
"""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from sandbox.agent.backends import BackendUnavailable, Limits
from sandbox.agent.leftovers import clear_work_area, sweep_host
from sandbox.agent.modes import RunFacts, image_digest
from sandbox.agent.modes import program as program_mode
from sandbox.agent.modes import query as query_mode
from sandbox.agent.modes import reviewed as reviewed_mode
from sandbox.core import lookups
from sandbox.core import states as st
from sandbox.core.lifecycle import tell, transition
from sandbox.core.lookups import OPERATOR_FAILURE_MESSAGE
from sandbox.core.ports import Parts
from sandbox.core.records import Event, RunLog
from sandbox.core.release import gate
from sandbox.core import schedule

log = logging.getLogger(__name__)
MODES = {"query": query_mode, "reviewed": reviewed_mode, "program": program_mode}


class Executor:
    def __init__(self, parts: Parts, run_blocks_inline: bool = False):
        self.p = parts
        # Without a queue for blocks (tests, the CLI) the blocks run one after another here.
        self.run_blocks_inline = run_blocks_inline

    # ------------------------------------------------------------------ claim
    def claim(self, job_id: str) -> dict | None:
        """queued -> running atomically; returns what the run needs, or None when
        another worker has it or it is no longer runnable (idempotent task)."""
        with self.p.repo.transaction() as tx:
            job = tx.job(job_id, for_update=True)
            if job is None or job.state != st.QUEUED:
                return None
            ds = lookups.dataset(tx, job.dataset)
            lim = lookups.job_policy(tx, job).limits
            now = self.p.clock()
            job.attempts += 1
            size = schedule.size_class(ds.rows)
            timing = self.p.settings.timing_for(ds.classification)
            run_bound = schedule.outcome_delay_seconds(job.mode, job.spec, lim.wall_seconds, size, timing)
            if job.visible_after is None:
                job.visible_after = now + timedelta(seconds=run_bound)
            job.lease_expires = now + timedelta(seconds=run_bound + self.p.settings.lease_margin_seconds)
            transition(tx, job, st.RUNNING, st.SYSTEM, "worker", now, f"attempt {job.attempts}")
            slot = schedule.task_slot_seconds(job.mode, job.spec, lim.wall_seconds, size, timing)
            return {"job_id": job.id, "attempt": job.attempts, "spec": job.spec, "manifest": ds.manifest,
                    "slot_ends": now + timedelta(seconds=slot), "timing": timing,
                    "trusted_seconds": schedule.trusted_run_seconds(job.spec, size, timing),
                    "mode": job.mode, "code": job.code, "data_dir": ds.data_dir,
                    "bound_verified": ds.bound_verified, "classification": ds.classification,
                    "content_hash": ds.version_hash, "current_version": ds.version_id,
                    "job_version": job.dataset_version,
                    "limits": Limits(memory_mb=lim.memory_mb, cpus=lim.cpus, output_bytes=lim.output_bytes,
                                     wall_seconds=schedule.run_seconds(job.mode, job.spec, lim.wall_seconds, size,
                                                                       timing))}

    # ------------------------------------------------------------------ execute
    def execute(self, job_id: str) -> str | None:
        """Run one job end to end on the real data. Safe to call twice. The slot is held
        until its bound, whatever happened in it."""
        work = self.claim(job_id)
        if work is None:
            return None
        try:
            return self._execute(job_id, work)
        finally:
            self._hold_until(work["slot_ends"])

    def _hold_until(self, slot_ends) -> None:
        if self.p.settings.hold_slots:
            remaining = (slot_ends - self.p.clock()).total_seconds()
            if remaining > 0:
                self.p.sleep(remaining)

    def _execute(self, job_id: str, work: dict) -> str | None:
        # Earlier attempts' work areas (a lost worker's) hold copies of raw data: remove them.
        clear_work_area(self.p.settings.jobs_dir / job_id)
        attempt_dir = self.p.settings.jobs_dir / job_id / f"attempt-{work['attempt']}"
        stale, data_dir = self._stale_snapshot(work, self.p.settings)
        work = {**work, "data_dir": str(data_dir)}
        if stale:
            log = RunLog(job_id=job_id, attempt=work["attempt"], backend="none", stderr=stale)
            return self.finish(job_id, work["attempt"], RunFacts(ok=False, backend="", run_log=log))
        backend = self._real_backend(work)
        if backend is None:  # finish() recorded why; the job's state says where it went
            with self.p.repo.transaction() as tx:
                return tx.job(job_id).state
        if work["mode"] == "program":
            return self._start_program(work, attempt_dir)
        facts = MODES[work["mode"]].run(self._box_deadline(work), attempt_dir, backend)
        return self.finish(job_id, work["attempt"], facts)

    def _box_deadline(self, work: dict) -> dict:
        """The box's wall clock ends where the slot leaves only the backend's bookkeeping:
        never later than the calibrated run time, never so late that the slot overruns
        (a run that did would free the worker at a time its data chose)."""
        timing = work["timing"]
        left = (work["slot_ends"] - self.p.clock()).total_seconds() - timing.box_start_seconds - timing.margin_seconds
        wall = max(0.5, min(work["limits"].wall_seconds, round(left, 2)))
        return {**work, "limits": replace(work["limits"], wall_seconds=wall)}

    @staticmethod
    def _stale_snapshot(work: dict, settings) -> tuple[str, str]:
        """(why this job must not read the data (compliance only) or "", the folder to read):
        a job reads exactly the version it was admitted on, re-hashed now, never data
        replaced since. With a shared data store, this host's verified copy of it."""
        from sandbox.agent import objectstore
        from sandbox.agent.ingest import verify_snapshot
        if work["job_version"] != work["current_version"]:
            return "refused to run: the dataset has a new version since this job was admitted", work["data_dir"]
        if objectstore.enabled(settings):
            try:
                return "", str(objectstore.local_copy(settings, work["content_hash"]))
            except objectstore.VersionUnavailable as e:
                # A version registered from a local folder (never pushed) runs where that
                # folder is, if it still hashes right; elsewhere it is refused.
                if verify_snapshot(work["data_dir"], work["content_hash"]):
                    return "", work["data_dir"]
                return f"refused to run: {e}", work["data_dir"]
        if not verify_snapshot(work["data_dir"], work["content_hash"]):
            return "refused to run: the version's files no longer match their registered content hash", work["data_dir"]
        return "", work["data_dir"]

    def finish(self, job_id: str, attempt: int, facts: RunFacts) -> str:
        """The one sequence after the boxes of an attempt are done, for every mode.

        A job that a person releases (reviewers_required >= 1: every program and reviewed job,
        queries under a reviewing policy) goes to compliance whether its run succeeded or
        failed, the failure marked for compliance only: its operator sees the same states and
        times either way (in_progress until the decision). Only a job no person releases (an
        auto-released DP query) ends in `failed`, at its fixed time (docs/security.md)."""
        with self.p.repo.transaction() as tx:
            job = tx.job(job_id, for_update=True)
            if job.state != st.RUNNING or job.attempts != attempt:
                return job.state  # the sweeper moved it on; this attempt's outputs are dropped
            now = self.p.clock()
            job.backend = facts.backend
            job.compliance = {**(job.compliance or {}), **facts.compliance, "runner_image": facts.runner_image}
            if facts.run_log is not None:
                tx.add_run_log(facts.run_log, Event("worker", "job.run_recorded", job.id, {"attempt": attempt}))
            failure = None  # (stage, why for compliance, what the operator reads when no person decides)
            if not facts.ok:
                failure = ("run", "run failed (details in run log)", OPERATOR_FAILURE_MESSAGE, [])
            else:
                transition(tx, job, st.CHECKING, st.SYSTEM, "worker", now)
                verdict = MODES[job.mode].judge(tx, job, facts)
                checked = Event("system", "gate.checks", job.id, {"checks": verdict.checks, **verdict.audit})
                tx.record(checked)
                if verdict.failed:
                    failure = ("gate", verdict.failed, verdict.operator_message or OPERATOR_FAILURE_MESSAGE,
                               verdict.checks)
            actor = "worker" if not facts.ok else "gate"
            if failure is not None and job.reviewers_required > 0:
                stage, why, _message, checks = failure
                # Nothing is stored to release: the reviewer can only reject (compliance.review).
                job.compliance = {**job.compliance, "failed": {"stage": stage, "reason": why, "checks": checks}}
                transition(tx, job, st.AWAITING_REVIEW, st.SYSTEM, actor, now, why)
            elif failure is not None:
                tell(job, failure[2])
                transition(tx, job, st.FAILED, st.SYSTEM, actor, now, failure[1])
            else:
                for output in verdict.outputs:
                    tx.add_output(output, checked)
                needs_human = any(c["status"] == gate.NEEDS_REVIEW for c in verdict.checks)
                # reviewers_required is fixed at admission (0 only for auto-released DP queries).
                if verdict.may_auto_release and job.reviewers_required == 0 and not needs_human:
                    transition(tx, job, st.RELEASED, st.SYSTEM, "gate", now, "automatic release of a DP query")
                else:
                    transition(tx, job, st.AWAITING_REVIEW, st.SYSTEM, "gate", now)
            state = job.state
        clear_work_area(self.p.settings.jobs_dir / job_id)  # nothing of a run outside the store
        if self.p.settings.data_store:
            from sandbox.agent import objectstore  # imports the data readers: the worker's side only
            objectstore.drop_work(self.p.settings, job_id)
        return state

    # ------------------------------------------------------------------ program blocks
    def _start_program(self, work: dict, attempt_dir: Path) -> str:
        split = program_mode.split(work, attempt_dir)
        shared = program_mode.share_blocks(self.p.settings, work, attempt_dir)
        with self.p.repo.transaction() as tx:
            event = Event("system", "program.blocks_assigned", work["job_id"], split["audit"])
            if shared:  # block tasks on other hosts fetch and check them (compliance only)
                job = tx.job(work["job_id"], for_update=True)
                job.compliance = {**(job.compliance or {}), "shared_blocks": shared}
                tx.save_job(job, event)
            else:
                tx.record(event)
        for i in range(split["k"]):
            if self.run_blocks_inline:
                self.run_block(work["job_id"], work["attempt"], i)
            else:
                self.p.queue.send_block(work["job_id"], work["attempt"], i)
        with self.p.repo.transaction() as tx:
            return tx.job(work["job_id"]).state

    def run_block(self, job_id: str, attempt: int, index: int) -> str | None:
        """One block of a program job (a task of its own; idempotent)."""
        with self.p.repo.transaction() as tx:
            job = tx.job(job_id)
            if job is None or job.state != st.RUNNING or job.attempts != attempt:
                return None
            done = any(r.block == index for r in tx.block_results(job_id, attempt))
            ds = lookups.dataset(tx, job.dataset)
            limits = lookups.job_policy(tx, job).limits
            spec = program_mode.program_spec(job.spec, ds.manifest, job.code)
            shared = (job.compliance or {}).get("shared_blocks") or {}
        if done:
            return self._maybe_finish_program(job_id, attempt, ds.classification)
        timing = self.p.settings.timing_for(ds.classification)
        slot_ends = self.p.clock() + timedelta(seconds=schedule.block_slot_seconds(spec.block_timeout_seconds, timing))
        try:
            result = program_mode.block_outcome(self.p, spec, ds.classification, limits, job_id, attempt, index,
                                                timing, shared=shared)
            with self.p.repo.transaction() as tx:
                tx.add_block_result(result, program_mode.block_event(job_id, attempt, index))
            return self._maybe_finish_program(job_id, attempt, ds.classification)
        finally:
            self._hold_until(slot_ends)

    def _maybe_finish_program(self, job_id: str, attempt: int, classification: str) -> str | None:
        with self.p.repo.transaction() as tx:
            job = tx.job(job_id, for_update=True)
            if job.state != st.RUNNING or job.attempts != attempt:
                return job.state
            summary = program_mode.blocks_summary(tx, job)
            if summary is None:
                return job.state
            job.compliance = {**(job.compliance or {}), "blocks": summary}
            tx.save_job(job, Event("worker", "program.blocks_done", job.id, {"attempt": attempt}))
        backend = self._backend_or_none(classification)
        facts = RunFacts(ok=True, backend=getattr(backend, "name", ""), runner_image=image_digest(backend))
        return self.finish(job_id, attempt, facts)

    # ------------------------------------------------------------------ backends
    def _real_backend(self, work: dict):
        """The backend for a real-data run, chosen by the dataset's classification; when
        it cannot run here the job fails (never a weaker box), and compliance learns why."""
        try:
            return self.p.backend_factory(work["classification"])
        except BackendUnavailable as e:
            log = RunLog(job_id=work["job_id"], attempt=work["attempt"], backend="none",
                         stderr=f"isolation backend unavailable: {e}")
            self.finish(work["job_id"], work["attempt"], RunFacts(ok=False, backend="", run_log=log))
            return None

    def _backend_or_none(self, classification: str | None = None):
        try:
            return self.p.backend_factory(classification)
        except Exception:  # noqa: BLE001 - no backend here means nothing of ours is running here
            return None

    # ------------------------------------------------------------------ sweeper
    def sweep(self, queued_grace_seconds: int = 30) -> dict:
        """Recover from lost workers and lost broker messages.

        running with an expired lease -> queued again (charged once already);
        queued for longer than the grace period -> re-sent (the task is idempotent)."""
        now = self.p.clock()
        requeued, resent = [], []
        with self.p.repo.transaction() as tx:
            for job in tx.jobs(states=[st.RUNNING]):
                if job.lease_expires is not None and job.lease_expires < now:
                    job.lease_expires = None
                    transition(tx, job, st.QUEUED, st.SYSTEM, "sweeper", now, "worker lost; lease expired")
                    requeued.append(job.id)
            for job in tx.jobs(states=[st.QUEUED]):
                if job.id not in requeued and job.updated_at < now - timedelta(seconds=queued_grace_seconds):
                    resent.append(job.id)
        # A dead worker of this host may have left boxes (a Docker container outlives its
        # client) and output mounts behind, whichever host requeued its job.
        try:
            sweep_host(self.p.settings.jobs_dir, self._backend_or_none(), self._running_attempts)
        except Exception:  # noqa: BLE001 - the next sweep retries; recovering jobs matters more
            log.exception("removing leftovers failed")
        for job_id in requeued + resent:
            try:
                self.p.queue.send_job(job_id)
            except Exception:  # noqa: BLE001 - the next sweep re-sends
                pass
        return {"requeued": requeued, "resent": resent}

    def _running_attempts(self) -> set[tuple[str, int]]:
        with self.p.repo.transaction() as tx:
            return {(job.id, job.attempts) for job in tx.jobs(states=[st.RUNNING])}

"""Compliance reviewers: the review queue, a review with everything it judges, votes.
Independent reviews: other votes stay hidden until this reviewer has voted.

A rejection reaches the operator only as a reason from a fixed list (core.release.reasons);
the reviewer's note stays with compliance. In DP modes (query, program) a reviewer judges the
code, the spec and the DP output, never what the operator's code made of the real data (block
outcomes, logs, run times): those are `diagnostics`, which open once the job is decided."""
from __future__ import annotations

from sandbox.core import lookups
from sandbox.core import permissions as perm
from sandbox.core import states as st
from sandbox.core.errors import Conflict, InvalidInput, NotFound, Text
from sandbox.core.jobview import job_view
from sandbox.core.lifecycle import tell, transition
from sandbox.core.manifest import parse_manifest
from sandbox.core.ports import Parts
from sandbox.core.records import Event, ReleasedAggregate, Review
from sandbox.core.release import decision as decision_rule
from sandbox.core.release import gate
from sandbox.core.release.reasons import REASONS, reason_text

DP_MODES = frozenset({"query", "program"})
# What a DP-mode reviewer is shown of a job's compliance facts: only what does not depend on
# the data (docs/security.md, "Failures and release decisions"); block outcome counts are not.
DP_REVIEW_FACTS = ("runner_image", "failed")
NOTE_MAX_CHARS = 4000


class Compliance:
    def __init__(self, parts: Parts, views):
        self.p = parts
        self.views = views

    def review_queue(self, user) -> list[dict]:
        perm.check(user, "review.queue")
        jobs = [j for j in self.views.list_jobs(user, st.AWAITING_REVIEW) if j["operator"] != user.name]
        for j in jobs:
            if j["mode"] in DP_MODES:
                j.pop("updated_at", None)  # when the run ended: a run time, shaped by the data
        return jobs

    def review_detail(self, user, job_id: str) -> dict:
        perm.check(user, "review.queue")
        with self.p.repo.transaction() as tx:
            job = lookups.job(tx, job_id)
            perm.check(user, "review.open", perm.Subject(job_operator=job.operator))
            view = job_view(job, user.role, self.p.clock())
            reviews = tx.reviews(job.id)
            voted = any(r.reviewer == user.name for r in reviews)
            outputs = tx.outputs(job.id)
            # Every output in full: the reviewer judges all of it (core.release.decision).
            view["outputs"] = [{"name": o.name, "sha256": o.sha256, "size": o.size, "checks": o.checks,
                                "preview": o.content[:4000], "content": o.content, "encoding": o.encoding,
                                "summary": gate.csv_summary(o.content) if o.name.endswith(".csv") else None}
                               for o in outputs]
            view["findings"] = [{"output": o, "check": c} for o, c in decision_rule.findings(outputs)]
            view["file_decisions"] = list(decision_rule.FILE_DECISIONS)
            if job.mode == "reviewed":
                view["differencing"] = _differencing_context(tx, job, outputs)
            earlier = tx.jobs(operator=job.operator, dataset=job.dataset, created_before=job.created_at, limit=1)
            previous = earlier[0] if earlier else None
            view["spec_diff"] = gate.spec_diff(previous.spec if previous else None, job.spec,
                                               previous.id if previous else None, job.id)
            view["budget_charged"] = {"epsilon": job.epsilon, "delta": job.delta}
            view["code"] = job.code
            facts = job.compliance or {}
            if job.mode in DP_MODES:
                # The decision rests on the code, the spec and the DP output alone.
                view.pop("updated_at", None)
                view["compliance"] = {k: facts[k] for k in DP_REVIEW_FACTS if k in facts}
                view["diagnostics_open"] = job.state in st.TERMINAL   # see diagnostics()
            else:
                # Reviewed mode is not DP: the reviewer sees everything the run produced.
                view["compliance"] = facts
                view["run_logs"] = _run_logs(tx.run_logs(job.id))
                view["diagnostics_open"] = True
            if job.mode in ("program", "reviewed"):
                view["code_diff"] = gate.text_diff(previous.code if previous else None, job.code,
                                                   previous.id if previous else None, job.id)
            view["reviews"] = ([{"reviewer": r.reviewer, "decision": r.decision, "reason": r.reason, "note": r.note,
                                 "files": r.files or {}, "signoffs": r.signoffs or []}
                                for r in reviews] if voted or job.state != st.AWAITING_REVIEW
                               else [{"count": len(reviews)}])
            return view

    def diagnostics(self, user, job_id: str) -> dict:
        """What a job's real runs left for compliance: run logs (stdout, stderr, times) and
        per-block outcomes, to investigate a failure or an attack. In DP modes they are shaped
        by the operator's code on real data, so they open only once the job is decided and
        never inform its release; reviewed mode shows them in the review as well. Audited."""
        perm.check(user, "review.queue")
        with self.p.repo.transaction() as tx:
            job = lookups.job(tx, job_id)
            perm.check(user, "review.open", perm.Subject(job_operator=job.operator))
            if job.mode in DP_MODES and job.state not in st.TERMINAL:
                raise Conflict(Text("the run diagnostics of a DP job open once it is decided; it is {state}",
                                    state=job.state))
            tx.record(Event(user.name, "job.diagnostics_read", job.id, {}))
            return {"id": job.id, "mode": job.mode, "state": job.state, "compliance": job.compliance or {},
                    "run_logs": _run_logs(tx.run_logs(job.id)),
                    "blocks": [{"attempt": b.attempt, "block": b.block, "reason": b.reason or "ok",
                                "exit_code": b.exit_code, "wall_seconds": b.wall_seconds, "stderr": b.stderr}
                               for b in tx.block_results(job.id)]}

    @staticmethod
    def reasons() -> list[dict]:
        """The rejection reasons a reviewer chooses from, in order: code and operator text."""
        return [{"code": code, "text": text} for code, text in REASONS.items()]

    def review(self, user, job_id: str, decision: str | None = None, reason: str = "", note: str = "",
               files: dict | None = None, signoffs: list | None = None) -> dict:
        """One reviewer's vote. Per file (`files`: {name: {decision, reason, note}}): approve,
        request_changes or reject with a reason code; or one `decision` for every file. Approving
        a file needs a sign-off on each of its needs_review findings (`signoffs`: [{output, check,
        note}]). The job decision follows (core.release.decision); the operator reads only the
        fixed text of its reason. Notes are for compliance only (the vote, the audit log)."""
        perm.check(user, "review.queue")
        if not isinstance(reason, str) or not isinstance(note, str):
            raise InvalidInput(Text("reason and note must be text"), "reason" if not isinstance(reason, str) else "note")
        reason, note = reason.strip(), note.strip()
        if reason:
            reason_text(reason)
        if len(note) > NOTE_MAX_CHARS:
            raise InvalidInput(Text("the note is longer than {n} characters", n=NOTE_MAX_CHARS), "note")
        file_decisions, signed = decision_rule.parse_files(files), decision_rule.parse_signoffs(signoffs)
        with self.p.repo.transaction() as tx:
            job = tx.job(job_id, for_update=True)
            if job is None:
                raise NotFound("no such job")
            perm.check(user, "review.decide", perm.Subject(job_operator=job.operator))
            if job.state != st.AWAITING_REVIEW:
                raise Conflict(Text("job is {state}, not awaiting review", state=job.state))
            votes = tx.reviews(job.id)
            if any(v.reviewer == user.name for v in votes):
                raise Conflict(Text("you have already reviewed this job"))
            outputs = tx.outputs(job.id)
            verdict = decision_rule.decide(outputs, decision, reason if decision != "approve" else "",
                                           file_decisions, signed, run_failed=bool((job.compliance or {}).get("failed")))
            now = self.p.clock()
            vote = Event(user.name, "review.vote", job.id, {
                "decision": verdict.decision, "reason": verdict.reason, "note": note,
                "files": verdict.files_record(), "signoffs": verdict.signoffs_record()})
            review = Review(job_id=job.id, reviewer=user.name, decision=verdict.decision, reason=verdict.reason,
                            note=note, at=now, files=verdict.files_record(), signoffs=verdict.signoffs_record())
            tx.add_review(review, vote)
            if verdict.decision == "reject":
                # The operator reads the fixed text of the reason, never a note.
                tell(job, Text("Rejected by compliance: {reason}", reason=reason_text(verdict.reason)))
                transition(tx, job, st.REJECTED, st.COMPLIANCE, user.name, now, verdict.reason)
            elif decision_rule.valid_approvals([*votes, review], outputs) >= max(1, job.reviewers_required):
                transition(tx, job, st.RELEASED, st.COMPLIANCE, user.name, now, "approved")
                if job.mode == "reviewed":
                    self._record_released_aggregates(tx, job, outputs, vote)
            return job_view(job, user.role, now)

    @staticmethod
    def _record_released_aggregates(tx, job, outputs, event) -> None:
        """Keep every released exact count table for differencing checks of later releases."""
        for name, (grouping, cells) in _count_tables(tx, job, outputs).items():
            tx.add_released_aggregate(ReleasedAggregate(
                dataset=job.dataset, dataset_version=job.dataset_version, grouping=list(grouping),
                job_id=job.id, name=name, cells=[[list(k), v] for k, v in cells.items()]), event)


def _count_tables(tx, job, outputs) -> dict[str, tuple[tuple, dict]]:
    """The count tables among a reviewed job's outputs: {output name: (grouping, {key: count})}.
    Trusted tables with a count aggregate (core.release.trusted.released_aggregate: their
    first count column as released, suppressed cells absent) and declared free-form frequency
    tables (gate.frequency_aggregate). The one reading of released counts: what approval
    records and what the review page names come from here."""
    from sandbox.core.release.trusted import released_aggregate
    from sandbox.core.specs.reviewed import parse_reviewed_spec
    try:
        spec = parse_reviewed_spec(job.spec, parse_manifest(lookups.dataset(tx, job.dataset).manifest), code=job.code)
    except InvalidInput:
        return {}   # a spec of an older form: nothing to compare
    found = {}
    for o in outputs:
        declared = spec.declared(o.name)
        if declared is None:
            agg = released_aggregate(spec, o.name, o.content, job.dataset_version)
        elif declared.table_kind == "frequency":
            agg = gate.frequency_aggregate(o.name, declared.type, o.content, o.encoding, job.dataset_version)
        else:
            agg = None
        if agg is not None and agg.cells:   # an empty (refused) output releases nothing
            found[o.name] = (tuple(agg.grouping), dict(agg.cells))
    return found


def _run_logs(logs) -> list[dict]:
    return [{"attempt": x.attempt, "backend": x.backend, "exit_code": x.exit_code, "timed_out": x.timed_out,
             "oom_killed": x.oom_killed, "wall_seconds": x.wall_seconds, "stdout": x.stdout, "stderr": x.stderr,
             "refused_outputs": x.refused_outputs} for x in logs]


def _differencing_context(tx, job, outputs) -> dict:
    """Which earlier releases of the same dataset version overlap this job's count tables, and
    how (the relation core.release.differencing compares): read-only, from the released
    aggregates. Only their groupings and sizes are named, never their cells."""
    mine = {name: set(grouping) for name, (grouping, _cells) in _count_tables(tx, job, outputs).items()}
    earlier = []
    for a in tx.released_aggregates(job.dataset, job.dataset_version):
        if a.job_id == job.id:
            continue
        theirs = set(a.grouping)
        overlaps = [{"output": name, "relation": _relation(cols, theirs)} for name, cols in mine.items()
                    if cols <= theirs or theirs <= cols]
        earlier.append({"job": a.job_id, "name": a.name, "grouping": list(a.grouping), "cells": len(a.cells),
                        "overlaps": overlaps})
    return {"dataset_version": job.dataset_version, "tables": {n: sorted(c) for n, c in mine.items()},
            "earlier_releases": earlier}


def _relation(mine: set, theirs: set) -> str:
    if mine == theirs:
        return "same grouping"
    return "finer than this output" if mine < theirs else "coarser than this output"

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
            view["outputs"] = [{"name": o.name, "sha256": o.sha256, "size": o.size, "checks": o.checks,
                                "preview": o.content[:4000], "encoding": o.encoding,
                                "summary": gate.csv_summary(o.content) if o.name.endswith(".csv") else None}
                               for o in tx.outputs(job.id)]
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
            view["reviews"] = ([{"reviewer": r.reviewer, "decision": r.decision, "reason": r.reason, "note": r.note}
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

    def review(self, user, job_id: str, decision: str, reason: str = "", note: str = "") -> dict:
        """Approve, or reject with `reason`, a code of core.release.reasons (the operator reads
        its fixed text). `note` is free text for compliance only (the vote, the audit log)."""
        perm.check(user, "review.queue")
        if decision not in ("approve", "reject"):
            raise InvalidInput(Text("decision must be 'approve' or 'reject'"), "decision")
        if not isinstance(reason, str) or not isinstance(note, str):
            raise InvalidInput(Text("reason and note must be text"), "reason" if not isinstance(reason, str) else "note")
        reason, note = (reason.strip() if decision == "reject" else ""), note.strip()
        if decision == "reject" and not reason:
            raise InvalidInput(Text("a rejection needs a reason from the list: {codes}", codes=", ".join(REASONS)),
                               "reason")
        operator_text = reason_text(reason) if decision == "reject" else None
        if len(note) > NOTE_MAX_CHARS:
            raise InvalidInput(Text("the note is longer than {n} characters", n=NOTE_MAX_CHARS), "note")
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
            if decision == "approve":
                if (job.compliance or {}).get("failed"):
                    raise Conflict(Text("cannot approve: the run failed and left nothing to release; reject it "
                                        "(reason run_failed)"))
                failed = [o.name for o in outputs if any(c.get("status") == gate.FAIL for c in (o.checks or []))]
                if failed:
                    raise Conflict(Text("cannot approve: disclosure checks failed for {outputs}; reject with a reason",
                                        outputs=", ".join(failed)))
            now = self.p.clock()
            vote = Event(user.name, "review.vote", job.id, {"decision": decision, "reason": reason, "note": note})
            tx.add_review(Review(job_id=job.id, reviewer=user.name, decision=decision, reason=reason, note=note,
                                 at=now), vote)
            approvals = sum(v.decision == "approve" for v in votes) + (decision == "approve")
            if decision == "reject":
                # The operator reads the fixed text of the reason, never the note.
                tell(job, Text("Rejected by compliance: {reason}", reason=operator_text))
                transition(tx, job, st.REJECTED, st.COMPLIANCE, user.name, now, reason)
            elif approvals >= max(1, job.reviewers_required):
                transition(tx, job, st.RELEASED, st.COMPLIANCE, user.name, now, "approved")
                if job.mode == "reviewed":
                    self._record_released_aggregates(tx, job, outputs, vote)
            return job_view(job, user.role, now)

    @staticmethod
    def _record_released_aggregates(tx, job, outputs, event) -> None:
        """Keep every released exact count table for differencing checks of later releases."""
        from sandbox.core.specs.reviewed import parse_reviewed_spec
        spec = parse_reviewed_spec(job.spec, parse_manifest(lookups.dataset(tx, job.dataset).manifest), code=job.code)
        for o in outputs:
            declared = spec.declared(o.name)
            if declared is None or declared.table_kind != "frequency":
                continue
            agg = gate.frequency_aggregate(o.name, declared.type, o.content, o.encoding, job.dataset_version)
            if agg is not None:
                tx.add_released_aggregate(ReleasedAggregate(
                    dataset=job.dataset, dataset_version=job.dataset_version, grouping=list(agg.grouping),
                    job_id=job.id, name=o.name, cells=[[list(k), v] for k, v in agg.cells.items()]), event)


def _run_logs(logs) -> list[dict]:
    return [{"attempt": x.attempt, "backend": x.backend, "exit_code": x.exit_code, "timed_out": x.timed_out,
             "oom_killed": x.oom_killed, "wall_seconds": x.wall_seconds, "stdout": x.stdout, "stderr": x.stderr,
             "refused_outputs": x.refused_outputs} for x in logs]

"""Licensed operators: submit jobs (with a dry run that shows the cost), cancel them.
Submissions of programs are first run on mock data, whose errors may be shown."""
from __future__ import annotations

import secrets
from dataclasses import asdict, is_dataclass
from datetime import datetime

from sandbox.controller.dispatch import send_job
from sandbox.core import admission as adm
from sandbox.core import ledger as led
from sandbox.core import lookups
from sandbox.core import permissions as perm
from sandbox.core import states as st
from sandbox.core.errors import Conflict, InvalidInput, NotFound, Text, join_texts
from sandbox.core.jobview import job_view
from sandbox.core.lifecycle import tell, transition
from sandbox.core.ports import Parts
from sandbox.core.records import BudgetEntry, Event, Job
from sandbox.core.specs.common import load_spec_text
from sandbox.core.specs.query import parse_query_spec


def _jsonable(obj):
    if is_dataclass(obj):
        return {k: _jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.isoformat()
    return obj


class Operator:
    def __init__(self, parts: Parts):
        self.p = parts

    def parse_submission(self, raw):
        """Validate an untrusted submission. Query jobs are a spec; program jobs are
        {"spec": {...}, "code": "<python source>"}. Returns (manifest, spec, code)."""
        if isinstance(raw, (bytes, str)):
            raw = load_spec_text(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
        if not isinstance(raw, dict):
            raise InvalidInput(Text("the job spec must be a JSON object"))
        code = None
        if "code" in raw or "spec" in raw or raw.get("mode") == "program":
            if (not {"spec", "code"} >= set(raw) or not isinstance(raw.get("spec"), dict)
                    or not isinstance(raw.get("code", ""), str)):
                raise InvalidInput(Text("a program job is {{\"spec\": {{...}}, \"code\": \"<python source>\"}}"),
                                   "code")
            raw, code = raw["spec"], raw.get("code")
        name = raw.get("dataset")
        if not isinstance(name, str):
            raise InvalidInput(Text("dataset: name the dataset to query (see GET /api/v1/datasets)"), "dataset")
        mode = raw.get("mode", "query")
        if mode not in ("query", "program", "reviewed"):
            raise InvalidInput(Text("mode: must be 'query', 'program' or 'reviewed'"), "mode")
        # A reviewed job of trusted tables and models alone has no code: its spec comes bare
        # (or as {spec} / {spec, code: ""}); one with a program sends its code.
        if mode == "query" and code is not None or mode == "program" and code is None:
            raise InvalidInput(Text("mode: program and reviewed jobs send {{spec, code}}; query jobs send the spec "
                                    "alone"), "mode")
        if mode == "reviewed" and not code and ("program" in raw or "outputs" in raw):
            raise InvalidInput(Text("code: this reviewed job runs a program (it declares outputs); send "
                                    "{{\"spec\": {{...}}, \"code\": \"<python source>\"}}, or drop program and "
                                    "outputs and keep only tables and models"), "code")
        try:
            with self.p.repo.transaction() as tx:
                manifest = lookups.manifest(tx, name)
        except NotFound:
            raise InvalidInput(Text("dataset: unknown dataset '{name}' (see GET /api/v1/datasets)", name=name),
                               "dataset")
        # The data owner's per-column classification is enforced here, for every mode (core/specs/access.py).
        from sandbox.core.specs.access import parse_for_operator
        if mode == "program":
            from sandbox.core.specs.program import parse_program_spec
            return manifest, parse_for_operator(lambda m: parse_program_spec(raw, m, code=code), manifest, mode,
                                                code, raw), code
        if mode == "reviewed":
            from sandbox.core.specs.reviewed import parse_reviewed_spec
            return manifest, parse_for_operator(lambda m: parse_reviewed_spec(raw, m, code=code), manifest, mode,
                                                code, raw), code
        return manifest, parse_for_operator(lambda m: parse_query_spec(raw, m), manifest, mode, raw=raw), None

    def _cost(self, manifest, spec, dry_run: bool) -> tuple[object, float]:
        from sandbox.agent import mockrun
        from sandbox.core import dp
        mode = spec.to_dict()["mode"]
        if mode == "query":
            # Each query's utility preview: its 95% interval next to a typical cell, assumed from
            # the public manifest alone (core/utility.py), never from the registered row count.
            from sandbox.core.utility import preview
            plans = dp.plan(spec, manifest)
            return [{**_jsonable(p), "utility": preview(p, manifest)} for p in plans], float(spec.total_epsilon)
        if mode == "reviewed":
            if not dry_run:
                mockrun.check_reviewed_on_mock(self.p.backend_factory(), spec, manifest)
            return {"privacy": "not differentially private: every declared file goes through the disclosure "
                               "checks and human review; no privacy budget is spent",
                    "outputs": spec.output_plan()}, 0.0
        from sandbox.core.specs.program_accounting import expected_error
        if not dry_run:
            mockrun.check_program_on_mock(self.p.backend_factory(), spec, manifest)
        return _jsonable(expected_error(spec)), float(spec.epsilon)

    def submit(self, user, raw, dry_run: bool = False) -> dict:
        perm.check(user, "job.submit")
        manifest, spec, code = self.parse_submission(raw)
        spec_dict = spec.to_dict()
        mode = spec_dict["mode"]
        plans, epsilon = self._cost(manifest, spec, dry_run)
        now = self.p.clock()
        request = adm.JobRequest(operator=user.name, dataset=manifest.name, mode=mode,
                                 purpose=spec_dict["purpose"], epsilon=epsilon, delta=0.0,
                                 query_epsilons=tuple(q.epsilon for q in spec.queries) if mode == "query" else ())
        if dry_run:
            with self.p.repo.transaction() as tx:
                _, policy = lookups.current_policy(tx, manifest.name)
                entries = lookups.ledger_entries(tx, manifest.name, user.name)
                wide = lookups.dataset_balance(tx, manifest.name, policy, now)
            bal = led.balance(entries, policy.budget, now)
            # Judged on the coarse dataset-wide view: a free dry run must not measure what
            # other operators spent (ledger.DatasetBalance.for_operator).
            floor = policy.budget.min_epsilon_per_query
            decision = adm.decide(policy, request, bal, now.date(), wide.for_operator(floor) if wide else None)
            after = None
            if decision.admitted:
                hypothetical = led.LedgerEntry(kind="reserve", job_id="dry-run", epsilon=epsilon, delta=0.0, at=now)
                after = led.balance(entries + [hypothetical], policy.budget, now).to_dict()
            return {"dry_run": True, "admitted": decision.admitted, "reasons": list(decision.reasons),
                    "cost": {"epsilon": epsilon, "delta": 0.0}, "balance_before": bal.to_dict(),
                    "balance_after": after, "dataset_cap_blocks": bool(wide and wide.blocks(floor)),
                    "queries": plans}
        self.p.repo.ensure_budget_lock(manifest.name, user.name)
        with self.p.repo.transaction() as tx:
            ds = lookups.dataset(tx, manifest.name)
            if ds.retired:  # its owner retired the current version (owner.retire)
                raise Conflict(Text("dataset '{dataset}' is retired: it takes no new jobs", dataset=manifest.name))
            prow, policy = lookups.current_policy(tx, manifest.name)
            # Serialize admissions against the dataset's budgets, the dataset-wide one included
            # (PostgreSQL row lock; SQLite is serialized), so checks and reservation are atomic.
            tx.lock_budget(manifest.name, user.name)
            bal = led.balance(lookups.ledger_entries(tx, manifest.name, user.name), policy.budget, now)
            wide = lookups.dataset_balance(tx, manifest.name, policy, now)
            decision = adm.decide(policy, request, bal, now.date(), wide)
            job = Job(id=secrets.token_hex(8), operator=user.name, dataset=manifest.name, mode=mode, code=code or "",
                      purpose=spec_dict["purpose"], spec=spec_dict, spec_hash=spec.content_hash, epsilon=epsilon,
                      delta=0.0, state=st.SUBMITTED, policy_version_id=prow.id, policy_hash=prow.content_hash,
                      dataset_version=ds.version_id, reviewers_required=decision.reviewers_required,
                      created_at=now, updated_at=now)
            submitted = Event(user.name, "job.submitted", job.id,
                              {"dataset": job.dataset, "spec_hash": job.spec_hash, "epsilon": epsilon,
                               "policy_hash": prow.content_hash})
            tx.add_job(job, submitted)
            if not decision.admitted:
                tell(job, Text("Refused at admission: {reasons}", reasons=join_texts("; ", decision.reasons)))
                transition(tx, job, st.REJECTED, st.SYSTEM, "admission", now, job.message)
                return {"job": job_view(job, user.role, now), "admitted": False, "reasons": list(decision.reasons)}
            tx.add_budget_entry(BudgetEntry(dataset=job.dataset, operator=job.operator, job_id=job.id, kind="reserve",
                                            resolution="reserve", epsilon=epsilon, delta=0.0, at=now), submitted)
            if decision.needs_owner_approval:
                transition(tx, job, st.AWAITING_APPROVAL, st.SYSTEM, "admission", now,
                           "the data owner approves each run of this dataset")
            else:
                transition(tx, job, st.QUEUED, st.SYSTEM, "admission", now)
            view = job_view(job, user.role, now)
            queued = job.state == st.QUEUED
        if queued:
            send_job(self.p, view["id"])
        return {"job": view, "admitted": True, "reasons": []}

    def cancel(self, user, job_id: str) -> dict:
        with self.p.repo.transaction() as tx:
            job = tx.job(job_id, for_update=True)
            if job is None:
                raise NotFound("no such job")
            perm.check(user, "job.cancel", perm.Subject(job_operator=job.operator))
            if job.state not in (st.QUEUED, st.AWAITING_APPROVAL):
                raise Conflict(Text("only a job that has not started can be cancelled"))
            now = self.p.clock()
            transition(tx, job, st.CANCELLED, st.OPERATOR, user.name, now)
            return job_view(job, user.role, now)

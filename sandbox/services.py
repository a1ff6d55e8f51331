"""Application services: the use cases of the three roles and of the worker.

This layer wires the pure domain (spec, policy, admission, ledger, states,
checks) to the store and the isolation backend. Views and Celery tasks are
thin and call only this module.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import shutil
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import yaml
from sqlalchemy import and_, func, or_, select

from sandbox.core.release import gate
from sandbox.config import Settings
from sandbox.core import admission as adm
from sandbox.core import ledger as led
from sandbox.core import states as st
from sandbox.core.audit import AuditRecord, canonical, entry_hash, verify_chain
from sandbox.core.errors import InvalidInput, Text, join_texts, text_from_data, text_to_data
from sandbox.core.manifest import Manifest, parse_manifest
from sandbox.core.policy import Policy, PolicyError, parse_policy
from sandbox.core.specs.query import load_spec_text, parse_query_spec
from sandbox.agent.backends import Limits, RunRequest
from sandbox.adapters.store.db import Store, head_stmt
from sandbox.adapters.store.models import (AuditEvent, BlockResult, BudgetLock, Dataset, Job, LedgerEntry,
    Output, PolicyVersion, ReleasedAggregate, Review, RunLog, User, utcnow)

OPERATOR_FAILURE_MESSAGE = Text(
    "The job failed while running on the real data. For your protection and the data's, no "
    "details of a real-data run are shown to operators; reproduce the problem on the mock data "
    "(sandbox run --mock) and resubmit. Compliance has the diagnostics.")


class NotFound(Exception):
    pass


class Forbidden(Exception):
    pass


class Conflict(Exception):
    pass


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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


def _grant_runner_read(data_dir: Path) -> None:
    # The runner reads as an unprivileged uid inside its box; the bind mount keeps the
    # host's modes, so registration makes the (read-only) dataset readable to it.
    data_dir.chmod(0o755)
    for p in data_dir.glob("*.parquet"):
        p.chmod(0o644)


# How much of a mock run's stderr a refusal quotes: the end of a traceback.
MOCK_STDERR_CHARS = 1500


def outcome_delay_seconds(mode: str, spec: dict, wall_seconds: int) -> int:
    """How long after a run starts its outcome becomes visible to the operator: the
    policy's wall time, and for programs at least the time all k blocks could take one
    after another (each its timeout plus start-up), so it never depends on the data."""
    if mode != "program":
        return wall_seconds
    from sandbox.agent.aggregation import BOX_MARGIN_SECONDS, STARTUP_ALLOWANCE_SECONDS
    per_block = int(spec["block_timeout_seconds"]) + STARTUP_ALLOWANCE_SECONDS + BOX_MARGIN_SECONDS
    return max(wall_seconds, int(spec["blocks"]) * per_block + 30)


def _tell(job: Job, message: str) -> None:
    """Set the operator's message of a job: English, and as template and parameters so the
    UI can show it in the reader's language (a reason typed by a person stays as typed)."""
    job.message = str(message)
    job.message_i18n = text_to_data(message)


def _image_digest(backend) -> str:
    # Docker runs name their image by content digest; bubblewrap runs use the host's
    # interpreter, which the certificate says instead.
    digest = getattr(backend, "image_digest", None)
    return digest() if digest else ""


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite drops tzinfo; everything is stored in UTC.
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt


@dataclass
class Services:
    settings: Settings
    store: Store
    backend_factory: Callable[..., object]   # (classification=None) -> IsolationBackend
    enqueue: Callable[[str], None]
    clock: Callable[[], datetime] = utcnow
    # Fans program blocks out as tasks; None runs them one after another in this process.
    enqueue_block: Callable[[str, int, int], None] | None = None

    def __post_init__(self):
        if self.enqueue_block is None:
            self.enqueue_block = self.run_block

    # ----------------------------------------------------------------- audit
    def audit(self, s, actor: str, action: str, subject: str, payload: dict | None = None) -> None:
        """Append one hash-chained audit event inside the caller's transaction."""
        head = self.store.lock_for_update(s, head_stmt())
        seq = head.seq + 1
        at = self.clock().isoformat()
        payload = json.loads(canonical(payload or {}))
        h = entry_hash(head.hash, seq, at, actor, action, subject, payload)
        s.add(AuditEvent(seq=seq, at=at, actor=actor, action=action, subject=subject, payload=payload,
                         prev_hash=head.hash, hash=h))
        head.seq, head.hash = seq, h

    def audit_records(self) -> list[AuditRecord]:
        with self.store.transaction() as s:
            rows = s.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
            return [AuditRecord(r.seq, r.at, r.actor, r.action, r.subject, r.payload, r.prev_hash, r.hash)
                    for r in rows]

    def audit_verify(self) -> dict:
        records = self.audit_records()
        problems = verify_chain(records)
        with self.store.transaction() as s:
            head = s.execute(head_stmt()).scalar_one()
            if records and (head.seq != records[-1].seq or head.hash != records[-1].hash):
                problems.append(f"head (seq={head.seq}) does not match the last entry (entries removed at the end)")
            head_hash, head_seq = head.hash, head.seq
        return {"ok": not problems, "problems": problems, "entries": len(records),
                "head": {"seq": head_seq, "hash": head_hash}}

    # ------------------------------------------------------------ transitions
    def transition(self, s, job: Job, to_state: str, actor_role: str, actor: str, reason: str = "") -> None:
        """The one place a job changes state: validates against the table, writes
        the ledger effect and the audit event in the same transaction."""
        st.check_transition(job.state, to_state, actor_role)
        effect = st.ledger_effect(job.state, to_state)
        if effect is not None:
            self._ledger_resolve(s, job, effect)
        self.audit(s, actor, "job.transition", job.id,
                   {"from": job.state, "to": to_state, "role": actor_role, "reason": reason})
        job.state = to_state
        job.updated_at = self.clock()

    def _ledger_resolve(self, s, job: Job, kind: str) -> None:
        entries = s.execute(select(LedgerEntry.resolution).where(LedgerEntry.job_id == job.id)).scalars().all()
        if "reserve" not in entries or "resolve" in entries:
            # Nothing reserved (refused at admission), or already resolved: a retried
            # task must never charge twice.
            return
        s.add(LedgerEntry(dataset=job.dataset, operator=job.operator, job_id=job.id, kind=kind,
                          resolution="resolve", epsilon=job.epsilon, delta=job.delta, at=self.clock()))

    # ----------------------------------------------------------------- users
    def create_user(self, name: str, role: str, token: str | None = None) -> str:
        if role not in st.ROLES:
            raise InvalidInput(Text("role must be one of {allowed}", allowed=", ".join(st.ROLES)), "role")
        token = token or secrets.token_urlsafe(24)
        with self.store.transaction() as s:
            user = s.execute(select(User).where(User.name == name)).scalar_one_or_none()
            if user is None:
                s.add(User(name=name, role=role, token_hash=token_hash(token)))
            else:
                user.role, user.token_hash = role, token_hash(token)
            self.audit(s, "system", "user.token_issued", name, {"role": role})
        return token

    def authenticate(self, token: str) -> User | None:
        if not token:
            return None
        with self.store.transaction() as s:
            user = s.execute(select(User).where(User.token_hash == token_hash(token))).scalar_one_or_none()
            return user if user is not None and user.active else None

    # -------------------------------------------------------------- datasets
    def register_dataset(self, manifest_path: Path, data_dir: Path, actor: str = "system") -> dict:
        from sandbox.agent import ingest
        manifest = parse_manifest(yaml.safe_load(Path(manifest_path).read_text(encoding="utf-8")))
        _grant_runner_read(Path(data_dir))
        version = ingest.dataset_version_hash(data_dir)
        report = ingest.verify_unit_bound(data_dir, manifest.privacy_unit, manifest.max_rows_per_unit)
        with self.store.transaction() as s:
            ds = s.execute(select(Dataset).where(Dataset.name == manifest.name)).scalar_one_or_none()
            if ds is None:
                ds = Dataset(name=manifest.name)
                s.add(ds)
            ds.manifest = manifest.to_dict()
            ds.classification = manifest.classification
            ds.owner = manifest.owner
            ds.data_dir = str(Path(data_dir).resolve())
            ds.version_hash = version
            ds.bound_verified = bool(report.ok)
            ds.rows = int(ingest.row_count(data_dir))
            self.audit(s, actor, "dataset.registered", manifest.name,
                       {"version": version, "bound_verified": bool(report.ok)})
        return {"name": manifest.name, "version": version, "bound_verified": bool(report.ok)}

    def _dataset(self, s, name: str) -> Dataset:
        ds = s.execute(select(Dataset).where(Dataset.name == name)).scalar_one_or_none()
        if ds is None:
            raise NotFound(f"no dataset named '{name}'")
        return ds

    def list_datasets(self) -> list[dict]:
        with self.store.transaction() as s:
            rows = s.execute(select(Dataset).order_by(Dataset.name)).scalars().all()
            return [self._public_dataset(d, brief=True) for d in rows]

    def get_dataset(self, name: str) -> dict:
        with self.store.transaction() as s:
            return self._public_dataset(self._dataset(s, name))

    @staticmethod
    def _public_dataset(d: Dataset, brief: bool = False) -> dict:
        # Only the public manifest and version: never row counts or paths.
        m = d.manifest
        out = {"name": d.name, "title": m.get("title"), "title_zh": m.get("title_zh"),
               "classification": d.classification, "owner": d.owner, "version": d.version_hash}
        if not brief:
            out.update({"description": m.get("description"), "privacy_unit": m["privacy_unit"],
                        "max_rows_per_unit": m["max_rows_per_unit"], "columns": m["columns"]})
        return out

    def manifest(self, name: str) -> Manifest:
        with self.store.transaction() as s:
            return parse_manifest(self._dataset(s, name).manifest)

    def mock_data(self, name: str, fmt: str = "csv", rows: int = 1000, seed: int = 0) -> bytes:
        """Mock data comes from the public manifest alone (sandbox.datagen)."""
        from sandbox import datagen
        if fmt not in ("csv", "parquet"):
            raise InvalidInput(Text("format must be csv or parquet"), "format")
        if not 1 <= rows <= 100_000:
            raise InvalidInput(Text("rows must be between 1 and 100000"), "rows")
        manifest = self.manifest(name)
        table = datagen.generate_mock(manifest, rows, seed=seed)
        if fmt == "csv":
            import pyarrow.csv as pacsv
            import pyarrow as pa
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink)
            return sink.getvalue().to_pybytes()
        import pyarrow as pa
        import pyarrow.parquet as pq
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return sink.getvalue().to_pybytes()

    # -------------------------------------------------------------- policies
    def apply_policy(self, text: str, filename: str, actor: str) -> dict:
        policy = parse_policy(text, filename)
        with self.store.transaction() as s:
            self._dataset(s, policy.dataset)
            last = s.execute(select(PolicyVersion).where(PolicyVersion.dataset == policy.dataset)
                             .order_by(PolicyVersion.version.desc()).limit(1)).scalar_one_or_none()
            if last is not None and last.content_hash == policy.content_hash:
                return {"dataset": policy.dataset, "version": last.version, "hash": last.content_hash,
                        "changed": False}
            version = (last.version + 1) if last else 1
            s.add(PolicyVersion(dataset=policy.dataset, version=version, content=text,
                                content_hash=policy.content_hash, applied_by=actor))
            self.audit(s, actor, "policy.applied", policy.dataset,
                       {"version": version, "hash": policy.content_hash})
        return {"dataset": policy.dataset, "version": version, "hash": policy.content_hash, "changed": True}

    def _current_policy(self, s, dataset: str) -> tuple[PolicyVersion, Policy]:
        row = s.execute(select(PolicyVersion).where(PolicyVersion.dataset == dataset)
                        .order_by(PolicyVersion.version.desc()).limit(1)).scalar_one_or_none()
        if row is None:
            raise Forbidden(Text("dataset '{dataset}' has no policy yet; its owner must apply one", dataset=dataset))
        return row, parse_policy(row.content, f"policies/{dataset}.yaml")

    def current_policy_text(self, dataset: str) -> dict:
        with self.store.transaction() as s:
            row, _ = self._current_policy(s, dataset)
            return {"dataset": dataset, "version": row.version, "hash": row.content_hash, "content": row.content}

    def _job_policy(self, s, job: Job) -> Policy:
        # A job stays under the policy version it was admitted under.
        row = s.get(PolicyVersion, job.policy_version_id)
        return parse_policy(row.content, f"policies/{job.dataset}.yaml")

    # ---------------------------------------------------------------- budget
    def _ledger_entries(self, s, dataset: str, operator: str) -> list[led.LedgerEntry]:
        rows = s.execute(select(LedgerEntry).where(LedgerEntry.dataset == dataset,
                                                   LedgerEntry.operator == operator)
                         .order_by(LedgerEntry.id)).scalars().all()
        return [led.LedgerEntry(kind=r.kind, job_id=r.job_id, epsilon=r.epsilon, delta=r.delta, at=_aware(r.at))
                for r in rows]

    def balance(self, user: User, dataset: str, operator: str | None = None) -> dict:
        operator = operator or user.name
        if user.role == st.OPERATOR and operator != user.name:
            raise Forbidden(Text("operators see only their own balance"))
        with self.store.transaction() as s:
            _, policy = self._current_policy(s, dataset)
            bal = led.balance(self._ledger_entries(s, dataset, operator), policy.budget, self.clock())
            return {"dataset": dataset, "operator": operator, **bal.to_dict()}

    # ------------------------------------------------------------ submission
    def parse_submission(self, raw):
        """Validate an untrusted submission. Query jobs are a spec; program jobs are
        {"spec": {...}, "code": "<python source>"}. Returns (manifest, spec, code)."""
        if isinstance(raw, (bytes, str)):
            raw = load_spec_text(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
        if not isinstance(raw, dict):
            raise InvalidInput(Text("the job spec must be a JSON object"))
        code = None
        if "code" in raw or raw.get("mode") in ("program", "reviewed"):
            if set(raw) != {"spec", "code"} or not isinstance(raw["spec"], dict) or not isinstance(raw["code"], str):
                raise InvalidInput(Text("a program job is {{\"spec\": {{...}}, \"code\": \"<python source>\"}}"),
                                   "code")
            raw, code = raw["spec"], raw["code"]
        name = raw.get("dataset")
        if not isinstance(name, str):
            raise InvalidInput(Text("dataset: name the dataset to query (see GET /api/v1/datasets)"), "dataset")
        mode = raw.get("mode", "query")
        if mode not in ("query", "program", "reviewed"):
            raise InvalidInput(Text("mode: must be 'query', 'program' or 'reviewed'"), "mode")
        if (mode != "query") != (code is not None):
            raise InvalidInput(Text("mode: program and reviewed jobs send {{spec, code}}; query jobs send the spec "
                                    "alone"), "mode")
        try:
            manifest = self.manifest(name)
        except NotFound:
            raise InvalidInput(Text("dataset: unknown dataset '{name}' (see GET /api/v1/datasets)", name=name),
                               "dataset")
        if mode == "program":
            from sandbox.core.specs.program import parse_program_spec
            return manifest, parse_program_spec(raw, manifest, code=code), code
        if mode == "reviewed":
            from sandbox.core.specs.reviewed import parse_reviewed_spec
            return manifest, parse_reviewed_spec(raw, manifest, code=code), code
        return manifest, parse_query_spec(raw, manifest), None

    def submit(self, user: User, raw, dry_run: bool = False) -> dict:
        if user.role != st.OPERATOR:
            raise Forbidden(Text("only operators submit jobs"))
        from sandbox.core import dp
        manifest, spec, code = self.parse_submission(raw)
        spec_dict = spec.to_dict()
        mode = spec_dict["mode"]
        if mode == "query":
            plans = _jsonable(dp.plan(spec, manifest))
            epsilon = float(spec.total_epsilon)
        elif mode == "reviewed":
            plans = {"privacy": "not differentially private: every declared file goes through the disclosure "
                                "checks and human review; no privacy budget is spent",
                     "outputs": [o.to_dict() for o in spec.outputs]}
            epsilon = 0.0
            if not dry_run:
                self._check_reviewed_on_mock(spec, manifest)
        else:
            from sandbox.core.specs.program import expected_error
            plans = _jsonable(expected_error(spec))
            epsilon = float(spec.epsilon)
            if not dry_run:
                self._check_program_on_mock(spec, manifest)
        now = self.clock()
        if dry_run:
            with self.store.transaction() as s:
                _, policy = self._current_policy(s, manifest.name)
                entries = self._ledger_entries(s, manifest.name, user.name)
            bal = led.balance(entries, policy.budget, now)
            decision = adm.decide(policy, adm.JobRequest(operator=user.name, dataset=manifest.name, mode=mode,
                                                         purpose=spec_dict["purpose"], epsilon=epsilon, delta=0.0),
                                  bal, now.date())
            after = None
            if decision.admitted:
                hypothetical = led.LedgerEntry(kind="reserve", job_id="dry-run", epsilon=epsilon, delta=0.0, at=now)
                after = led.balance(entries + [hypothetical], policy.budget, now).to_dict()
            return {"dry_run": True, "admitted": decision.admitted, "reasons": list(decision.reasons),
                    "cost": {"epsilon": epsilon, "delta": 0.0}, "balance_before": bal.to_dict(),
                    "balance_after": after, "queries": plans}
        self._ensure_budget_lock(manifest.name, user.name)
        with self.store.transaction() as s:
            ds = self._dataset(s, manifest.name)
            prow, policy = self._current_policy(s, manifest.name)
            # Serialize admissions against one budget (PostgreSQL row lock; SQLite is serialized).
            self.store.lock_for_update(s, select(BudgetLock).where(BudgetLock.dataset == manifest.name,
                                                                   BudgetLock.operator == user.name))
            bal = led.balance(self._ledger_entries(s, manifest.name, user.name), policy.budget, now)
            request = adm.JobRequest(operator=user.name, dataset=manifest.name, mode=mode,
                                     purpose=spec_dict["purpose"], epsilon=epsilon, delta=0.0)
            decision = adm.decide(policy, request, bal, now.date())
            job = Job(id=secrets.token_hex(8), operator=user.name, dataset=manifest.name, mode=mode, code=code or "",
                      purpose=spec_dict["purpose"], spec=spec_dict, spec_hash=spec.content_hash, epsilon=epsilon,
                      delta=0.0, state=st.SUBMITTED, policy_version_id=prow.id, policy_hash=prow.content_hash,
                      dataset_version=ds.version_hash, reviewers_required=decision.reviewers_required,
                      created_at=now, updated_at=now)
            s.add(job)
            self.audit(s, user.name, "job.submitted", job.id,
                       {"dataset": job.dataset, "spec_hash": job.spec_hash, "epsilon": epsilon,
                        "policy_hash": prow.content_hash})
            if not decision.admitted:
                _tell(job, Text("Refused at admission: {reasons}", reasons=join_texts("; ", decision.reasons)))
                self.transition(s, job, st.REJECTED, st.SYSTEM, "admission", job.message)
                s.flush()
                return {"job": self._job_view(s, job, user), "admitted": False, "reasons": list(decision.reasons)}
            s.add(LedgerEntry(dataset=job.dataset, operator=job.operator, job_id=job.id, kind="reserve",
                              resolution="reserve", epsilon=epsilon, delta=0.0, at=now))
            if decision.needs_owner_approval:
                self.transition(s, job, st.AWAITING_APPROVAL, st.SYSTEM, "admission",
                                "the data owner approves each run of this dataset")
            else:
                self.transition(s, job, st.QUEUED, st.SYSTEM, "admission")
            s.flush()
            view = self._job_view(s, job, user)
            queued = job.state == st.QUEUED
        if queued:
            self._safe_enqueue(view["id"])
        return {"job": view, "admitted": True, "reasons": []}

    def _check_program_on_mock(self, spec, manifest: Manifest) -> None:
        """A program that fails on mock data cannot be submitted: run it once on a mock
        block in the same box the real run uses; its errors are about mock data only."""
        import tempfile

        from sandbox.agent import aggregation as saa
        from sandbox.agent.mockrun import mock_data_dir
        backend = self.backend_factory()
        with tempfile.TemporaryDirectory(prefix="sandbox-mockcheck-") as tmp:
            block = mock_data_dir(manifest, Path(tmp) / "block", rows=500)
            outcome = saa.run_block(backend, spec, block, Path(tmp) / "run",
                                    saa.block_limits(spec, Limits(memory_mb=2048)), label="mockcheck")
        if outcome.reason is not None:
            # Mock data is made from the public manifest alone, so its errors may be shown.
            raw = getattr(outcome.run, "stderr", b"") or b""
            stderr = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)).strip()
            if stderr:
                raise InvalidInput(Text("code: the program fails on mock data ({reason}); run `sandbox run --mock "
                                        "SPEC` to see its output and errors, fix it, then submit; its last error "
                                        "output:\n{stderr}", reason=outcome.reason,
                                        stderr=stderr[-MOCK_STDERR_CHARS:]), "code")
            raise InvalidInput(Text("code: the program fails on mock data ({reason}); run `sandbox run --mock SPEC` "
                                    "to see its output and errors, fix it, then submit", reason=outcome.reason),
                               "code")

    def _check_reviewed_on_mock(self, spec, manifest: Manifest) -> None:
        import tempfile

        from sandbox.agent.mockrun import mock_data_dir
        with tempfile.TemporaryDirectory(prefix="sandbox-mockcheck-") as tmp:
            data = mock_data_dir(manifest, Path(tmp) / "data", rows=1000)
            result, collected = self._run_reviewed(spec, data, Path(tmp) / "run",
                                                   Limits(memory_mb=2048, wall_seconds=min(spec.timeout_seconds, 300)),
                                                   "mockcheck")
        missing = [o.name for o in spec.outputs if o.name not in collected.accepted]
        if not result.ok or missing:
            why = Text("it failed") if not result.ok else Text("it did not write {files}", files=", ".join(missing))
            raise InvalidInput(Text("code: the program fails on mock data ({reason}); run `sandbox run --mock SPEC` "
                                    "to see its output and errors, fix it, then submit", reason=why), "code")

    def _run_reviewed(self, spec, data_dir: Path, work_dir: Path, limits: Limits, label: str, backend=None):
        from sandbox.agent.outputs import bounded_output_area, collect_outputs
        for d in ("job", "out"):
            (work_dir / d).mkdir(parents=True)
            (work_dir / d).chmod(0o755)
        (work_dir / "job" / "program.py").write_text(spec.code, encoding="utf-8")
        (work_dir / "job" / "job.json").write_text(json.dumps({
            "kind": "reviewed", "program": "/job/program.py", "entrypoint": spec.entrypoint,
            "data_dir": "/data", "out_dir": "/out"}))
        for f in ("program.py", "job.json"):
            (work_dir / "job" / f).chmod(0o644)
        with bounded_output_area(work_dir / "out", limits.output_bytes, limits.output_files):
            result = (backend or self.backend_factory()).run(RunRequest(
                job_dir=work_dir / "job", data_dir=data_dir, out_dir=work_dir / "out",
                python_args=("-m", "sandbox.runner", "/job/job.json"), limits=limits, label=label))
            # Collect everything (declared or not) so compliance sees what was dropped and why.
            collected = collect_outputs(work_dir / "out", None, max_files=limits.output_files,
                                        max_total_bytes=limits.output_bytes)
        return result, collected

    def _execute_reviewed(self, work: dict, attempt_dir: Path) -> str:
        import base64

        from sandbox.core.specs.reviewed import parse_reviewed_spec
        manifest = parse_manifest(work["manifest"])
        spec = parse_reviewed_spec(work["spec"], manifest, code=work["code"])
        lim = work["limits"]
        limits = Limits(memory_mb=lim.memory_mb, cpus=lim.cpus, wall_seconds=min(lim.wall_seconds, spec.timeout_seconds),
                        output_bytes=lim.output_bytes, output_files=len(spec.outputs) + 8)
        backend = self._real_backend(work)
        if backend is None:
            return st.FAILED
        result, collected = self._run_reviewed(spec, Path(work["data_dir"]), attempt_dir, limits, work["job_id"],
                                               backend)
        job_id = work["job_id"]
        with self.store.transaction() as s:
            job = self.store.lock_for_update(s, select(Job).where(Job.id == job_id))
            if job.state != st.RUNNING or job.attempts != work["attempt"]:
                return job.state
            job.backend = getattr(backend, "name", "")
            dropped = [[n, "not declared in the output contract"] for n in collected.accepted if not spec.declared(n)]
            s.add(RunLog(job_id=job.id, attempt=work["attempt"], backend=job.backend, exit_code=result.exit_code,
                         timed_out=result.timed_out, oom_killed=result.oom_killed, wall_seconds=result.wall_seconds,
                         stdout=result.stdout.decode("utf-8", "replace"), stderr=result.stderr.decode("utf-8", "replace"),
                         refused_outputs=[list(r) for r in collected.refused] + dropped))
            job.compliance = {"dropped_files": dropped + [list(r) for r in collected.refused],
                              "runner_image": _image_digest(backend)}
            if not result.ok:
                _tell(job, OPERATOR_FAILURE_MESSAGE)
                self.transition(s, job, st.FAILED, st.SYSTEM, "worker", "run failed (details in run log)")
                return job.state
            self.transition(s, job, st.CHECKING, st.SYSTEM, "worker")
            policy = self._job_policy(s, job)
            previous = self._released_aggregates(s, job.dataset, job.dataset_version)
            all_checks = []
            for o in spec.outputs:
                data = collected.accepted.get(o.name)
                checks = gate.check_declared_file(o, data, lim.output_bytes, policy, previous, job.dataset_version)
                all_checks += checks
                if data is None:
                    continue
                binary = o.type in ("parquet", "png")
                s.add(Output(job_id=job.id, name=o.name, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                             content=base64.b64encode(data).decode() if binary else data.decode("utf-8", "replace"),
                             encoding="base64" if binary else "utf-8", checks=[c.to_dict() for c in checks]))
            self.audit(s, "system", "gate.checks", job.id, {"checks": [c.to_dict() for c in all_checks],
                                                            "dropped": job.compliance["dropped_files"]})
            # Non-DP output always goes to people; failed checks block approval (see review()).
            self.transition(s, job, st.AWAITING_REVIEW, st.SYSTEM, "gate")
            state = job.state
        shutil.rmtree(self.settings.jobs_dir / job_id, ignore_errors=True)
        return state

    def _released_aggregates(self, s, dataset: str, version: str):
        from sandbox.core.release.differencing import ReleasedAggregate as Agg
        rows = s.execute(select(ReleasedAggregate).where(ReleasedAggregate.dataset == dataset,
                                                         ReleasedAggregate.dataset_version == version)).scalars()
        return [Agg(r.dataset_version, tuple(r.grouping), {tuple(k): v for k, v in r.cells}, label=f"job {r.job_id}")
                for r in rows]

    def _ensure_budget_lock(self, dataset: str, operator: str) -> None:
        from sqlalchemy.exc import IntegrityError
        try:
            with self.store.transaction() as s:
                if s.get(BudgetLock, (dataset, operator)) is None:
                    s.add(BudgetLock(dataset=dataset, operator=operator))
        except IntegrityError:
            pass  # a concurrent submission created it first

    def _safe_enqueue(self, job_id: str) -> None:
        # The job is durable in the store; if the broker is down, the sweeper re-sends.
        try:
            self.enqueue(job_id)
        except Exception:  # noqa: BLE001 - any broker failure is recovered by the sweeper
            pass

    def approve_run(self, user: User, job_id: str, approve: bool = True, reason: str = "") -> dict:
        if user.role != st.OWNER:
            raise Forbidden(Text("only data owners approve runs"))
        with self.store.transaction() as s:
            job = self._job(s, job_id)
            ds = self._dataset(s, job.dataset)
            if ds.owner and ds.owner != user.name and not user.name.startswith(ds.owner):
                pass  # demo owners are not tied to one dataset; a licence model would check here
            if job.state != st.AWAITING_APPROVAL:
                raise Conflict(Text("job is {state}, not awaiting run approval", state=job.state))
            if approve:
                self.transition(s, job, st.QUEUED, st.OWNER, user.name, f"run approved, spec {job.spec_hash}")
            else:
                if not reason.strip():
                    raise InvalidInput(Text("a refusal needs a reason"), "reason")
                _tell(job, Text("The data owner refused the run: {reason}", reason=reason))
                self.transition(s, job, st.REJECTED, st.OWNER, user.name, reason)
            view = self._job_view(s, job, user)
        if approve:
            self._safe_enqueue(job_id)
        return view

    def cancel(self, user: User, job_id: str) -> dict:
        with self.store.transaction() as s:
            job = self._job(s, job_id)
            if user.role != st.OPERATOR or job.operator != user.name:
                raise Forbidden(Text("only the operator who submitted a job can cancel it"))
            if job.state not in (st.QUEUED, st.AWAITING_APPROVAL):
                raise Conflict(Text("only a job that has not started can be cancelled"))
            self.transition(s, job, st.CANCELLED, st.OPERATOR, user.name)
            return self._job_view(s, job, user)

    # ------------------------------------------------------------------ jobs
    def _job(self, s, job_id: str) -> Job:
        job = s.get(Job, job_id) if isinstance(job_id, str) and len(job_id) <= 32 else None
        if job is None:
            raise NotFound("no such job")
        return job

    def _job_view(self, s, job: Job, user: User) -> dict:
        view = {"id": job.id, "dataset": job.dataset, "mode": job.mode, "purpose": job.purpose,
                "operator": job.operator, "epsilon": job.epsilon, "delta": job.delta,
                "spec_hash": job.spec_hash, "spec": job.spec, "policy_hash": job.policy_hash,
                "created_at": _aware(job.created_at).isoformat(),
                # A Text when stored with its template: English as a str (API), translatable (UI).
                "message": text_from_data(job.message_i18n) or job.message}
        if user.role == st.OPERATOR:
            # Operators see a coarse state and no run timings (timing side channel): the
            # outcome of a run shows only after the time fixed when it started.
            if self._hidden_outcome(job):
                view["state"], view["message"] = "in_progress", ""
            else:
                view["state"] = st.OPERATOR_VIEW[job.state]
            if job.visible_after is not None:
                view["outcome_visible_after"] = _aware(job.visible_after).isoformat()
        else:
            view.update({"state": job.state, "updated_at": _aware(job.updated_at).isoformat(),
                         "attempts": job.attempts, "backend": job.backend,
                         "dataset_version": job.dataset_version, "reviewers_required": job.reviewers_required})
        return view

    def _hidden_outcome(self, job: Job) -> bool:
        return job.visible_after is not None and self.clock() < _aware(job.visible_after)

    def get_job(self, user: User, job_id: str) -> dict:
        with self.store.transaction() as s:
            job = self._job(s, job_id)
            if user.role == st.OPERATOR and job.operator != user.name:
                raise NotFound("no such job")  # do not confirm that other operators' jobs exist
            return self._job_view(s, job, user)

    def list_jobs(self, user: User, state: str | None = None) -> list[dict]:
        with self.store.transaction() as s:
            q = select(Job).order_by(Job.created_at.desc())
            if user.role == st.OPERATOR:
                q = q.where(Job.operator == user.name)
            if state and user.role != st.OPERATOR:
                q = q.where(Job.state == state)
            elif state:
                # Filter in SQL before the limit, on what the operator would see: a coarse
                # state, and "in_progress" for any outcome not yet visible.
                shown = [k for k, v in st.OPERATOR_VIEW.items() if v == state]
                now = self.clock()
                settled = or_(Job.visible_after.is_(None), Job.visible_after <= now)
                cond = and_(Job.state.in_(shown), settled)
                if state == "in_progress":
                    cond = or_(cond, Job.visible_after > now)
                q = q.where(cond)
            jobs = s.execute(q.limit(500)).scalars().all()
            views = [self._job_view(s, j, user) for j in jobs]
            if state and user.role == st.OPERATOR:
                views = [v for v in views if v["state"] == state]
            return views

    # ---------------------------------------------------------------- worker
    def claim(self, job_id: str) -> dict | None:
        """queued -> running atomically; returns what the run needs, or None when
        another worker has it or it is no longer runnable (idempotent task)."""
        with self.store.transaction() as s:
            job = self.store.lock_for_update(s, select(Job).where(Job.id == job_id))
            if job is None or job.state != st.QUEUED:
                return None
            ds = self._dataset(s, job.dataset)
            policy = self._job_policy(s, job)
            job.attempts += 1
            lim = policy.limits
            run_bound = outcome_delay_seconds(job.mode, job.spec, lim.wall_seconds)
            if job.visible_after is None:
                job.visible_after = self.clock() + timedelta(seconds=run_bound)
            lease = run_bound + self.settings.lease_margin_seconds
            job.lease_expires = self.clock() + timedelta(seconds=lease)
            self.transition(s, job, st.RUNNING, st.SYSTEM, "worker", f"attempt {job.attempts}")
            return {"job_id": job.id, "attempt": job.attempts, "spec": job.spec, "manifest": ds.manifest,
                    "mode": job.mode, "code": job.code,
                    "data_dir": ds.data_dir, "bound_verified": ds.bound_verified,
                    "limits": Limits(memory_mb=lim.memory_mb, cpus=lim.cpus, wall_seconds=lim.wall_seconds,
                                     output_bytes=lim.output_bytes)}

    def execute(self, job_id: str) -> str | None:
        """Run one job end to end on the real data. Safe to call twice."""
        from sandbox.agent.outputs import bounded_output_area, collect_outputs
        work = self.claim(job_id)
        if work is None:
            return None
        # Earlier attempts' work areas (a lost worker's) hold copies of raw data: remove them.
        shutil.rmtree(self.settings.jobs_dir / job_id, ignore_errors=True)
        attempt_dir = self.settings.jobs_dir / job_id / f"attempt-{work['attempt']}"
        if work["mode"] == "program":
            return self._start_program(work, attempt_dir)
        if work["mode"] == "reviewed":
            return self._execute_reviewed(work, attempt_dir)
        (attempt_dir / "job").mkdir(parents=True)
        (attempt_dir / "out").mkdir()
        (attempt_dir / "job" / "job.json").write_text(json.dumps({
            "kind": "query", "spec": work["spec"], "manifest": work["manifest"], "data_dir": "/data",
            "bound_verified": work["bound_verified"], "out_dir": "/out"}))
        backend = self._real_backend(work)
        if backend is None:
            return st.FAILED
        with bounded_output_area(attempt_dir / "out", work["limits"].output_bytes, 4):
            result = backend.run(RunRequest(job_dir=attempt_dir / "job", data_dir=Path(work["data_dir"]),
                                            out_dir=attempt_dir / "out",
                                            python_args=("-m", "sandbox.runner", "/job/job.json"),
                                            limits=work["limits"], label=job_id))
            collected = collect_outputs(attempt_dir / "out", {"result.json"}, max_files=4,
                                        max_total_bytes=work["limits"].output_bytes)
        manifest = parse_manifest(work["manifest"])
        with self.store.transaction() as s:
            job = self.store.lock_for_update(s, select(Job).where(Job.id == job_id))
            if job.state != st.RUNNING or job.attempts != work["attempt"]:
                return job.state  # the sweeper moved it on; this attempt's outputs are dropped
            job.backend = getattr(backend, "name", "")
            job.compliance = {**(job.compliance or {}), "runner_image": _image_digest(backend)}
            s.add(RunLog(job_id=job.id, attempt=work["attempt"], backend=job.backend, exit_code=result.exit_code,
                         timed_out=result.timed_out, oom_killed=result.oom_killed,
                         wall_seconds=result.wall_seconds,
                         stdout=result.stdout.decode("utf-8", "replace"),
                         stderr=result.stderr.decode("utf-8", "replace"),
                         refused_outputs=[list(r) for r in collected.refused]))
            raw = collected.accepted.get("result.json")
            if not result.ok or raw is None:
                _tell(job, OPERATOR_FAILURE_MESSAGE)
                self.transition(s, job, st.FAILED, st.SYSTEM, "worker", "run failed (details in run log)")
                return job.state
            self.transition(s, job, st.CHECKING, st.SYSTEM, "worker")
            checks, parsed = gate.check_query_result(raw, job.spec, manifest)
            check_dicts = [c.to_dict() for c in checks]
            if parsed is None:
                _tell(job, OPERATOR_FAILURE_MESSAGE)
                self.audit(s, "system", "gate.checks", job.id, {"checks": check_dicts})
                self.transition(s, job, st.FAILED, st.SYSTEM, "gate", "output failed the release gate")
                return job.state
            policy = self._job_policy(s, job)
            sdc = gate.disclosure_checks_for_query(parsed, job.spec, forbidden_columns=policy.forbidden_columns,
                                                    min_group=policy.min_group_size)
            check_dicts += [c.to_dict() for c in sdc]
            if any(c.status == gate.FAIL for c in sdc):
                _tell(job, Text("The output failed a disclosure check; compliance has the details."))
                self.audit(s, "system", "gate.checks", job.id, {"checks": check_dicts})
                self.transition(s, job, st.FAILED, st.SYSTEM, "gate", "output failed a disclosure check")
                return job.state
            self._store_output(s, job.id, "result.json", raw.decode(), check_dicts)
            for t in parsed["tables"]:
                self._store_output(s, job.id, f"{t['name']}.csv", gate.table_csv(t), [])
            self.audit(s, "system", "gate.checks", job.id, {"checks": check_dicts})
            needs_human = any(c["status"] == gate.NEEDS_REVIEW for c in check_dicts)
            if job.reviewers_required == 0 and not needs_human:  # fixed at admission (auto: query mode only)
                self.transition(s, job, st.RELEASED, st.SYSTEM, "gate", "automatic release of a DP query")
            else:
                self.transition(s, job, st.AWAITING_REVIEW, st.SYSTEM, "gate")
            state = job.state
        shutil.rmtree(attempt_dir, ignore_errors=True)  # nothing of a run is kept outside the store
        return state

    # ------------------------------------------------------------ program mode
    def _program_spec(self, spec: dict, manifest: dict, code: str):
        from sandbox.core.specs.program import parse_program_spec
        return parse_program_spec(spec, parse_manifest(manifest), code=code)

    def _start_program(self, work: dict, attempt_dir: Path) -> str:
        """Split the dataset into k blocks by a keyed hash of the privacy unit (secret
        per-job seed, kept nowhere), then run every block in its own box."""
        from sandbox.agent import blocks
        if self._real_backend(work) is None:
            return st.FAILED
        spec = self._program_spec(work["spec"], work["manifest"], work["code"])
        manifest = parse_manifest(work["manifest"])
        seed = blocks.new_block_seed()
        blocks.assign_blocks(Path(work["data_dir"]), manifest.privacy_unit, spec.k, seed, attempt_dir / "blocks")
        with self.store.transaction() as s:
            self.audit(s, "system", "program.blocks_assigned", work["job_id"],
                       {"attempt": work["attempt"], "k": spec.k, "seed_sha256": hashlib.sha256(seed).hexdigest()})
        del seed
        for i in range(spec.k):
            self.enqueue_block(work["job_id"], work["attempt"], i)
        with self.store.transaction() as s:
            return s.get(Job, work["job_id"]).state

    def run_block(self, job_id: str, attempt: int, index: int) -> str | None:
        """One block of a program job (a Celery task of its own; idempotent)."""
        from sqlalchemy.exc import IntegrityError

        from sandbox.agent import aggregation as saa
        with self.store.transaction() as s:
            job = s.get(Job, job_id)
            if job is None or job.state != st.RUNNING or job.attempts != attempt:
                return None
            done = s.execute(select(BlockResult).where(BlockResult.job_id == job_id, BlockResult.attempt == attempt,
                                                       BlockResult.block == index)).scalar_one_or_none()
            ds = self._dataset(s, job.dataset)
            spec = self._program_spec(job.spec, ds.manifest, job.code)
            lim = self._job_policy(s, job).limits
            classification = ds.classification
        if done is None:
            attempt_dir = self.settings.jobs_dir / job_id / f"attempt-{attempt}"
            work_dir = attempt_dir / f"run-{index:04d}"
            shutil.rmtree(work_dir, ignore_errors=True)
            outcome = saa.run_block(self.backend_factory(classification), spec,
                                    attempt_dir / "blocks" / f"block-{index:04d}",
                                    work_dir, saa.block_limits(spec, Limits(memory_mb=lim.memory_mb, cpus=lim.cpus)),
                                    label=f"{job_id}-b{index}")
            shutil.rmtree(work_dir, ignore_errors=True)
            try:
                with self.store.transaction() as s:
                    s.add(BlockResult(job_id=job_id, attempt=attempt, block=index, vector=outcome.vector,
                                      reason=outcome.reason or "", exit_code=outcome.run.exit_code,
                                      wall_seconds=outcome.run.wall_seconds,
                                      stderr=outcome.run.stderr.decode("utf-8", "replace")[-4000:]))
            except IntegrityError:
                pass  # a duplicate delivery of this block finished first
        return self._maybe_finish_program(job_id, attempt, spec)

    def _maybe_finish_program(self, job_id: str, attempt: int, spec) -> str | None:
        from sandbox.agent import aggregation as saa
        with self.store.transaction() as s:
            job = self.store.lock_for_update(s, select(Job).where(Job.id == job_id))
            if job.state != st.RUNNING or job.attempts != attempt:
                return job.state
            results = s.execute(select(BlockResult).where(BlockResult.job_id == job_id,
                                                          BlockResult.attempt == attempt)).scalars().all()
            if len(results) < spec.k:
                return job.state
            by_block = {r.block: r for r in results}
            vectors = [by_block[i].vector for i in range(spec.k)]
            reasons = [by_block[i].reason or None for i in range(spec.k)]
            summary = saa.compliance_summary(reasons, spec)
            job.compliance = {"blocks": summary}
            backend = self._backend_or_none(self._dataset(s, job.dataset).classification)
            job.backend = getattr(backend, "name", "")
            job.compliance = {**job.compliance, "runner_image": _image_digest(backend)}
            self.transition(s, job, st.CHECKING, st.SYSTEM, "worker", f"{spec.k} blocks done")
            result = saa.aggregate(vectors, spec)
            raw = json.dumps(result, allow_nan=False)
            checks = gate.check_program_result(raw.encode(), spec)
            check_dicts = [c.to_dict() for c in checks]
            self.audit(s, "system", "gate.checks", job.id, {"checks": check_dicts, "blocks": summary})
            if any(c.status == gate.FAIL for c in checks):
                _tell(job, OPERATOR_FAILURE_MESSAGE)
                self.transition(s, job, st.FAILED, st.SYSTEM, "gate", "output failed the release gate")
                return job.state
            self._store_output(s, job.id, "result.json", raw, check_dicts)
            self._store_output(s, job.id, "program_output.csv", gate.table_csv(result["tables"][0]), [])
            # Program outputs always go to a person (reviewers_for(program) >= 1).
            self.transition(s, job, st.AWAITING_REVIEW, st.SYSTEM, "gate")
            state = job.state
        shutil.rmtree(self.settings.jobs_dir / job_id, ignore_errors=True)  # block copies of raw data
        return state

    def _store_output(self, s, job_id: str, name: str, text: str, checks: list) -> None:
        data = text.encode()
        s.add(Output(job_id=job_id, name=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                     content=text, checks=checks))

    def sweep(self, queued_grace_seconds: int = 30) -> dict:
        """Recover from lost workers and lost broker messages.

        running with an expired lease -> queued again (charged once already);
        queued for longer than the grace period -> re-sent (the task is idempotent)."""
        now = self.clock()
        requeued, resent = [], []
        with self.store.transaction() as s:
            for job in s.execute(select(Job).where(Job.state == st.RUNNING)).scalars().all():
                if job.lease_expires is not None and _aware(job.lease_expires) < now:
                    self.transition(s, job, st.QUEUED, st.SYSTEM, "sweeper", "worker lost; lease expired")
                    job.lease_expires = None
                    requeued.append(job.id)
            for job in s.execute(select(Job).where(Job.state == st.QUEUED)).scalars().all():
                if job.id not in requeued and _aware(job.updated_at) < now - timedelta(seconds=queued_grace_seconds):
                    resent.append(job.id)
        if requeued:
            # A lost worker may have left its box behind (a Docker container outlives its client).
            backend = self._backend_or_none()
            for job_id in requeued:
                if backend is not None and hasattr(backend, "terminate"):
                    backend.terminate(job_id)
        for job_id in requeued + resent:
            self._safe_enqueue(job_id)
        return {"requeued": requeued, "resent": resent}

    def _real_backend(self, work: dict):
        """The backend for a real-data run, chosen by the dataset's classification; when
        it cannot run here the job fails (never a weaker box), and compliance learns why."""
        from sandbox.agent.backends import BackendUnavailable
        try:
            return self.backend_factory(work["manifest"]["classification"])
        except BackendUnavailable as e:
            with self.store.transaction() as s:
                job = self.store.lock_for_update(s, select(Job).where(Job.id == work["job_id"]))
                if job.state == st.RUNNING and job.attempts == work["attempt"]:
                    s.add(RunLog(job_id=job.id, attempt=work["attempt"], backend="none", exit_code=None,
                                 stderr=f"isolation backend unavailable: {e}"))
                    _tell(job, OPERATOR_FAILURE_MESSAGE)
                    self.transition(s, job, st.FAILED, st.SYSTEM, "worker", "isolation backend unavailable")
            return None

    def _backend_or_none(self, classification: str | None = None):
        try:
            return self.backend_factory(classification)
        except Exception:  # noqa: BLE001 - no backend here means nothing of ours is running here
            return None

    # -------------------------------------------------------------- metering
    def consumption(self, user: User, dataset: str) -> list[dict]:
        """Budget consumption per operator and period (owners and compliance)."""
        if user.role == st.OPERATOR:
            raise Forbidden(Text("operators see their own balance at /budget/<dataset>"))
        with self.store.transaction() as s:
            _, policy = self._current_policy(s, dataset)
            rows = s.execute(select(LedgerEntry).where(LedgerEntry.dataset == dataset)
                             .order_by(LedgerEntry.id)).scalars().all()
        reserved_at = {r.job_id: _aware(r.at) for r in rows if r.kind == "reserve"}
        out: dict[tuple, dict] = {}
        for r in rows:
            start = led.period_start(policy.budget.refresh, reserved_at.get(r.job_id, _aware(r.at)))
            key = (r.operator, start.isoformat() if start else "all")
            row = out.setdefault(key, {"operator": r.operator, "period_start": key[1], "jobs": 0,
                                       "epsilon_charged": 0.0, "epsilon_released": 0.0, "epsilon_reserved": 0.0})
            if r.kind == "reserve":
                row["jobs"] += 1
                row["epsilon_reserved"] += r.epsilon
            elif r.kind == "charge":
                row["epsilon_charged"] += r.epsilon
                row["epsilon_reserved"] -= r.epsilon
            else:
                row["epsilon_released"] += r.epsilon
                row["epsilon_reserved"] -= r.epsilon
        return [dict(v, epsilon_reserved=round(v["epsilon_reserved"], 12)) for v in out.values()]

    def metering(self, user: User) -> list[dict]:
        """Per operator, dataset and month: jobs, run seconds, rows scanned, budget, releases.
        Run seconds and rows come from real-data runs, so operators never see this."""
        if user.role == st.OPERATOR:
            raise Forbidden(Text("metering is for data owners and compliance"))
        with self.store.transaction() as s:
            jobs = s.execute(select(Job)).scalars().all()
            rows = {d.name: d.rows for d in s.execute(select(Dataset)).scalars()}
            logs: dict[str, list] = {}
            for log in s.execute(select(RunLog)).scalars():
                logs.setdefault(log.job_id, []).append(log.wall_seconds)
            charged = {e.job_id for e in s.execute(select(LedgerEntry).where(LedgerEntry.kind == "charge")).scalars()}
        out: dict[tuple, dict] = {}
        for j in jobs:
            month = _aware(j.created_at).strftime("%Y-%m")
            row = out.setdefault((j.operator, j.dataset, month), {
                "operator": j.operator, "dataset": j.dataset, "period": month, "jobs": 0, "runs": 0,
                "run_seconds": 0.0, "rows_scanned": 0, "epsilon_charged": 0.0, "releases": 0})
            row["jobs"] += 1
            runs = logs.get(j.id, [])
            row["runs"] += len(runs)
            row["run_seconds"] = round(row["run_seconds"] + sum(runs), 3)
            row["rows_scanned"] += len(runs) * rows.get(j.dataset, 0)
            if j.id in charged:
                row["epsilon_charged"] = round(row["epsilon_charged"] + j.epsilon, 12)
            row["releases"] += j.state == st.RELEASED
        return sorted(out.values(), key=lambda r: (r["period"], r["operator"], r["dataset"]))

    def audit_head(self) -> dict:
        with self.store.transaction() as s:
            head = s.execute(head_stmt()).scalar_one()
            return {"seq": head.seq, "hash": head.hash}

    # ---------------------------------------------------------------- review
    def review_queue(self, user: User) -> list[dict]:
        if user.role != st.COMPLIANCE:
            raise Forbidden(Text("only compliance reviewers see the review queue"))
        return [j for j in self.list_jobs(user, st.AWAITING_REVIEW) if j["operator"] != user.name]

    def review_detail(self, user: User, job_id: str) -> dict:
        if user.role != st.COMPLIANCE:
            raise Forbidden(Text("only compliance reviewers open reviews"))
        with self.store.transaction() as s:
            job = self._job(s, job_id)
            view = self._job_view(s, job, user)
            outputs = s.execute(select(Output).where(Output.job_id == job.id)).scalars().all()
            logs = s.execute(select(RunLog).where(RunLog.job_id == job.id).order_by(RunLog.id)).scalars().all()
            reviews = s.execute(select(Review).where(Review.job_id == job.id)).scalars().all()
            voted = any(r.reviewer == user.name for r in reviews)
            view["outputs"] = [{"name": o.name, "sha256": o.sha256, "size": o.size, "checks": o.checks,
                                "preview": o.content[:4000], "encoding": o.encoding,
                                "summary": gate.csv_summary(o.content) if o.name.endswith(".csv") else None}
                               for o in outputs]
            previous = s.execute(select(Job).where(Job.operator == job.operator, Job.dataset == job.dataset,
                                                   Job.created_at < job.created_at)
                                 .order_by(Job.created_at.desc()).limit(1)).scalar_one_or_none()
            view["spec_diff"] = gate.spec_diff(previous.spec if previous else None, job.spec,
                                               previous.id if previous else None, job.id)
            view["budget_charged"] = {"epsilon": job.epsilon, "delta": job.delta}
            view["code"] = job.code
            view["compliance"] = job.compliance or {}
            if job.mode == "program":
                # Per-block diagnostics of the real run: compliance only, capped per block.
                view["blocks"] = [{"attempt": b.attempt, "block": b.block, "reason": b.reason or "ok",
                                   "exit_code": b.exit_code, "wall_seconds": b.wall_seconds, "stderr": b.stderr}
                                  for b in s.execute(select(BlockResult).where(BlockResult.job_id == job.id)
                                                     .order_by(BlockResult.attempt, BlockResult.block)).scalars()]
            if job.mode == "program":
                view["code_diff"] = gate.text_diff(previous.code if previous else None, job.code,
                                                   previous.id if previous else None, job.id)
            view["run_logs"] = [{"attempt": l.attempt, "backend": l.backend, "exit_code": l.exit_code,
                                 "timed_out": l.timed_out, "oom_killed": l.oom_killed,
                                 "wall_seconds": l.wall_seconds, "stdout": l.stdout, "stderr": l.stderr,
                                 "refused_outputs": l.refused_outputs} for l in logs]
            # Independent reviews: other votes are hidden until this reviewer has voted.
            view["reviews"] = ([{"reviewer": r.reviewer, "decision": r.decision, "reason": r.reason}
                                for r in reviews] if voted or job.state != st.AWAITING_REVIEW
                               else [{"count": len(reviews)}])
            return view

    def review(self, user: User, job_id: str, decision: str, reason: str = "") -> dict:
        if user.role != st.COMPLIANCE:
            raise Forbidden(Text("only compliance reviewers review releases"))
        if decision not in ("approve", "reject"):
            raise InvalidInput(Text("decision must be 'approve' or 'reject'"), "decision")
        if decision == "reject" and not (reason or "").strip():
            raise InvalidInput(Text("a rejection needs a reason the operator will read"), "reason")
        with self.store.transaction() as s:
            job = self.store.lock_for_update(s, select(Job).where(Job.id == job_id))
            if job is None:
                raise NotFound("no such job")
            if job.operator == user.name:
                raise Forbidden(Text("a reviewer can never review their own job"))
            if job.state != st.AWAITING_REVIEW:
                raise Conflict(Text("job is {state}, not awaiting review", state=job.state))
            if s.execute(select(Review).where(Review.job_id == job.id, Review.reviewer == user.name)).first():
                raise Conflict(Text("you have already reviewed this job"))
            if decision == "approve":
                failed = [o.name for o in s.execute(select(Output).where(Output.job_id == job.id)).scalars()
                          if any(c.get("status") == gate.FAIL for c in (o.checks or []))]
                if failed:
                    raise Conflict(Text("cannot approve: disclosure checks failed for {outputs}; reject with a reason",
                                        outputs=", ".join(failed)))
            s.add(Review(job_id=job.id, reviewer=user.name, decision=decision, reason=reason or "", at=self.clock()))
            self.audit(s, user.name, "review.vote", job.id, {"decision": decision, "reason": reason or ""})
            s.flush()
            votes = s.execute(select(Review).where(Review.job_id == job.id)).scalars().all()
            if decision == "reject":
                _tell(job, Text("Rejected by compliance: {reason}", reason=reason))
                self.transition(s, job, st.REJECTED, st.COMPLIANCE, user.name, reason)
            elif sum(v.decision == "approve" for v in votes) >= max(1, job.reviewers_required):
                self.transition(s, job, st.RELEASED, st.COMPLIANCE, user.name, "approved")
                if job.mode == "reviewed":
                    self._record_released_aggregates(s, job)
            return self._job_view(s, job, user)

    def _record_released_aggregates(self, s, job: Job) -> None:
        """Keep every released exact count table for differencing checks of later releases."""
        from sandbox.core.specs.reviewed import parse_reviewed_spec
        spec = parse_reviewed_spec(job.spec, parse_manifest(self._dataset(s, job.dataset).manifest), code=job.code)
        for o in s.execute(select(Output).where(Output.job_id == job.id)).scalars():
            declared = spec.declared(o.name)
            if declared is None or declared.table_kind != "frequency":
                continue
            agg = gate.frequency_aggregate(o.name, declared.type, o.content, o.encoding, job.dataset_version)
            if agg is not None:
                s.add(ReleasedAggregate(dataset=job.dataset, dataset_version=job.dataset_version,
                                        grouping=list(agg.grouping), job_id=job.id, name=o.name,
                                        cells=[[list(k), v] for k, v in agg.cells.items()]))

    # --------------------------------------------------------------- release
    def release(self, user: User, job_id: str) -> dict:
        """Approved outputs plus a signed certificate; nothing for any other state."""
        from sandbox.adapters.signing import load_or_create_key, public_pem, sign_certificate
        with self.store.transaction() as s:
            job = self._job(s, job_id)
            if user.role == st.OPERATOR and job.operator != user.name:
                raise NotFound("no such job")
            if job.state != st.RELEASED or (user.role == st.OPERATOR and self._hidden_outcome(job)):
                raise Conflict(Text("nothing is released for this job"))
            outputs = s.execute(select(Output).where(Output.job_id == job.id).order_by(Output.name)).scalars().all()
            reviews = s.execute(select(Review).where(Review.job_id == job.id)).scalars().all()
            body = {
                "job": job.id, "operator": job.operator, "dataset": job.dataset, "mode": job.mode,
                "purpose": job.purpose, "spec_hash": job.spec_hash, "dataset_version": job.dataset_version,
                "policy_hash": job.policy_hash, "backend": job.backend,
                "runner_image": (job.compliance or {}).get("runner_image") or f"host interpreter ({job.backend})",
                "privacy": {"epsilon": job.epsilon, "delta": job.delta, "accounting": "pure DP, basic composition",
                            "mechanisms": (sorted({q["statistic"] for q in job.spec["queries"]}) if job.mode == "query"
                                           else ["sample-and-aggregate", *sorted({o.get("aggregate") or
                                                 job.spec.get("aggregate", "mean") for o in job.spec["outputs"]})]
                                           if job.mode == "program" else ["none (reviewed, non-DP)"])},
                "code_sha256": hashlib.sha256(job.code.encode()).hexdigest() if job.code else None,
                "checks": next((o.checks for o in outputs if o.name == "result.json"), []),
                "reviews": [{"reviewer": r.reviewer, "decision": r.decision} for r in reviews],
                "files": {o.name: o.sha256 for o in outputs},
            }
            key = load_or_create_key(self.settings.signing_key_path)
            return {"job": job.id, "files": {o.name: o.content for o in outputs},
                    "encodings": {o.name: o.encoding for o in outputs},
                    "certificate": sign_certificate(body, key), "public_key": public_pem(key)}

    def public_key(self) -> str:
        from sandbox.adapters.signing import load_or_create_key, public_pem
        return public_pem(load_or_create_key(self.settings.signing_key_path))

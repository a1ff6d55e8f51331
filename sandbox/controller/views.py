"""Reads for every role: the catalog, jobs, balances, metering, releases, the audit log.
Nothing here reads raw data; what an operator gets is filtered by core.jobview and
core.permissions."""
from __future__ import annotations

import hashlib
from fractions import Fraction

from sandbox.core import ledger as led
from sandbox.core import lookups
from sandbox.core import permissions as perm
from sandbox.core import schedule
from sandbox.core import states as st
from sandbox.core.errors import Conflict, InvalidInput, Text
from sandbox.core.jobview import job_view, outcome_hidden
from sandbox.core.manifest import Manifest
from sandbox.core.policy.model import DATASET_CAPS
from sandbox.core.ports import Parts
from sandbox.core.records import Event
from sandbox.core.release.certificate import released_statistics


def _table_bytes(table, fmt: str) -> bytes:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    sink = pa.BufferOutputStream()
    (pacsv.write_csv if fmt == "csv" else pq.write_table)(table, sink)
    return sink.getvalue().to_pybytes()


def public_dataset(d, brief: bool = False) -> dict:
    # Only the public manifest, the opaque version id and the version's size class (rows
    # rounded up to a power of two, which run-time bounds are calibrated from:
    # core/schedule.py): never exact row counts, paths or content hashes.
    m = d.manifest
    out = {"name": d.name, "title": m.get("title"), "title_zh": m.get("title_zh"),
           "classification": d.classification, "owner": d.owner, "version": d.version_id,
           "size_class": schedule.size_class(d.rows)}
    if not brief:
        out.update({"description": m.get("description"), "privacy_unit": m["privacy_unit"],
                    "max_rows_per_unit": m["max_rows_per_unit"],
                    # Columns the owner classified hidden are not shown to anyone reading the catalog.
                    "columns": [c for c in m["columns"] if c.get("access", "open") != "hidden"]})
    return out


class Views:
    def __init__(self, parts: Parts):
        self.p = parts

    # ------------------------------------------------------------ catalog
    def list_datasets(self) -> list[dict]:
        with self.p.repo.transaction() as tx:
            return [public_dataset(d, brief=True) for d in tx.datasets()]

    def get_dataset(self, name: str) -> dict:
        with self.p.repo.transaction() as tx:
            return public_dataset(lookups.dataset(tx, name))

    def manifest(self, name: str) -> Manifest:
        with self.p.repo.transaction() as tx:
            return lookups.manifest(tx, name)

    def mock_data(self, name: str, fmt: str = "csv", rows: int = 1000, seed: int = 0) -> bytes:
        """Mock data comes from the public manifest alone (sandbox.datagen)."""
        from sandbox import datagen
        if fmt not in ("csv", "parquet"):
            raise InvalidInput(Text("format must be csv or parquet"), "format")
        if not 1 <= rows <= 100_000:
            raise InvalidInput(Text("rows must be between 1 and 100000"), "rows")
        manifest = self.manifest(name)
        table = datagen.generate_mock(manifest, rows, seed=seed)
        return _table_bytes(table.drop_columns([c.name for c in manifest.restricted()]), fmt)

    def current_policy_text(self, dataset: str) -> dict:
        with self.p.repo.transaction() as tx:
            row, _ = lookups.current_policy(tx, dataset)
            return {"dataset": dataset, "version": row.version, "hash": row.content_hash, "content": row.content}

    def public_key(self) -> str:
        from sandbox.adapters.signing import load_or_create_key, public_pem
        return public_pem(load_or_create_key(self.p.settings.signing_key_path))

    # ------------------------------------------------------------ jobs
    def get_job(self, user, job_id: str) -> dict:
        with self.p.repo.transaction() as tx:
            job = lookups.job(tx, job_id)
            perm.check(user, "job.read", perm.Subject(job_operator=job.operator))
            return job_view(job, user.role, self.p.clock())

    def list_jobs(self, user, state: str | None = None) -> list[dict]:
        now = self.p.clock()
        with self.p.repo.transaction() as tx:
            if user.role != st.OPERATOR:
                jobs = tx.jobs(states=[state] if state else None, limit=500)
            elif not state:
                jobs = tx.jobs(operator=user.name, limit=500)
            else:
                # Filter in the store before the limit, on what the operator would see: a
                # coarse state, and "in_progress" for any outcome not yet visible.
                shown = [k for k, v in st.OPERATOR_VIEW.items() if v == state]
                jobs = tx.jobs(operator=user.name, states=shown, visible_by=now,
                               hidden_at=now if state == "in_progress" else None, limit=500)
        views = [job_view(j, user.role, now) for j in jobs]
        if state and user.role == st.OPERATOR:
            views = [v for v in views if v["state"] == state]
        return views

    # ------------------------------------------------------------ budget and metering
    def balance(self, user, dataset: str, operator: str | None = None) -> dict:
        """One operator's balance. The dataset-wide cap's numbers are a function of every
        operator's spending, so only the dataset's owner and compliance get them
        ("dataset_wide"); everyone gets "dataset_cap_blocks", true when what is left
        dataset-wide is below the policy's floor per query (or nothing): a fixed threshold,
        so it cannot be used to measure what other operators spent (docs/policies.md)."""
        operator = operator or user.name
        perm.check(user, "budget.read", perm.Subject(operator=operator))
        now = self.p.clock()
        with self.p.repo.transaction() as tx:
            ds = lookups.dataset(tx, dataset)
            _, policy = lookups.current_policy(tx, dataset)
            bal = led.balance(lookups.ledger_entries(tx, dataset, operator), policy.budget, now)
            wide = lookups.dataset_balance(tx, dataset, policy, now)
        out = {"dataset": dataset, "operator": operator, **bal.to_dict(),
               "dataset_cap_blocks": bool(wide and wide.blocks(policy.budget.min_epsilon_per_query))}
        if perm.allowed(user, "consumption.read", perm.Subject(dataset_owner=ds.owner_account)):
            out["dataset_wide"] = wide.to_dict() if wide else None
        return out

    def consumption(self, user, dataset: str) -> list[dict]:
        """Budget consumption per operator and period (owners and compliance)."""
        with self.p.repo.transaction() as tx:
            ds = lookups.dataset(tx, dataset)
            perm.check(user, "consumption.read", perm.Subject(dataset_owner=ds.owner_account))
            _, policy = lookups.current_policy(tx, dataset)
            rows = tx.budget_entries(dataset)
        reserved_at = {r.job_id: r.at for r in rows if r.kind == "reserve"}
        out: dict[tuple, dict] = {}
        for r in rows:
            start = led.period_start(policy.budget.refresh, reserved_at.get(r.job_id, r.at))
            key = (r.operator, start.isoformat() if start else "all")
            row = out.setdefault(key, {"operator": r.operator, "period_start": key[1], "jobs": 0,
                                       "epsilon_charged": led.ZERO, "epsilon_released": led.ZERO,
                                       "epsilon_reserved": led.ZERO})
            eps = led.exact(r.epsilon)  # summed exactly, as the ledger does
            if r.kind == "reserve":
                row["jobs"] += 1
                row["epsilon_reserved"] += eps
            else:
                row["epsilon_charged" if r.kind == "charge" else "epsilon_released"] += eps
                row["epsilon_reserved"] -= eps
        return [{k: float(v) if isinstance(v, Fraction) else v for k, v in row.items()} for row in out.values()]

    def dataset_usage(self, user, dataset: str) -> dict | None:
        """Every operator's use of the dataset against the policy's dataset-wide caps, now
        (owners and compliance); None when the policy sets no dataset-wide cap."""
        now = self.p.clock()
        with self.p.repo.transaction() as tx:
            ds = lookups.dataset(tx, dataset)
            perm.check(user, "consumption.read", perm.Subject(dataset_owner=ds.owner_account))
            _, policy = lookups.current_policy(tx, dataset)
            wide = lookups.dataset_balance(tx, dataset, policy, now)
        if wide is None:
            return None
        caps = {name: getattr(policy.budget, name) for name in DATASET_CAPS}
        return {"caps": caps, **wide.to_dict()}

    def metering(self, user) -> list[dict]:
        """Per operator, dataset and month: jobs, run seconds, rows scanned, budget, releases.
        Run seconds and rows come from real-data runs, so operators never see this."""
        perm.check(user, "metering.read")
        with self.p.repo.transaction() as tx:
            jobs = tx.jobs(newest_first=False)
            rows = {d.name: d.rows for d in tx.datasets()}
            logs: dict[str, list] = {}
            for log in tx.run_logs():
                logs.setdefault(log.job_id, []).append(log.wall_seconds)
            charged = {e.job_id for d in rows for e in tx.budget_entries(d) if e.kind == "charge"}
        out: dict[tuple, dict] = {}
        for j in jobs:
            month = j.created_at.strftime("%Y-%m")
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

    # ------------------------------------------------------------ release
    def release(self, user, job_id: str) -> dict:
        """Approved outputs plus a signed certificate; nothing for any other state.
        Every download is an audit event."""
        from sandbox.adapters.signing import load_or_create_key, public_pem, sign_certificate
        with self.p.repo.transaction() as tx:
            job = lookups.job(tx, job_id)
            perm.check(user, "release.download", perm.Subject(job_operator=job.operator))
            if job.state != st.RELEASED or (user.role == st.OPERATOR and outcome_hidden(job, self.p.clock())):
                raise Conflict(Text("nothing is released for this job"))
            outputs = tx.outputs(job.id)
            reviews = tx.reviews(job.id)
            tx.record(Event(user.name, "release.downloaded", job.id, {"files": {o.name: o.sha256 for o in outputs}}))
        body = certificate_body(job, outputs, reviews)
        key = load_or_create_key(self.p.settings.signing_key_path)
        # A released CSV starts with a byte order mark (for Excel; part of the signed bytes):
        # the JSON carries the text without it, and "utf-8-sig" says to put it back in files.
        bom = {o.name for o in outputs if o.encoding == "utf-8" and o.content.startswith("\ufeff")}
        return {"job": job.id, "files": {o.name: o.content[1:] if o.name in bom else o.content for o in outputs},
                "encodings": {o.name: "utf-8-sig" if o.name in bom else o.encoding for o in outputs},
                "certificate": sign_certificate(body, key), "public_key": public_pem(key)}

    # ------------------------------------------------------------ audit
    def audit_records(self):
        with self.p.repo.transaction() as tx:
            return tx.audit_records()

    def audit_head(self) -> dict:
        with self.p.repo.transaction() as tx:
            seq, h = tx.audit_head()
            return {"seq": seq, "hash": h}

    def audit_verify(self) -> dict:
        """The chain, the ledger rows it seals and the signed checkpoints (controller/integrity.py)."""
        from sandbox.controller.integrity import verify_store
        return verify_store(self.p.repo, self.p.settings)


def certificate_body(job, outputs, reviews) -> dict:
    if job.mode == "query":
        mechanisms = sorted({q["statistic"] for q in job.spec["queries"]})
    elif job.mode == "program":
        mechanisms = ["sample-and-aggregate", *sorted({o.get("aggregate") or job.spec.get("aggregate", "mean")
                                                        for o in job.spec["outputs"]})]
    else:
        mechanisms = ["none (reviewed, non-DP)"]
    return {
        "job": job.id, "operator": job.operator, "dataset": job.dataset, "mode": job.mode,
        "purpose": job.purpose, "spec_hash": job.spec_hash, "dataset_version": job.dataset_version,
        "policy_hash": job.policy_hash, "backend": job.backend,
        "runner_image": (job.compliance or {}).get("runner_image") or f"host interpreter ({job.backend})",
        "privacy": {"epsilon": job.epsilon, "delta": job.delta, "accounting": "pure DP, basic composition",
                    "mechanisms": mechanisms},
        # Per released table, in the certificate's own words: mechanism, noise, 95% interval method.
        "statistics": released_statistics(next((o.content for o in outputs if o.name == "result.json"), None),
                                          job.spec.get("queries") or []) if job.mode == "query" else [],
        "code_sha256": hashlib.sha256(job.code.encode()).hexdigest() if job.code else None,
        # The checks in English only (names, statuses, explanations): the signed text does not change
        # with the page's language; explanation_i18n (for the review page) stays out.
        "checks": [{k: v for k, v in c.items() if k != "explanation_i18n"}
                   for c in next((o.checks for o in outputs if o.name == "result.json"), [])],
        # Each vote with its per-file decisions and the needs_review findings its reviewer signed
        # off (core.release.decision); the reviewers' notes stay with compliance.
        "reviews": [{"reviewer": r.reviewer, "decision": r.decision,
                     "files": {n: f.get("decision") for n, f in sorted((r.files or {}).items())},
                     "signoffs": [{"output": s.get("output"), "check": s.get("check")} for s in r.signoffs or []]}
                    for r in reviews],
        "files": {o.name: o.sha256 for o in outputs},
    }

"""Data owners: register datasets, apply policies, approve runs (where the policy asks)."""
from __future__ import annotations

import secrets
from pathlib import Path

import yaml

from sandbox.controller.dispatch import send_job
from sandbox.core import lookups
from sandbox.core import permissions as perm
from sandbox.core import states as st
from sandbox.core.errors import Conflict, InvalidInput, Text
from sandbox.core.lifecycle import tell, transition
from sandbox.core.manifest import parse_manifest
from sandbox.core.policy.file import parse_policy
from sandbox.core.ports import Parts
from sandbox.core.records import Dataset, Event, PolicyVersion


def new_version_id() -> str:
    return secrets.token_hex(16)


class Owner:
    def __init__(self, parts: Parts):
        self.p = parts

    def register_dataset(self, user, manifest_path: Path, data_dir: Path) -> dict:
        """Register (a new version of) a dataset under `user`'s account: the agent side
        verifies the files next to the data; the catalog keeps only public facts."""
        from sandbox.agent import ingest
        manifest = parse_manifest(yaml.safe_load(Path(manifest_path).read_text(encoding="utf-8")))
        with self.p.repo.transaction() as tx:
            existing = tx.dataset(manifest.name)
        perm.check(user, "dataset.register", perm.Subject(dataset_owner=existing.owner_account if existing else None))
        facts = ingest.register_files(Path(data_dir), manifest)
        account = user.name if user.role == st.OWNER else (existing.owner_account if existing else "")
        with self.p.repo.transaction() as tx:
            ds = tx.dataset(manifest.name) or Dataset(name=manifest.name, manifest={}, classification="",
                                                      data_dir="", version_hash="")
            # Operators see a random id, never the content hash (a function of raw data); the
            # same content registered again keeps its id, so its jobs and releases stay together.
            if not ds.version_id or ds.version_hash != facts.content_hash:
                ds.version_id = new_version_id()
            ds.manifest, ds.classification, ds.owner = manifest.to_dict(), manifest.classification, manifest.owner
            ds.owner_account = account
            ds.data_dir, ds.version_hash = str(Path(data_dir).resolve()), facts.content_hash
            ds.bound_verified, ds.rows = facts.bound_verified, facts.rows
            tx.save_dataset(ds, Event(user.name, "dataset.registered", manifest.name,
                                      {"version": ds.version_id, "content_hash": facts.content_hash,
                                       "bound_verified": facts.bound_verified, "owner_account": account}))
        # Owner-only: the content hash and the null-unit row count are computed from the data.
        return {"name": manifest.name, "version": ds.version_id, "content_hash": facts.content_hash,
                "bound_verified": facts.bound_verified, "null_unit_rows": facts.null_unit_rows}

    def apply_policy(self, user, text: str, filename: str) -> dict:
        policy = parse_policy(text, filename)
        with self.p.repo.transaction() as tx:
            ds = lookups.dataset(tx, policy.dataset)
            perm.check(user, "policy.apply", perm.Subject(dataset_owner=ds.owner_account))
            last = tx.latest_policy(policy.dataset)
            if last is not None and last.content_hash == policy.content_hash:
                return {"dataset": policy.dataset, "version": last.version, "hash": last.content_hash,
                        "changed": False}
            version = (last.version + 1) if last else 1
            tx.add_policy_version(PolicyVersion(dataset=policy.dataset, version=version, content=text,
                                                content_hash=policy.content_hash, applied_by=user.name),
                                  Event(user.name, "policy.applied", policy.dataset,
                                        {"version": version, "hash": policy.content_hash}))
        return {"dataset": policy.dataset, "version": version, "hash": policy.content_hash, "changed": True}

    def approve_run(self, user, job_id: str, approve: bool = True, reason: str = "") -> dict:
        from sandbox.core.jobview import job_view
        with self.p.repo.transaction() as tx:
            job = lookups.job(tx, job_id, for_update=True)
            ds = lookups.dataset(tx, job.dataset)
            perm.check(user, "job.approve_run", perm.Subject(dataset_owner=ds.owner_account))
            if job.state != st.AWAITING_APPROVAL:
                raise Conflict(Text("job is {state}, not awaiting run approval", state=job.state))
            now = self.p.clock()
            if approve:
                transition(tx, job, st.QUEUED, st.OWNER, user.name, now, f"run approved, spec {job.spec_hash}")
            else:
                if not reason.strip():
                    raise InvalidInput(Text("a refusal needs a reason"), "reason")
                tell(job, Text("The data owner refused the run: {reason}", reason=reason))
                transition(tx, job, st.REJECTED, st.OWNER, user.name, now, reason)
            view = job_view(job, user.role, now)
        if approve:
            send_job(self.p, job_id)
        return view


"""Data owners: register datasets, apply policies, approve runs (where the policy asks)."""
from __future__ import annotations

import secrets
from pathlib import Path

import yaml

from sandbox.controller.dispatch import send_job
from sandbox.core import lookups
from sandbox.core import permissions as perm
from sandbox.core import states as st
from sandbox.core.errors import Conflict, InvalidInput, NotFound, Text
from sandbox.core.lifecycle import tell, transition
from sandbox.core.manifest import parse_manifest
from sandbox.core.ports import Parts
from sandbox.core.records import Dataset, DatasetVersion, Event


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

    def register_version(self, user, manifest_text: str, source: str, enforce: bool = False,
                         progress: str | None = None) -> dict:
        """Register a new version of a dataset from a path or URI under the allowed roots
        (settings.ingest_roots): copied into the store, reported on, refused or enforced by
        the agent next to the data. Returns the owner's report; nothing is half-registered."""
        return self._register(user, manifest_text, source, enforce, self.p.settings, source, progress)

    def register_upload(self, user, manifest_text: str, upload_id: str, enforce: bool = False,
                        progress: str | None = None) -> dict:
        """Register a version from the owner's own upload (agent/uploads.py), then remove it."""
        from sandbox.agent import uploads
        folder = uploads.folder(self.p.settings, user.name, upload_id)
        # The upload folder is the one root allowed for this registration.
        settings = self.p.settings.with_(ingest_roots=(str(folder),), ingest_schemes=("file",))
        result = self._register(user, manifest_text, uploads.source(folder), enforce, settings,
                                f"upload:{upload_id}", progress)
        uploads.discard(self.p.settings, user.name, upload_id)
        return result

    def _register(self, user, manifest_text: str, source: str, enforce: bool, settings, label: str,
                  progress: str | None = None) -> dict:
        from sandbox.agent.regprogress import check_token, tracker
        from sandbox.agent.registration import RegistrationRefused, register_source
        if progress is not None:  # the client's token for polling how far it has got (agent/regprogress.py)
            check_token(progress)
        try:
            raw = yaml.safe_load(manifest_text)
        except yaml.YAMLError as e:
            raise InvalidInput(f"manifest: not valid YAML ({e})", "manifest") from None
        manifest = parse_manifest(raw)
        with self.p.repo.transaction() as tx:
            existing = tx.dataset(manifest.name)
        perm.check(user, "dataset.register", perm.Subject(dataset_owner=existing.owner_account if existing else None))
        heard, finish = tracker(self.p.settings, user.name, progress)
        try:
            staged = register_source(source, manifest, settings, enforce=enforce, progress=heard)
        except InvalidInput as e:
            # Audited without the owner's figures: the refusal reason stays in the owner's answer.
            with self.p.repo.transaction() as tx:
                tx.record(Event(user.name, "dataset.registration_refused", manifest.name,
                                {"source": label, "field": e.field or "",
                                 "report_refused": isinstance(e, RegistrationRefused)}))
            raise
        finally:
            finish()
        facts = staged.facts
        account = user.name if user.role == st.OWNER else (existing.owner_account if existing else "")
        with self.p.repo.transaction() as tx:
            ds = tx.dataset(manifest.name) or Dataset(name=manifest.name, manifest={}, classification="",
                                                      data_dir="", version_hash="")
            same = ds.version_id and ds.version_hash == facts.content_hash and ds.manifest == manifest.to_dict()
            if not same:
                ds.version_id = new_version_id()
            ds.manifest, ds.classification, ds.owner = manifest.to_dict(), manifest.classification, manifest.owner
            ds.owner_account, ds.retired = account, False
            ds.data_dir, ds.version_hash = str(staged.data_dir), facts.content_hash
            ds.bound_verified, ds.rows = facts.bound_verified, facts.rows
            event = Event(user.name, "dataset.version_registered", manifest.name,
                          {"version": ds.version_id, "content_hash": facts.content_hash, "source": label,
                           "enforced": staged.enforced, "bound_verified": facts.bound_verified,
                           "owner_account": account})
            tx.save_dataset(ds, event)
            tx.save_dataset_version(DatasetVersion(
                dataset=manifest.name, version_id=ds.version_id, content_hash=facts.content_hash,
                data_dir=str(staged.data_dir), source=label, registered_by=user.name, rows=facts.rows,
                bound_verified=facts.bound_verified, enforced=staged.enforced, report=staged.report,
                manifest=manifest.to_dict()), event)
        return {"name": manifest.name, "version": ds.version_id, "content_hash": facts.content_hash,
                "rows": facts.rows, "bound_verified": facts.bound_verified, "enforced": staged.enforced,
                "report": staged.report}

    def versions(self, user, name: str) -> list[dict]:
        """The dataset's versions with their reports (owner account and compliance only)."""
        with self.p.repo.transaction() as tx:
            ds = lookups.dataset(tx, name)
            perm.check(user, "dataset.report", perm.Subject(dataset_owner=ds.owner_account))
            tx.record(Event(user.name, "dataset.report_read", name, {}))
            current = ds.version_id
            return [{"version": v.version_id, "current": v.version_id == current and not ds.retired,
                     "state": v.status, "rows": v.rows, "bound_verified": v.bound_verified, "enforced": v.enforced,
                     "content_hash": v.content_hash, "source": v.source, "registered_by": v.registered_by,
                     "registered_at": v.registered_at.isoformat(), "report": v.report}
                    for v in tx.dataset_versions(name)]

    def report(self, user, name: str, version: str | None = None) -> dict:
        versions = self.versions(user, name)
        if not versions:
            raise NotFound(f"dataset '{name}' has no version registered through `sandbox dataset register`")
        if version is None:
            return next((v for v in versions if v["current"]), versions[-1])
        found = [v for v in versions if v["version"] == version or (len(version) >= 6
                                                                    and v["version"].startswith(version))]
        if len(found) != 1:
            raise NotFound(f"dataset '{name}' has no version '{version}' (`sandbox dataset versions {name}`)")
        return found[0]

    def retire(self, user, name: str, version: str | None = None) -> dict:
        """Retire one version, or the dataset's current one: no new job runs on it; its jobs,
        releases and audit trail stay. Retiring the current version retires the dataset until
        the owner registers a new version."""
        with self.p.repo.transaction() as tx:
            ds = lookups.dataset(tx, name)
            perm.check(user, "dataset.retire", perm.Subject(dataset_owner=ds.owner_account))
            target = version or ds.version_id
            rows = [v for v in tx.dataset_versions(name) if v.version_id == target]
            event = Event(user.name, "dataset.version_retired", name, {"version": target})
            if not rows and target != ds.version_id:
                raise NotFound(f"dataset '{name}' has no version '{target}' (`sandbox dataset versions {name}`)")
            for v in rows:
                v.status = "retired"
                tx.save_dataset_version(v, event)
            if target == ds.version_id:
                ds.retired = True
                tx.save_dataset(ds, event)
        return {"name": name, "version": target, "state": "retired", "dataset_retired": target == ds.version_id}

    def apply_policy(self, user, text: str, filename: str, reason: str | None = None,
                     base_version: int | None = None) -> dict:
        """Apply (or, where the policy in force asks for a second approval, propose) a new
        version: see controller/policy_changes.py for the reason and base-version rules."""
        from sandbox.controller.policy_changes import PolicyChanges
        return PolicyChanges(self.p).apply(user, text, filename, reason, base_version)

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


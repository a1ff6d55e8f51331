"""Register a dataset version from an owner's source, next to the data: copy it into the
store, report on it against the manifest, refuse or enforce, freeze and hash it.

Either a published, read-only store folder comes out, or nothing does: every failure
removes the staging copy. The report is owner/compliance only (regreport).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sandbox.agent import ingest, regreport, sources
from sandbox.agent.regprogress import Progress, scaled
from sandbox.agent.regreport import RegistrationRefused


@dataclass(frozen=True)
class StagedVersion:
    data_dir: Path                   # store/<content_hash>, read-only
    facts: ingest.Registration
    report: dict
    enforced: bool


def _enforcement(before: dict, after: dict, counts: dict) -> dict:
    clamped = {name: col.get("below", 0) + col.get("above", 0) for name, col in (before.get("columns") or {}).items()
               if col.get("below") or col.get("above")}
    return {"rows_in": counts["rows_in"], "rows_kept": counts["rows_out"],
            "null_unit_rows_dropped": before.get("null_unit_rows", 0),
            "rows_over_bound_dropped": before.get("rows_over_bound", 0),
            "columns_dropped": before["schema"]["extra_columns"], "values_clamped": clamped,
            "after": {k: after.get(k) for k in ("rows", "units", "units_over_bound", "null_unit_rows")}}


def register_source(source: str, manifest, settings, enforce: bool = False,
                    progress: Progress | None = None) -> StagedVersion:
    """Copy, check and publish one version. RegistrationRefused (an InvalidInput carrying the
    owner's report) when the data does not fit the manifest and enforcement cannot or may not
    fix it. `progress(stage, fraction)` hears how far it has got (agent/regprogress.py)."""
    staging = sources.copy_source(source, settings, progress=scaled(progress, 0.0, 0.2))
    try:
        report = regreport.build_report(staging, manifest, progress=scaled(progress, 0.2, 0.55))
        hard, fixable = regreport.problems(report)
        if hard:
            raise RegistrationRefused("the data does not match the manifest: " + "; ".join(hard), report)
        enforced = bool(fixable) and enforce
        if fixable and not enforce:
            raise RegistrationRefused("refused: " + "; ".join(fixable) + ". Fix the data or the manifest, or "
                                      "register with --enforce (enforce=true) to store a corrected version", report)
        if enforced:
            out, counts = regreport.enforce(staging, manifest, settings.store_dir,
                                            progress=scaled(progress, 0.55, 0.7))
            sources.discard(staging)
            staging = out
            after = regreport.build_report(staging, manifest, progress=scaled(progress, 0.7, 0.8))
            report["enforcement"] = _enforcement(report, after, counts)
        if progress:
            progress("hashing and verifying the stored copy", 0.8)
        facts = ingest.register_files(staging, manifest)
        report["bound_verified"] = facts.bound_verified
        if progress:
            progress("publishing", 0.99)
        final = sources.publish(staging, settings, facts.content_hash)
    except BaseException:
        sources.discard(staging)
        raise
    return StagedVersion(data_dir=final, facts=facts, report=report, enforced=enforced)

"""What each role is shown of a job: operators see only fields that are functions of
public inputs (a coarse state, times fixed in advance), never run facts."""
from __future__ import annotations

from datetime import datetime

from sandbox.core import states as st
from sandbox.core.errors import text_from_data
from sandbox.core.records import Job


def outcome_hidden(job: Job, now: datetime) -> bool:
    return job.visible_after is not None and now < job.visible_after


def job_view(job: Job, role: str, now: datetime) -> dict:
    view = {"id": job.id, "dataset": job.dataset, "mode": job.mode, "purpose": job.purpose,
            "operator": job.operator, "epsilon": job.epsilon, "delta": job.delta,
            "spec_hash": job.spec_hash, "spec": job.spec, "policy_hash": job.policy_hash,
            "created_at": job.created_at.isoformat(),
            # A Text when stored with its template: English as a str (API), translatable (UI).
            "message": text_from_data(job.message_i18n) or job.message}
    if role == st.OPERATOR:
        # Operators see a coarse state and no run timings (timing side channel): the
        # outcome of a run shows only after the time fixed when it started.
        if outcome_hidden(job, now):
            view["state"], view["message"] = "in_progress", ""
        else:
            view["state"] = st.OPERATOR_VIEW[job.state]
        if job.visible_after is not None:
            view["outcome_visible_after"] = job.visible_after.isoformat()
    else:
        view.update({"state": job.state, "updated_at": job.updated_at.isoformat(),
                     "attempts": job.attempts, "backend": job.backend,
                     "dataset_version": job.dataset_version, "reviewers_required": job.reviewers_required})
    return view

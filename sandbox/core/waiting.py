"""What an operator may be told about waiting: where a job stands among the operator's OWN jobs
whose outcome is not yet visible, in submission order.

Computed from the operator's job views alone (core.jobview), never from run or queue state: when
other operators' jobs run, and for how long, depends on their data, so a position in the shared
queue would leak it. A job leaves this list only at moments the operator already knows: its fixed
`outcome_visible_after` time, its refusal at admission or by the owner, or its cancellation."""
from __future__ import annotations

from sandbox.core import states as st

# States an operator's view shows once the outcome is known (or the job ended without a run).
FINAL_VIEW_STATES = frozenset({st.RELEASED, st.REJECTED, st.FAILED, st.CANCELLED})


def waiting_jobs(views: list[dict]) -> list[dict]:
    """The operator's jobs whose outcome is not yet visible, oldest submission first."""
    return sorted((v for v in views if v.get("state") not in FINAL_VIEW_STATES),
                  key=lambda v: (v.get("created_at") or "", v.get("id") or ""))


def own_position(views: list[dict], job_id: str) -> dict | None:
    """{"position": n (1 = submitted first), "of": how many} for job_id among `views` (one
    operator's own job views), or None when its outcome is visible or it is not among them."""
    waiting = waiting_jobs(views)
    for i, v in enumerate(waiting, start=1):
        if v.get("id") == job_id:
            return {"position": i, "of": len(waiting)}
    return None

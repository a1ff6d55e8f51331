"""One module per job mode. Each runs its boxes (`run`) and judges what came back
(`gate`); agent/executor.py does everything else, once, for all of them (`finish`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.core.records import RunLog


@dataclass
class RunFacts:
    """What the boxes of one attempt yielded, before the release gate."""
    ok: bool
    backend: str = ""
    runner_image: str = ""
    run_log: RunLog | None = None
    compliance: dict = field(default_factory=dict)   # facts for compliance only
    payload: object = None                           # mode-specific: outputs to judge


@dataclass
class GateResult:
    checks: list                                    # check dicts, all of them
    outputs: list = field(default_factory=list)     # core.records.Output to store
    failed: str = ""                                # why the gate refused (compliance), or ""
    operator_message: str | None = None             # what the operator reads on failure
    audit: dict = field(default_factory=dict)       # more facts for the gate's audit event
    may_auto_release: bool = False                  # DP query results only


def image_digest(backend) -> str:
    # Docker runs name their image by content digest; bubblewrap runs use the host's
    # interpreter, which the certificate says instead.
    digest = getattr(backend, "image_digest", None)
    return digest() if digest else ""


def text_output(job_id: str, name: str, text: str, checks: list):
    import hashlib

    from sandbox.core.records import Output
    data = text.encode()
    return Output(job_id=job_id, name=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                  content=text, checks=checks)


def run_log(job_id: str, attempt: int, backend_name: str, result, refused: list) -> RunLog:
    return RunLog(job_id=job_id, attempt=attempt, backend=backend_name, exit_code=result.exit_code,
                  timed_out=result.timed_out, oom_killed=result.oom_killed, wall_seconds=result.wall_seconds,
                  stdout=result.stdout.decode("utf-8", "replace"), stderr=result.stderr.decode("utf-8", "replace"),
                  refused_outputs=refused)

"""Which review inputs make a valid vote, and the job decision they amount to. Pure rules.

A reviewer decides each output file, as OpenSAFELY's Airlock does: approve, request changes,
or reject (with a reason code from core.release.reasons). Approving a file takes an explicit
sign-off on each of its `needs_review` findings, so `needs_review` means a person looked.
The job decision follows from the files: all approved -> approve; any rejected -> reject with
that file's reason; otherwise (changes requested) -> reject with `changes_requested`. The
operator reads only the fixed text of the reason; notes stay with compliance.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.core.errors import Conflict, InvalidInput, Text
from sandbox.core.release.checks import FAIL, NEEDS_REVIEW
from sandbox.core.release.reasons import REASONS, reason_text

APPROVE, REQUEST_CHANGES, REJECT = "approve", "request_changes", "reject"
FILE_DECISIONS = (APPROVE, REQUEST_CHANGES, REJECT)
CHANGES_REQUESTED = "changes_requested"       # the job reason when changes are requested
NOTE_MAX_CHARS = 4000


@dataclass(frozen=True)
class FileDecision:
    decision: str
    reason: str = ""                 # a reason code, for a rejected file
    note: str = ""                   # compliance only


@dataclass(frozen=True)
class Verdict:
    """One reviewer's vote: the job decision and the inputs it rests on."""
    decision: str                    # approve | reject (the job)
    reason: str                      # a reason code, for a rejection
    files: dict[str, FileDecision] = field(default_factory=dict)
    signoffs: dict[tuple[str, str], str] = field(default_factory=dict)   # (output, check) -> note

    def files_record(self) -> dict:
        return {n: {"decision": f.decision, "reason": f.reason, "note": f.note} for n, f in self.files.items()}

    def signoffs_record(self) -> list[dict]:
        return [{"output": o, "check": c, "note": n} for (o, c), n in sorted(self.signoffs.items())]


def findings(outputs) -> list[tuple[str, str]]:
    """Every (output name, check name) a person must sign off before the output is approved."""
    seen: dict[tuple[str, str], None] = {}
    for o in outputs:
        for c in o.checks or []:
            if c.get("status") == NEEDS_REVIEW:
                seen[(o.name, c.get("name", ""))] = None
    return list(seen)


def _text(value, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(Text("{what} must be text", what=what), what)
    if len(value.strip()) > NOTE_MAX_CHARS:
        raise InvalidInput(Text("the note is longer than {n} characters", n=NOTE_MAX_CHARS), what)
    return value.strip()


def parse_signoffs(raw) -> dict[tuple[str, str], str]:
    """[{"output", "check", "note"?}, ...] -> {(output, check): note}."""
    if raw is None:
        return {}
    if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
        raise InvalidInput(Text("signoffs must be a list of {{output, check, note}} objects"), "signoffs")
    out: dict[tuple[str, str], str] = {}
    for s in raw:
        output, check = s.get("output"), s.get("check")
        if not isinstance(output, str) or not isinstance(check, str) or not output or not check:
            raise InvalidInput(Text("each sign-off names an output and a check"), "signoffs")
        out[(output, check)] = _text(s.get("note"), "signoffs")
    return out


def parse_files(raw) -> dict[str, FileDecision]:
    """{name: {"decision", "reason"?, "note"?}} -> {name: FileDecision}."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise InvalidInput(Text("files must map each output name to {{decision, reason, note}}"), "files")
    out = {}
    for name, f in raw.items():
        decision = f.get("decision")
        if decision not in FILE_DECISIONS:
            raise InvalidInput(Text("the decision on {name} must be one of: {choices}", name=str(name),
                                    choices=", ".join(FILE_DECISIONS)), "files")
        reason = _text(f.get("reason"), "files") if decision == REJECT else ""
        if decision == REJECT:
            if not reason:
                raise InvalidInput(Text("rejecting {name} needs a reason from the list: {codes}", name=str(name),
                                        codes=", ".join(REASONS)), "files")
            reason_text(reason)
        out[name] = FileDecision(decision, reason, _text(f.get("note"), "files"))
    return out


def decide(outputs, decision: str | None, reason: str, files: dict[str, FileDecision],
           signoffs: dict[tuple[str, str], str], *, run_failed: bool = False) -> Verdict:
    """One reviewer's vote from what they entered. Without per-file decisions, `decision`
    applies to every file (a job-wide approval still needs every sign-off). With them,
    `decision` may be left out; given, it must agree with what the files amount to."""
    if decision not in (None, "", APPROVE, REJECT):
        raise InvalidInput(Text("decision must be 'approve' or 'reject'"), "decision")
    if run_failed and (decision == APPROVE or any(f.decision == APPROVE for f in files.values())):
        raise Conflict(Text("cannot approve: the run failed and left nothing to release; reject it "
                            "(reason run_failed)"))
    names = [o.name for o in outputs]
    unknown = sorted(set(files) - set(names))
    if unknown:
        raise InvalidInput(Text("no output named {names} in this job", names=", ".join(unknown)), "files")
    if not files:
        if decision not in (APPROVE, REJECT):
            raise InvalidInput(Text("give a decision ('approve' or 'reject') or a decision for each file"),
                               "decision")
        if decision == REJECT and not reason:
            raise InvalidInput(Text("a rejection needs a reason from the list: {codes}", codes=", ".join(REASONS)),
                               "reason")
        files = {n: FileDecision(decision, reason if decision == REJECT else "") for n in names}
    missing = [n for n in names if n not in files]
    if missing:
        raise InvalidInput(Text("decide every file; no decision yet on {names}", names=", ".join(missing)), "files")
    derived, derived_reason = _job_decision(files, reason)
    if decision and decision != derived:
        raise InvalidInput(Text("the decisions on the files amount to '{derived}', not '{decision}'",
                                derived=derived, decision=decision), "decision")
    if derived_reason:
        reason_text(derived_reason)
    wanted = findings(outputs)
    stray = sorted(set(signoffs) - set(wanted))
    if stray:
        raise InvalidInput(Text("signed off something that is not a finding needing review: {names}",
                                names=", ".join(f"{o} / {c}" for o, c in stray)), "signoffs")
    approved = [n for n, f in files.items() if f.decision == APPROVE]
    if approved:
        failed = [o.name for o in outputs if o.name in approved
                  and any(c.get("status") == FAIL for c in (o.checks or []))]
        if failed:
            raise Conflict(Text("cannot approve: disclosure checks failed for {outputs}; reject with a reason",
                                outputs=", ".join(failed)))
        unsigned = [(o, c) for o, c in wanted if o in approved and (o, c) not in signoffs]
        if unsigned:
            raise Conflict(Text("cannot approve: sign off each finding that needs review first: {names}",
                                names=", ".join(f"{o} / {c}" for o, c in unsigned)))
    return Verdict(derived, derived_reason, dict(files), dict(signoffs))


def _job_decision(files: dict[str, FileDecision], reason: str) -> tuple[str, str]:
    decisions = {f.decision for f in files.values()}
    if not files or decisions == {APPROVE}:
        return (APPROVE, "") if files else (REJECT, reason)
    if REJECT in decisions:
        # The job-wide reason if the reviewer chose one, else the first rejected file's, in list order.
        codes = [f.reason for f in files.values() if f.decision == REJECT]
        return REJECT, reason or min(codes, key=lambda c: list(REASONS).index(c) if c in REASONS else len(REASONS))
    return REJECT, reason or CHANGES_REQUESTED


def valid_approvals(votes, outputs) -> int:
    """How many votes approve the release with every finding signed off by that reviewer.
    A vote recorded before sign-offs existed counts only where nothing needed review."""
    wanted = set(findings(outputs))
    count = 0
    for v in votes:
        signed = {(s.get("output"), s.get("check")) for s in (getattr(v, "signoffs", None) or [])}
        count += v.decision == APPROVE and wanted <= signed
    return count

"""Hash chain of audit events: each entry commits to the previous one, so any
modified, deleted, inserted or reordered entry is detected by `verify_chain`."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

GENESIS = "0" * 64


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def entry_hash(prev_hash: str, seq: int, at: str, actor: str, action: str, subject: str, payload: dict) -> str:
    body = {"prev": prev_hash, "seq": seq, "at": at, "actor": actor, "action": action,
            "subject": subject, "payload": payload}
    return hashlib.sha256(canonical(body)).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: str
    actor: str
    action: str
    subject: str
    payload: dict
    prev_hash: str
    hash: str


def verify_chain(records: list[AuditRecord]) -> list[str]:
    """Return problems found (empty when intact), each naming where it is."""
    problems = []
    prev = GENESIS
    expected_seq = 1
    for r in records:
        if r.seq != expected_seq:
            problems.append(f"entry seq={r.seq}: expected seq {expected_seq} (entry deleted, inserted or reordered)")
        if r.prev_hash != prev:
            problems.append(f"entry seq={r.seq}: does not link to the previous entry's hash")
        recomputed = entry_hash(r.prev_hash, r.seq, r.at, r.actor, r.action, r.subject, r.payload)
        if recomputed != r.hash:
            problems.append(f"entry seq={r.seq}: content does not match its hash (modified)")
        prev = r.hash
        expected_seq = r.seq + 1
    return problems

"""Signed checkpoints of the audit chain's head, kept outside the store.

The hash chain alone proves only that the entries agree with each other: whoever can write
the database can delete the last entries and reset the head, or edit an entry and re-hash
everything after it, and the chain still verifies. A checkpoint is the head (seq, hash)
signed with the installation's Ed25519 key (adapters/signing.py) and appended to
`checkpoints.jsonl` in SANDBOX_CHECKPOINT_DIR, which should live on storage the database's
administrators cannot rewrite (another host, a WORM bucket, `chattr +a`). `verify` then
finds any entry at or before a checkpoint that changed or disappeared.
"""
from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sandbox.adapters.signing import key_id, verify_with_keys
from sandbox.core.audit import AuditRecord, canonical

FILE = "checkpoints.jsonl"
KIND = "sandbox.audit-checkpoint"


def path_of(folder: Path) -> Path:
    return Path(folder) / FILE


def read(folder: Path) -> tuple[list[dict], list[str]]:
    """The checkpoints in the folder, oldest first, and problems with lines that are not
    checkpoints (a damaged file is itself a finding)."""
    p = path_of(folder)
    if not p.exists():
        return [], []
    out, problems = [], []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            body = item["certificate"]
            int(body["seq"]), str(body["hash"])
        except (ValueError, KeyError, TypeError):
            problems.append(f"{p} line {n}: not a signed checkpoint")
            continue
        item["line"] = n
        out.append(item)
    return out, problems


def write(folder: Path, key: Ed25519PrivateKey, seq: int, head_hash: str, at: datetime | None = None) -> dict | None:
    """Append a signed checkpoint of (seq, head_hash); None when the last one already holds
    this head (nothing happened since)."""
    existing, _ = read(folder)
    if existing and existing[-1]["certificate"]["seq"] == seq and existing[-1]["certificate"]["hash"] == head_hash:
        return None
    at = (at or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat()
    body = {"kind": KIND, "seq": seq, "hash": head_hash, "at": at}
    signed = {"certificate": body, "signature": base64.b64encode(key.sign(canonical(body))).decode(),
              "algorithm": "Ed25519", "key_id": key_id(key)}
    p = path_of(folder)
    p.parent.mkdir(parents=True, exist_ok=True)
    # One line per append, flushed to disk: an append-only file never has a line rewritten.
    with open(p, "a", encoding="utf-8") as f:
        f.write(json.dumps(signed, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return signed


def verify(records: list[AuditRecord], checkpoints: list[dict], keys: dict[str, str]) -> list[str]:
    """Problems (empty when every checkpoint is signed by a kept key and the chain still holds
    exactly the signed hash at each checkpoint's seq)."""
    by_seq = {r.seq: r for r in records}
    last = records[-1].seq if records else 0
    problems = []
    for cp in checkpoints:
        body = cp["certificate"]
        where = f"checkpoint line {cp.get('line')} (seq={body['seq']}, {body.get('at')})"
        if body.get("kind") != KIND or not verify_with_keys(cp, keys):
            problems.append(f"{where}: signature does not verify with any kept public key (forged or damaged)")
            continue
        seq = int(body["seq"])
        if seq > last:
            problems.append(f"{where}: the chain ends at seq={last}, before this signed head: entries "
                            f"{last + 1}..{seq} were removed (or the store was restored from an older backup)")
            continue
        rec = by_seq.get(seq)
        if seq and (rec is None or rec.hash != body["hash"]):
            problems.append(f"entry seq={seq}: its hash differs from the signed {where}: the chain was rewritten "
                            f"at or before this entry")
    return problems

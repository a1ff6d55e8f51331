"""`audit verify` and `audit checkpoint`: what proves the store was not tampered with.

Three layers, each naming what it finds: the hash chain links every audit entry to the one
before (core/audit.py); every budget-ledger row matches the audit event that sealed it
(core/ledger_chain.py); and the chain still holds the heads signed into the checkpoints
kept outside the store (adapters/checkpoints.py), so truncating it or re-hashing it after
an edit shows.
"""
from __future__ import annotations

from pathlib import Path

from sandbox.adapters import checkpoints
from sandbox.adapters.signing import load_or_create_key, public_keys
from sandbox.core.audit import verify_chain
from sandbox.core.ledger_chain import verify_ledger


def checkpoint_dir(settings) -> Path:
    return Path(settings.checkpoint_dir or settings.home / "checkpoints")


def verify_store(repo, settings) -> dict:
    # One moment of the store: read piecemeal while jobs append, the head would run ahead of
    # the entries read and a sound chain would look truncated.
    with repo.snapshot() as tx:
        records = tx.audit_records()
        head_seq, head_hash = tx.audit_head()
        entries = [e for d in tx.datasets() for e in tx.budget_entries(d.name)]
    problems = verify_chain(records)
    if records and (head_seq != records[-1].seq or head_hash != records[-1].hash):
        problems.append(f"head (seq={head_seq}) does not match the last entry (entries removed at the end)")
    ledger_problems = verify_ledger(entries, records)
    folder = checkpoint_dir(settings)
    found, unreadable = checkpoints.read(folder)
    checkpoint_problems = unreadable + checkpoints.verify(records, found, public_keys(settings.signing_key_path))
    problems += ledger_problems + checkpoint_problems
    latest = found[-1]["certificate"] if found else None
    return {"ok": not problems, "problems": problems, "entries": len(records),
            "head": {"seq": head_seq, "hash": head_hash}, "ledger_entries": len(entries),
            "checkpoints": {"count": len(found), "latest": latest and {k: latest[k] for k in ("seq", "hash", "at")},
                            "warning": None if found else f"no signed checkpoint in {folder}: truncation or a "
                                                          f"re-hashed chain cannot be detected; run "
                                                          f"`sandbox audit checkpoint`"}}


def write_checkpoint(repo, settings) -> dict | None:
    """Sign the current head into the checkpoint folder; None if it is already there. The
    chain is verified first: signing a tampered head would vouch for it."""
    result = verify_store(repo, settings)
    if not result["ok"]:
        raise RuntimeError("the audit chain does not verify, so its head is not signed: "
                           + "; ".join(result["problems"][:5]))
    key = load_or_create_key(settings.signing_key_path)
    head = result["head"]
    return checkpoints.write(checkpoint_dir(settings), key, head["seq"], head["hash"])

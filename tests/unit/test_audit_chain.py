"""Audit hash chain: modification, deletion, insertion and reordering are all detected."""
from __future__ import annotations

import dataclasses

from sandbox.core.audit import GENESIS, AuditRecord, entry_hash, verify_chain


def chain(n: int) -> list[AuditRecord]:
    out, prev = [], GENESIS
    for i in range(1, n + 1):
        payload = {"i": i}
        h = entry_hash(prev, i, f"2026-11-23T00:00:{i:02d}", "system", "job.transition", f"job{i}", payload)
        out.append(AuditRecord(i, f"2026-11-23T00:00:{i:02d}", "system", "job.transition", f"job{i}", payload, prev, h))
        prev = h
    return out


def test_an_intact_chain_verifies():
    assert verify_chain(chain(5)) == []


def test_a_modified_entry_is_detected_and_located():
    records = chain(5)
    records[2] = dataclasses.replace(records[2], payload={"i": 99})
    problems = verify_chain(records)
    assert problems and "seq=3" in problems[0] and "modified" in problems[0]


def test_a_deleted_entry_is_detected():
    records = chain(5)
    del records[1]
    assert any("seq=3" in p for p in verify_chain(records))


def test_an_inserted_entry_is_detected():
    records = chain(5)
    fake = dataclasses.replace(records[1], subject="forged")
    records.insert(2, fake)
    assert verify_chain(records)


def test_reordered_entries_are_detected():
    records = chain(5)
    records[1], records[2] = records[2], records[1]
    assert verify_chain(records)


def test_rehashing_one_entry_still_breaks_the_link_to_the_next():
    records = chain(4)
    r = records[1]
    forged_hash = entry_hash(r.prev_hash, r.seq, r.at, r.actor, r.action, "forged", r.payload)
    records[1] = dataclasses.replace(r, subject="forged", hash=forged_hash)
    assert any("seq=3" in p and "link" in p for p in verify_chain(records))

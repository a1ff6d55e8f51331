"""Signed checkpoints of the audit head, kept outside the store (issue 16): truncating the log
and resetting the head, or editing an entry and re-hashing everything after it, passes the
hash chain alone; `audit verify` finds both against the checkpoints."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, select

from sandbox.adapters.store.models import AuditEvent, AuditHead
from sandbox.bootstrap import bootstrap
from sandbox.config import load
from sandbox.controller import cli
from sandbox.controller.integrity import checkpoint_dir, write_checkpoint
from sandbox.core.audit import GENESIS, entry_hash, verify_chain
from tests.conftest import make_env


@pytest.fixture
def env(database_url, tmp_path, monkeypatch):
    values = make_env(tmp_path, database_url, tmp_path / "data")
    values["SANDBOX_CHECKPOINT_DIR"] = str(tmp_path / "elsewhere" / "checkpoints")
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


@pytest.fixture
def services(env):
    svc = bootstrap(load(env), enqueue=lambda _j: None)
    for i in range(6):
        svc.accounts.create_user(f"user{i}", "operator")
    yield svc
    svc.dispose()


def rehash_from(s, first_seq: int, last_seq: int) -> None:
    """What a database administrator covering their tracks does: fix every hash after an edit."""
    prev = s.execute(select(AuditEvent.hash).where(AuditEvent.seq == first_seq - 1)).scalar() or GENESIS
    for row in s.execute(select(AuditEvent).where(AuditEvent.seq >= first_seq).order_by(AuditEvent.seq)).scalars():
        row.prev_hash = prev
        row.hash = entry_hash(prev, row.seq, row.at, row.actor, row.action, row.subject, row.payload)
        prev = row.hash
    head = s.get(AuditHead, 1)
    head.seq, head.hash = last_seq, prev


def test_the_checkpoint_command_signs_the_head_outside_the_store(services, env, capsys):
    assert cli.main(["audit", "checkpoint"]) == 0
    assert "signed seq=6" in capsys.readouterr().out
    assert cli.main(["audit", "checkpoint"]) == 0  # nothing new: no second line
    lines = (checkpoint_dir(services.settings) / "checkpoints.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["certificate"]["seq"] == 6
    assert str(checkpoint_dir(services.settings)).startswith(env["SANDBOX_CHECKPOINT_DIR"])
    result = services.views.audit_verify()
    assert result["ok"] and result["checkpoints"]["latest"]["seq"] == 6
    assert cli.main(["audit", "verify-local"]) == 0


def test_truncating_the_log_and_resetting_the_head_is_detected(services):
    write_checkpoint(services.repo, services.settings)
    with services.store.transaction() as s:
        s.execute(delete(AuditEvent).where(AuditEvent.seq > 4))
        last = s.execute(select(AuditEvent).where(AuditEvent.seq == 4)).scalar_one()
        head = s.get(AuditHead, 1)
        head.seq, head.hash = 4, last.hash
    with services.repo.transaction() as tx:
        assert verify_chain(tx.audit_records()) == []  # the chain alone sees nothing
    result = services.views.audit_verify()
    assert not result["ok"]
    assert any("ends at seq=4" in p and "5..6 were removed" in p for p in result["problems"]), result["problems"]
    assert cli.main(["audit", "verify-local"]) == 1


def test_editing_an_entry_and_rehashing_the_rest_is_detected(services):
    write_checkpoint(services.repo, services.settings)
    services.accounts.create_user("later", "operator")
    with services.store.transaction() as s:
        s.execute(select(AuditEvent).where(AuditEvent.seq == 3)).scalar_one().actor = "mallory"
        rehash_from(s, 3, 7)
    with services.repo.transaction() as tx:
        assert verify_chain(tx.audit_records()) == []
    problems = services.views.audit_verify()["problems"]
    assert any(p.startswith("entry seq=6: its hash differs from the signed checkpoint") for p in problems), problems


def test_a_forged_checkpoint_line_is_reported(services):
    write_checkpoint(services.repo, services.settings)
    path = checkpoint_dir(services.settings) / "checkpoints.jsonl"
    line = json.loads(path.read_text())
    line["certificate"]["seq"] = 2  # moved to hide a later rewrite: the signature no longer holds
    path.write_text(path.read_text() + json.dumps(line) + "\nnot json\n")
    problems = services.views.audit_verify()["problems"]
    assert any("line 2" in p and "signature does not verify" in p for p in problems)
    assert any("line 3: not a signed checkpoint" in p for p in problems)


def test_a_tampered_chain_is_never_signed(services, capsys):
    with services.store.transaction() as s:
        s.execute(select(AuditEvent).where(AuditEvent.seq == 2)).scalar_one().actor = "mallory"
    assert cli.main(["audit", "checkpoint"]) == 1
    assert "not signed" in capsys.readouterr().err
    assert not (checkpoint_dir(services.settings) / "checkpoints.jsonl").exists()


def test_checkpoints_signed_before_a_key_rotation_still_verify(services, capsys):
    write_checkpoint(services.repo, services.settings)
    assert cli.main(["rotate-key"]) == 0
    services.accounts.create_user("later", "operator")
    write_checkpoint(services.repo, services.settings)
    lines = [json.loads(x) for x in (checkpoint_dir(services.settings) / "checkpoints.jsonl").read_text().splitlines()]
    assert len({x["key_id"] for x in lines}) == 2
    result = services.views.audit_verify()
    assert result["ok"], result["problems"]
    # Without the retired public key the older checkpoint no longer vouches for anything.
    (services.settings.signing_key_path.parent / "public" / f"{lines[0]['key_id']}.pem").unlink()
    assert any("line 1" in p for p in services.views.audit_verify()["problems"])


def test_verify_and_checkpoint_agree_with_themselves_while_others_append(services):
    # Read piecemeal on PostgreSQL, the head could run ahead of the entries read and a sound
    # chain would look truncated, or the checkpointer would refuse to sign.
    import threading
    stop, errors = threading.Event(), []

    def append(n):
        i = 0
        while not stop.is_set():
            try:
                services.accounts.create_user(f"busy{n}-{i}", "operator")
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(e))
            i += 1

    writers = [threading.Thread(target=append, args=(n,)) for n in range(2)]
    for t in writers:
        t.start()
    try:
        results = [services.views.audit_verify() for _ in range(15)]
        for _ in range(3):
            write_checkpoint(services.repo, services.settings)  # raises if the chain looked broken
    finally:
        stop.set()
        for t in writers:
            t.join()
    assert errors == []
    assert all(r["ok"] for r in results), [r["problems"] for r in results if not r["ok"]]
    assert services.views.audit_verify()["ok"]

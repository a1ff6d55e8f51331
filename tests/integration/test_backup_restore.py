"""Backup and restore (issue 16): a backup of the store and the signing key restores into a
fresh database whose audit chain verifies and whose key still vouches for a release
certificate issued before the backup; a restore never overwrites a store in use."""
from __future__ import annotations

import json

import pytest

from sandbox.adapters.signing import load_or_create_key, public_pem, verify_certificate, verify_with_keys
from sandbox.adapters.store.db import Store
from sandbox.bootstrap import bootstrap
from sandbox.config import load
from sandbox.controller import cli
from sandbox.core import states as st
from tests.conftest import make_env, make_services, need_backend
from tests.integration.test_ledger_store import TIGHT_POLICY


def released_job(svc) -> str:
    user = svc.accounts.authenticate("op-token")
    job = svc.operator.submit(user, {"mode": "query", "dataset": "health_visits", "purpose": "public_health_planning",
                                     "queries": [{"name": "n", "statistic": "count", "epsilon": 0.1}]})
    job_id = job["job"]["id"]
    assert svc.agent.execute(job_id) == st.AWAITING_REVIEW
    svc.compliance.review(svc.accounts.authenticate("rev-token"), job_id, "approve")
    return job_id


def use_env(monkeypatch, env: dict) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)


@pytest.mark.bwrap
def test_a_backup_restores_into_a_fresh_database_with_its_chain_and_certificates(
        database_url, demo_datasets_dir, tmp_path, monkeypatch, capsys):
    need_backend("bwrap")
    old_home = tmp_path / "old"
    svc = make_services(old_home, demo_datasets_dir, database_url=database_url, policy=TIGHT_POLICY,
                        users=[("operator", "operator", "op-token"), ("rev", "compliance", "rev-token")])
    job_id = released_job(svc)
    release = svc.views.release(svc.accounts.authenticate("rev-token"), job_id)
    certificate, old_public = release["certificate"], release["public_key"]
    before = svc.views.audit_verify()
    assert before["ok"], before["problems"]
    svc.dispose()

    use_env(monkeypatch, make_env(old_home, database_url, demo_datasets_dir))
    backup = tmp_path / "backup"
    assert cli.main(["backup", str(backup)]) == 0
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["tables"]["audit_events"]["rows"] == before["entries"]
    assert (backup / "keys" / "signing_key.pem").stat().st_mode & 0o077 == 0
    assert cli.main(["backup", str(backup)]) == 2  # never into a folder already holding something

    # A fresh database and a fresh home (no key): a new SQLite file, or the PostgreSQL schema dropped.
    if database_url.startswith("sqlite"):
        fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        fresh_url = database_url
        old_store = Store(database_url)
        old_store.drop_all()
        old_store.dispose()
    new_env = make_env(tmp_path / "new", fresh_url, demo_datasets_dir)
    use_env(monkeypatch, new_env)
    if not database_url.startswith("sqlite"):
        # A server started once on the new database: its schema and genesis head hold no history.
        bootstrap(load(new_env), enqueue=lambda _j: None).dispose()
    capsys.readouterr()
    assert cli.main(["restore", str(backup)]) == 0
    assert '"ok": true' in capsys.readouterr().out

    restored = bootstrap(load(new_env), enqueue=lambda _j: None)
    try:
        result = restored.views.audit_verify()
        assert result["ok"] and result["entries"] == before["entries"] and result["head"] == before["head"]
        assert result["ledger_entries"] == before["ledger_entries"] == 2
        assert restored.views.public_key() == old_public
        assert verify_certificate(certificate, restored.views.public_key())
        again = restored.views.release(restored.accounts.authenticate("rev-token"), job_id)
        assert again["certificate"]["certificate"] == certificate["certificate"]
        # New rows get ids after the restored ones (PostgreSQL sequences were reset).
        assert restored.operator.submit(restored.accounts.authenticate("op-token"), {
            "mode": "query", "dataset": "health_visits", "purpose": "public_health_planning",
            "queries": [{"name": "n", "statistic": "count", "epsilon": 0.1}]})["admitted"]
        assert restored.views.audit_verify()["ok"]
    finally:
        restored.dispose()
    # Restoring again over the now populated database is refused.
    assert cli.main(["restore", str(backup)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_rotating_the_key_keeps_old_certificates_verifiable(tmp_path, monkeypatch, capsys):
    from sandbox.adapters.signing import key_id, public_keys, sign_certificate
    key_path = tmp_path / "keys" / "release_ed25519.pem"
    monkeypatch.setenv("SANDBOX_HOME", str(tmp_path))
    monkeypatch.setenv("SANDBOX_SIGNING_KEY", str(key_path))
    old_key = load_or_create_key(key_path)
    old_cert = sign_certificate({"job": "a"}, old_key)
    assert cli.main(["rotate-key"]) == 0
    assert key_id(old_key) in capsys.readouterr().out
    new_key = load_or_create_key(key_path)
    new_cert = sign_certificate({"job": "b"}, new_key)
    assert new_cert["key_id"] == key_id(new_key) != old_cert["key_id"] == key_id(old_key)
    kept = public_keys(key_path)
    assert set(kept) == {key_id(old_key), key_id(new_key)}
    assert verify_with_keys(old_cert, kept) and verify_with_keys(new_cert, kept)
    assert not verify_certificate(old_cert, public_pem(new_key))  # the old one needs its own key
    assert verify_certificate(old_cert, kept[old_cert["key_id"]])
    forged = dict(new_cert, certificate={"job": "c"})
    assert not verify_with_keys(forged, kept)

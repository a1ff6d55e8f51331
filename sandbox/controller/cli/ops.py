"""Operations commands run on the server with no token (docs/operations.md): signed audit
checkpoints, a local `audit verify`, backup and restore of the store and the signing key,
and signing-key rotation."""
from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from sandbox.controller.cli.common import UsageError, print_json


def add_parsers(sub, audit_sub) -> None:
    t = audit_sub.add_parser("checkpoint", help="sign the audit head into SANDBOX_CHECKPOINT_DIR (on the server)")
    t.add_argument("--every", type=float, metavar="SECONDS", nargs="?", const=-1.0,
                   help="keep signing every SECONDS (default SANDBOX_CHECKPOINT_SECONDS, 300) until stopped")
    t.set_defaults(func=cmd_audit_checkpoint)
    t = audit_sub.add_parser("verify-local", help="verify chain, ledger and checkpoints on the server, no token")
    t.set_defaults(func=cmd_audit_verify_local)
    s = sub.add_parser("backup", help="back up the store and the signing keys into a new folder (on the server)")
    s.add_argument("folder")
    s.set_defaults(func=cmd_backup)
    s = sub.add_parser("restore", help="restore a backup into an empty database and this server's key folder")
    s.add_argument("folder")
    s.set_defaults(func=cmd_restore)
    s = sub.add_parser("rotate-key", help="replace the release signing key; old certificates stay verifiable")
    s.set_defaults(func=cmd_rotate_key)


def _repo(settings):
    from sandbox.adapters.store.db import Store
    from sandbox.adapters.store.repository import SqlRepository
    store = Store(settings.database_url)
    return store, SqlRepository(store, lambda: datetime.now(timezone.utc))


def cmd_audit_checkpoint(args) -> int:
    from sandbox.config import load
    from sandbox.controller.integrity import checkpoint_dir, write_checkpoint
    settings = load()
    every = settings.checkpoint_seconds if args.every == -1.0 else args.every
    if every is not None and every <= 0:
        raise UsageError("--every needs a positive number of seconds")
    store, repo = _repo(settings)
    try:
        while True:
            try:
                written = write_checkpoint(repo, settings)
            except Exception as e:  # noqa: BLE001 - a loop keeps going; the next round retries
                print(f"error: {e}", file=sys.stderr, flush=True)
                if every is None:
                    return 1
                written = False
            if written is None:
                print(f"checkpoint: head unchanged since the last checkpoint in {checkpoint_dir(settings)}")
            elif written:
                body = written["certificate"]
                print(f"checkpoint: signed seq={body['seq']} hash={body['hash'][:16]}... key {written['key_id']} "
                      f"into {checkpoint_dir(settings)}", flush=True)
            if every is None:
                return 0
            time.sleep(every)
    finally:
        store.dispose()


def cmd_audit_verify_local(args) -> int:
    from sandbox.config import load
    from sandbox.controller.integrity import verify_store
    settings = load()
    store, repo = _repo(settings)
    try:
        result = verify_store(repo, settings)
    finally:
        store.dispose()
    print_json(result)
    return 0 if result["ok"] else 1


def cmd_backup(args) -> int:
    from sandbox.adapters.signing import key_id, load_or_create_key, public_dir
    from sandbox.adapters.store.backup import BackupError, dump
    from sandbox.config import load
    settings = load()
    folder = Path(args.folder)
    if folder.exists() and any(folder.iterdir()):
        raise UsageError(f"{folder}: exists and is not empty; name a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # it holds the private signing key
    store, _ = _repo(settings)
    try:
        manifest = dump(store, folder)
    except BackupError as e:
        raise UsageError(str(e)) from None
    finally:
        store.dispose()
    key = load_or_create_key(settings.signing_key_path)
    keys = folder / "keys"
    (keys / "public").mkdir(parents=True)
    shutil.copy2(settings.signing_key_path, keys / "signing_key.pem")
    (keys / "signing_key.pem").chmod(0o600)
    for pem in public_dir(settings.signing_key_path).glob("*.pem"):
        shutil.copy2(pem, keys / "public" / pem.name)
    manifest.update(created_at=datetime.now(timezone.utc).isoformat(), signing_key_id=key_id(key))
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    rows = sum(t["rows"] for t in manifest["tables"].values())
    print(f"backup: {rows} rows in {len(manifest['tables'])} tables (revision {manifest['alembic_revision']}) "
          f"and signing key {manifest['signing_key_id']} in {folder}")
    print("  keep it where the private key is safe; registered data files are not in it (back up the "
          "data store separately)")
    return 0


def cmd_restore(args) -> int:
    from sandbox.adapters.signing import public_dir
    from sandbox.adapters.store.backup import BackupError, load as load_tables
    from sandbox.config import load
    from sandbox.controller.integrity import verify_store
    settings = load()
    folder = Path(args.folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        raise UsageError(f"{folder}: no readable manifest.json; name a folder made by `sandbox backup`")
    tables = manifest.get("tables") if isinstance(manifest, dict) else None
    if not isinstance(tables, dict) or not all((folder / "tables" / f"{t}.jsonl").is_file() for t in tables):
        raise UsageError(f"{folder}: the backup is incomplete (manifest.json or tables/ damaged)")
    key_src = folder / "keys" / "signing_key.pem"
    if not key_src.is_file():
        raise UsageError(f"{key_src}: missing; a backup holds the signing key, restore from a complete one")
    target = settings.signing_key_path
    if target.exists() and target.read_bytes() != key_src.read_bytes():
        raise UsageError(f"{target}: another signing key is already there; move it away (or point "
                         f"SANDBOX_SIGNING_KEY elsewhere) before restoring this backup's key")
    store, repo = _repo(settings)
    try:
        try:
            counts = load_tables(store, folder, manifest)
        except BackupError as e:
            raise UsageError(str(e)) from None
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(key_src, target)
        target.chmod(0o600)
        public_dir(target).mkdir(parents=True, exist_ok=True)
        for pem in (folder / "keys" / "public").glob("*.pem"):
            shutil.copy2(pem, public_dir(target) / pem.name)
        result = verify_store(repo, settings)
    finally:
        store.dispose()
    print(f"restore: {sum(counts.values())} rows into {len(counts)} tables; signing key "
          f"{manifest.get('signing_key_id')}")
    print_json(result)
    return 0 if result["ok"] else 1


def cmd_rotate_key(args) -> int:
    from sandbox.adapters.signing import public_dir, rotate_key
    from sandbox.config import load
    settings = load()
    old, new = rotate_key(settings.signing_key_path)
    print(f"signing key rotated: {old} -> {new}; new certificates and checkpoints are signed with {new}; "
          f"every public key stays in {public_dir(settings.signing_key_path)} (GET /api/v1/public-keys)")
    return 0

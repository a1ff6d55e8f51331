"""Backup and restore of the store as portable JSON lines, one file per table.

Portable rather than pg_dump: the same backup restores into SQLite or PostgreSQL (moving
the embedded default to PostgreSQL is a restore), and a person can read it. Every table is
read in one transaction (REPEATABLE READ on PostgreSQL, the write lock on SQLite), so the
backup is one consistent moment: the audit chain, its head and the ledger agree. Restore
creates the schema at the backup's migration revision, loads the rows, resets PostgreSQL's
id sequences, then migrates to this code's revision.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

from sqlalchemy import DateTime, func, inspect, select, text

from sandbox.adapters.store.db import Store
from sandbox.adapters.store.models import Base

FORMAT = "sandbox-store-backup/1"
BATCH = 2000


class BackupError(Exception):
    """The backup cannot be made or restored; the message says why and what to do."""


def _encode(value):
    return value.isoformat() if isinstance(value, datetime) else value


def _decode(column, value):
    if value is not None and isinstance(column.type, DateTime):
        return datetime.fromisoformat(value)
    return value


def _revision(conn) -> str | None:
    from alembic.runtime.migration import MigrationContext
    return MigrationContext.configure(conn).get_current_revision()


def dump(store: Store, folder: Path) -> dict:
    """Write every table to folder/tables/<name>.jsonl; returns the manifest (also written)."""
    tables_dir = folder / "tables"
    manifest = {"format": FORMAT, "dialect": store.engine.dialect.name, "tables": {}}
    with store.engine.connect() as conn:
        if not store.is_sqlite:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            manifest["alembic_revision"] = _revision(conn)
            if manifest["alembic_revision"] is None:
                raise BackupError("there is no store at SANDBOX_DATABASE_URL (no schema); check the setting")
            tables_dir.mkdir(parents=True)
            for table in Base.metadata.sorted_tables:
                order = list(table.primary_key.columns)
                path = tables_dir / f"{table.name}.jsonl"
                digest, count = hashlib.sha256(), 0
                with open(path, "w", encoding="utf-8") as f:
                    for row in conn.execute(select(table).order_by(*order)).mappings():
                        line = json.dumps({k: _encode(v) for k, v in row.items()}, ensure_ascii=False,
                                          sort_keys=True) + "\n"
                        f.write(line)
                        digest.update(line.encode())
                        count += 1
                manifest["tables"][table.name] = {"rows": count, "sha256": digest.hexdigest()}
    return manifest


def _check_empty(store: Store) -> None:
    """Refuse a database holding anything but a new store's genesis head (a server started
    on it once creates that row): a restore must never mix two histories."""
    names = set(inspect(store.engine).get_table_names())
    with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name not in names:
                continue
            stmt = select(func.count()).select_from(table)
            if table.name == "audit_head":
                stmt = stmt.where(table.c.seq > 0)
            if conn.execute(stmt).scalar():
                raise BackupError(f"the target database is not empty (table {table.name} has rows); "
                                  f"restore into a new database (SANDBOX_DATABASE_URL)")


def load(store: Store, folder: Path, manifest: dict) -> dict:
    """Load a dump into an empty database; returns rows restored per table."""
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{folder}: not a store backup of format {FORMAT}")
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    unknown = set(manifest["tables"]) - set(tables)
    if unknown:
        raise BackupError(f"{folder}: tables {', '.join(sorted(unknown))} are unknown to this version; "
                          f"restore with the version that made the backup")
    for name, info in manifest["tables"].items():
        data = (folder / "tables" / f"{name}.jsonl").read_bytes()
        if hashlib.sha256(data).hexdigest() != info["sha256"]:
            raise BackupError(f"{folder}/tables/{name}.jsonl: content does not match the backup's manifest")
    from alembic import command
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError
    cfg = store.alembic_config()
    revision = manifest.get("alembic_revision") or "head"
    try:
        ScriptDirectory.from_config(cfg).get_revision(revision)
    except CommandError:
        raise BackupError(f"{folder}: made at schema revision {revision}, which this version does not know; "
                          f"restore with the version that made it") from None
    _check_empty(store)
    # Nothing is lost by dropping an empty schema, and the backup's rows then meet the schema
    # of their own revision, whatever revision a server started here may have created.
    store.drop_all()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    counts = {}
    with store.engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name not in manifest["tables"]:
                continue
            rows, count = [], 0
            with open(folder / "tables" / f"{table.name}.jsonl", encoding="utf-8") as f:
                for line in f:
                    raw = json.loads(line)
                    rows.append({c.name: _decode(c, raw[c.name]) for c in table.columns if c.name in raw})
                    if len(rows) == BATCH:  # bounded memory for a long audit log
                        conn.execute(table.insert(), rows)
                        count, rows = count + len(rows), []
            if rows:
                conn.execute(table.insert(), rows)
            counts[table.name] = count + len(rows)
            if not store.is_sqlite:
                _reset_sequences(conn, table)
    store.migrate()
    return counts


def _reset_sequences(conn, table) -> None:
    # Rows came with their ids; the next id PostgreSQL hands out must follow them.
    for col in table.primary_key.columns:
        if col.autoincrement is True or (col.autoincrement == "auto" and col.type.python_type is int
                                          and len(table.primary_key.columns) == 1):
            seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                               {"t": table.name, "c": col.name}).scalar()
            if seq:
                conn.execute(text(f"SELECT setval('{seq}', COALESCE((SELECT MAX({col.name}) FROM {table.name}), 0) + 1,"
                                  f" false)"))

"""Engine, sessions and the two serialization points (budget, audit chain).

SQLite: every transaction starts with BEGIN IMMEDIATE, so writers serialize on
the database lock (the embedded default has one machine and few writers).
PostgreSQL: rows of budget_locks / audit_head are locked FOR UPDATE.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from sandbox.core.audit import GENESIS
from sandbox.adapters.store.models import AuditHead, Base


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record):
            # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE instead of pysqlite.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Store:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def alembic_config(self):
        from alembic.config import Config
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        return cfg

    def migrate(self) -> None:
        """Bring the schema to the latest Alembic revision (creates it on a new store)."""
        from alembic import command
        cfg = self.alembic_config()
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def create_all(self) -> None:
        self.migrate()
        with self.transaction() as s:
            if s.get(AuditHead, 1) is None:
                s.add(AuditHead(id=1, seq=0, hash=GENESIS))

    def drop_all(self) -> None:
        from sqlalchemy import text
        Base.metadata.drop_all(self.engine)
        with self.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))

    @contextmanager
    def transaction(self):
        session: Session = self._sessions()
        try:
            with session.begin():
                yield session
        finally:
            session.close()

    def lock_for_update(self, session: Session, stmt):
        """SELECT ... FOR UPDATE on PostgreSQL; SQLite is already serialized."""
        if not self.is_sqlite:
            stmt = stmt.with_for_update()
        return session.execute(stmt).scalar_one_or_none()

    def dispose(self) -> None:
        self.engine.dispose()


def head_stmt():
    return select(AuditHead).where(AuditHead.id == 1)

"""The tables behind adapters/store/repository.py (the records themselves are plain
dataclasses in core/records.py). API tokens are stored only as sha256 hashes; the
ledger and the audit log are append-only tables."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy import false as sa_false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sandbox.core.records import utcnow


class Base(DeclarativeBase):
    type_annotation_map = {dict: JSON, list: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)   # notices by mail (0009)


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    manifest: Mapped[dict] = mapped_column(JSON)
    classification: Mapped[str] = mapped_column(String(4))
    owner: Mapped[str] = mapped_column(String(64), default="")
    owner_account: Mapped[str] = mapped_column(String(64), default="", server_default="")
    data_dir: Mapped[str] = mapped_column(Text)          # in-domain path, never shown to operators
    version_hash: Mapped[str] = mapped_column(String(64))  # owner/compliance only
    bound_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)  # owner/compliance metering only
    version_id: Mapped[str] = mapped_column(String(64), default="", server_default="")  # what operators see
    retired: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DatasetVersion(Base):
    """A registered version's store copy and registration report (owner/compliance only)."""
    __tablename__ = "dataset_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    version_id: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    data_dir: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    registered_by: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    bound_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    enforced: Mapped[bool] = mapped_column(Boolean, default=False)
    report: Mapped[dict] = mapped_column(JSON, default=dict)
    manifest: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("dataset", "version_id"),)


class PolicyVersion(Base):
    __tablename__ = "policy_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    applied_by: Mapped[str] = mapped_column(String(64))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")
    base_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="applied")
    decided_by: Mapped[str] = mapped_column(String(64), default="")
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    __table_args__ = (UniqueConstraint("dataset", "version"),)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    operator: Mapped[str] = mapped_column(String(64), index=True)
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    mode: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict] = mapped_column(JSON)
    spec_hash: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(Text, default="")        # program mode: the analyst's Python file
    compliance: Mapped[dict] = mapped_column(JSON, default=dict)  # compliance-only run facts (e.g. blocks)
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float, default=0.0)
    state: Mapped[str] = mapped_column(String(24), index=True)
    policy_version_id: Mapped[int | None] = mapped_column(ForeignKey("policy_versions.id"), nullable=True)
    policy_hash: Mapped[str] = mapped_column(String(64), default="")
    dataset_version: Mapped[str] = mapped_column(String(64), default="")
    reviewers_required: Mapped[int] = mapped_column(Integer, default=1)
    message: Mapped[str] = mapped_column(Text, default="")       # operator-safe text only
    # The same message as template + parameters (domain.errors.text_to_data), so the UI can
    # show it in the reader's language; None for messages with nothing to translate.
    message_i18n: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Fixed when the run starts (start + the policy's wall-time limit): operators see the
    # outcome of a real-data run no earlier, so its timing cannot reveal the data.
    visible_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    backend: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RunLog(Base):
    """Diagnostics of a real-data run: compliance-only, size-capped."""
    __tablename__ = "run_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    backend: Mapped[str] = mapped_column(String(32))
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    timed_out: Mapped[bool] = mapped_column(Boolean, default=False)
    oom_killed: Mapped[bool] = mapped_column(Boolean, default=False)
    wall_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    stdout: Mapped[str] = mapped_column(Text, default="")
    stderr: Mapped[str] = mapped_column(Text, default="")
    refused_outputs: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BlockResult(Base):
    """One sample-and-aggregate block's (clamped) vector: in-domain, compliance-only.
    Unique per attempt and block, so a redelivered block task never counts twice."""
    __tablename__ = "block_results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    block: Mapped[int] = mapped_column(Integer)
    vector: Mapped[list] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(16), default="")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    wall_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    stderr: Mapped[str] = mapped_column(Text, default="")
    __table_args__ = (UniqueConstraint("job_id", "attempt", "block"),)


class Output(Base):
    """A file produced by a job, kept in-domain until released."""
    __tablename__ = "outputs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)  # utf-8 text, or base64 for binary files
    encoding: Mapped[str] = mapped_column(String(8), default="utf-8")
    checks: Mapped[list] = mapped_column(JSON, default=list)
    __table_args__ = (UniqueConstraint("job_id", "name"),)


class ReleasedAggregate(Base):
    """Every released exact count table (reviewed mode), keyed by dataset version and
    grouping, so a later release can be checked for differencing against all of them."""
    __tablename__ = "released_aggregates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    dataset_version: Mapped[str] = mapped_column(String(64), index=True)
    grouping: Mapped[list] = mapped_column(JSON)
    cells: Mapped[list] = mapped_column(JSON)       # [[key values...], count]
    job_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128))


class Review(Base):
    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))   # approve | reject
    reason: Mapped[str] = mapped_column(Text, default="")   # a reason code (core.release.reasons)
    note: Mapped[str] = mapped_column(Text, default="", server_default="")   # compliance only
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Per-file decisions and sign-offs of needs_review findings (core.release.decision).
    files: Mapped[dict] = mapped_column(JSON, default=dict, server_default="{}")
    signoffs: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    __table_args__ = (UniqueConstraint("job_id", "reviewer"),)


class LedgerEntry(Base):
    """Append-only budget ledger. One reserve and at most one resolution per job,
    enforced by the unique constraint so a retried task cannot charge twice."""
    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    operator: Mapped[str] = mapped_column(String(64), index=True)
    job_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))        # reserve | charge | release
    resolution: Mapped[str] = mapped_column(String(8))  # "reserve" or "resolve": uniqueness key
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float, default=0.0)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("job_id", "resolution"),)


class BudgetLock(Base):
    """One row per (dataset, operator), locked FOR UPDATE while admitting a job so
    concurrent admissions against one budget serialize (PostgreSQL)."""
    __tablename__ = "budget_locks"
    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator: Mapped[str] = mapped_column(String(64), primary_key=True)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                     autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """Single row locked while appending so the chain stays linear under concurrency."""
    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    hash: Mapped[str] = mapped_column(String(64))


class Notice(Base):
    """An inbox entry (core/notices.py). Random id; listed by visible_at, never created_at."""
    __tablename__ = "notices"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict] = mapped_column(JSON)
    visible_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    dedup_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    emailed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (UniqueConstraint("recipient", "dedup_key"),)

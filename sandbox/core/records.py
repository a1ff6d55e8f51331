"""What the sandbox keeps, as plain records: no ORM, no I/O.

The repository (`core.ports.Repository`) loads and saves copies of these; a change
is stored only when a use case hands the record back to a mutator together with the
audit event that explains it. API tokens are kept only as SHA-256 hashes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Event:
    """One audit event, as a use case states it; the repository chains and stores it."""
    actor: str
    action: str
    subject: str
    payload: dict = field(default_factory=dict)


@dataclass
class User:
    name: str
    role: str
    token_hash: str
    password_hash: str = ""
    active: bool = True
    id: int | None = None
    created_at: datetime = field(default_factory=utcnow)
    email: str | None = None         # where notices are mailed (core/notices.py); None: inbox only


@dataclass
class Dataset:
    name: str
    manifest: dict
    classification: str
    data_dir: str                    # in-domain path, never shown to operators
    version_hash: str                # sha256 of the files: owner/compliance only (a function of raw data)
    owner: str = ""                  # the publishing body named in the manifest (a label)
    owner_account: str = ""          # the owner user who registered it and may act on it
    bound_verified: bool = False
    rows: int = 0                    # owner/compliance metering only
    # The version operators see (catalog, jobs, certificates): random, one per registered
    # content, so nothing they see is computed from raw data.
    version_id: str = ""
    # A retired dataset (its current version retired by the owner) admits no new jobs; its
    # jobs, releases and audit trail stay.
    retired: bool = False
    id: int | None = None
    registered_at: datetime = field(default_factory=utcnow)


@dataclass
class DatasetVersion:
    """One registered version of a dataset: its copy in the sandbox's store and the owner's
    registration report. Everything but `version_id` and `state` is owner/compliance only
    (computed from raw data or naming in-domain paths)."""
    dataset: str
    version_id: str                  # the opaque id operators see (Dataset.version_id)
    content_hash: str
    data_dir: str                    # the read-only copy under $SANDBOX_HOME/store/<sha256>
    source: str                      # where the owner's data came from (path or URI)
    registered_by: str
    rows: int = 0
    bound_verified: bool = False
    enforced: bool = False           # rewritten by enforcement (drop nulls, truncate, clamp)
    report: dict = field(default_factory=dict)   # the registration report (owner/compliance)
    manifest: dict = field(default_factory=dict)
    status: str = "active"           # active | retired
    id: int | None = None
    registered_at: datetime = field(default_factory=utcnow)


@dataclass
class PolicyVersion:
    """One version of a dataset's policy. `state`: applied (in force until a later applied
    version), proposed (waits for a second person, not in force) or declined. `applied_by`
    and `applied_at` name who submitted it and when; a decision fills the decided_* fields."""
    dataset: str
    version: int
    content: str
    content_hash: str
    applied_by: str
    id: int | None = None
    applied_at: datetime = field(default_factory=utcnow)
    reason: str = ""                 # why the owner changed it ("" for rows from before reasons)
    base_version: int | None = None  # the version the editor started from
    state: str = "applied"           # applied | proposed | declined
    decided_by: str = ""
    decided_at: datetime | None = None
    decision_reason: str = ""


@dataclass
class Job:
    id: str
    operator: str
    dataset: str
    mode: str
    purpose: str
    spec: dict
    spec_hash: str
    epsilon: float
    state: str
    code: str = ""
    compliance: dict = field(default_factory=dict)   # compliance-only run facts
    delta: float = 0.0
    policy_version_id: int | None = None
    policy_hash: str = ""
    dataset_version: str = ""
    reviewers_required: int = 1
    message: str = ""                # operator-safe text only
    message_i18n: dict | None = None # the same message as template + parameters
    attempts: int = 0
    lease_expires: datetime | None = None
    # Fixed when the run starts: operators see the outcome no earlier, so its timing
    # cannot reveal the data.
    visible_after: datetime | None = None
    backend: str = ""
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass
class RunLog:
    """Diagnostics of a real-data run: compliance-only, size-capped."""
    job_id: str
    attempt: int
    backend: str
    exit_code: int | None = None
    timed_out: bool = False
    oom_killed: bool = False
    wall_seconds: float = 0.0
    stdout: str = ""
    stderr: str = ""
    refused_outputs: list = field(default_factory=list)
    id: int | None = None
    created_at: datetime = field(default_factory=utcnow)


@dataclass
class BlockResult:
    """One sample-and-aggregate block's clamped vector: in-domain, compliance-only."""
    job_id: str
    attempt: int
    block: int
    vector: list
    reason: str = ""
    exit_code: int | None = None
    wall_seconds: float = 0.0
    stderr: str = ""
    id: int | None = None


@dataclass
class Output:
    """A file produced by a job, kept in-domain until released."""
    job_id: str
    name: str
    sha256: str
    size: int
    content: str                     # utf-8 text, or base64 for binary files
    encoding: str = "utf-8"
    checks: list = field(default_factory=list)
    id: int | None = None


@dataclass
class ReleasedAggregate:
    """A released exact count table, kept for differencing checks of later releases."""
    dataset: str
    dataset_version: str
    grouping: list
    cells: list                      # [[key values...], count]
    job_id: str
    name: str
    id: int | None = None


@dataclass
class Review:
    job_id: str
    reviewer: str
    decision: str                    # approve | reject
    reason: str = ""                 # a code of core.release.reasons (rejections)
    note: str = ""                   # the reviewer's own words: compliance only, never the operator
    id: int | None = None
    at: datetime = field(default_factory=utcnow)
    # Per-file decisions {name: {decision, reason, note}} and sign-offs of needs_review findings
    # [{output, check, note}] (core.release.decision); their notes are compliance only.
    files: dict = field(default_factory=dict)
    signoffs: list = field(default_factory=list)


@dataclass
class BudgetEntry:
    """One row of the append-only budget ledger: one reserve and at most one
    resolution (charge or release) per job."""
    dataset: str
    operator: str
    job_id: str
    kind: str                        # reserve | charge | release
    resolution: str                  # "reserve" or "resolve": the uniqueness key
    epsilon: float
    delta: float = 0.0
    id: int | None = None
    at: datetime = field(default_factory=utcnow)


@dataclass
class Notice:
    """One inbox entry (站内信, core/notices.py). Its recipient sees it from `visible_at` on,
    never earlier: for an operator's job outcome that is the job's fixed visible_after. The
    id is random and lists sort by `visible_at`, so neither orders it by `created_at` (when
    the outcome was really decided), which no operator is ever shown."""
    id: str
    recipient: str                   # a user name
    kind: str                        # core.notices.KINDS
    subject: str                     # the job id or the dataset name
    params: dict                     # the public values its text is made from
    visible_at: datetime
    dedup_key: str                   # one notice per (recipient, dedup_key)
    created_at: datetime = field(default_factory=utcnow)
    read_at: datetime | None = None
    emailed_at: datetime | None = None

"""The one place environment variables are read.

Everything else receives a `Settings` object, so tests can build their own
without touching the process environment.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from sandbox.core.schedule import GVISOR, Timing

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    home: Path                      # writable state: store, broker, job work areas
    database_url: str
    broker_url: str
    backend: str                    # auto | docker | bwrap
    docker_image: str
    docker_runtime: str             # runc | runsc
    datasets_dir: Path              # generated Parquet (in-domain, never served raw)
    manifests_dir: Path             # public dataset manifests
    policies_dir: Path              # data owners' policy files
    signing_key_path: Path
    lease_margin_seconds: int = 60   # a running job's lease = policy wall time + this margin
    sweep_seconds: float = 15.0      # how often each worker looks for lost jobs
    # Classification levels whose real-data runs must use Docker under gVisor (runsc).
    runsc_levels: tuple = ("L4",)
    # Every run and program block holds its worker slot until the bound fixed in advance
    # (core/schedule.py), so when a worker frees up, and thus when an operator's next job
    # starts, never depends on the data. Off only for tests that do not measure timing.
    hold_slots: bool = True
    # The machine's start-up costs that bounds are calibrated from (core/schedule.py): one
    # for Docker runc and bubblewrap, one for gVisor. Public configuration, never measured per run.
    timing: Timing = field(default_factory=Timing)
    timing_gvisor: Timing = GVISOR
    # Where owners may register data from (docs/owners.md): local folders and URI prefixes
    # (s3://bucket/prefix); a source outside them is refused. Schemes a URI may use.
    ingest_roots: tuple = ()
    ingest_schemes: tuple = ("file", "s3")
    s3_endpoint: str = ""            # an S3-compatible server (http://host:port); empty: AWS
    # Where registered versions live for every worker host (agent/objectstore.py): empty keeps
    # them in this host's store_dir only; s3://bucket/prefix puts them in object storage, and
    # each worker host caches a version by content address under its own store_dir.
    data_store: str = ""
    upload_max_bytes: int = 2 << 30  # web/API uploads larger than this are refused
    # Production web serving (docs/operations.md). Behind a reverse proxy, trust exactly one
    # hop of X-Forwarded-For/-Proto/-Host/-Prefix; never set it when clients reach the API
    # directly (they could then forge their address).
    behind_proxy: bool = False
    # /metrics answers only a request carrying this bearer token (administrators' scraper);
    # empty: /metrics is off (404). Operators never hold it.
    metrics_token: str = ""
    # Signed checkpoints of the audit head (adapters/checkpoints.py): put this folder on
    # storage the database's administrators cannot rewrite. None: $SANDBOX_HOME/checkpoints.
    checkpoint_dir: Path | None = None
    checkpoint_seconds: float = 300.0   # `sandbox audit checkpoint --every` default period
    # Notices by mail (controller/notices.py): smtp://[user:password@]host:port (smtp+starttls://,
    # smtps:// for TLS); empty: inbox only. Sent by the sweeper or `sandbox notices send-mail`.
    smtp_url: str = ""
    mail_from: str = "sandbox@localhost"

    def timing_for(self, classification: str | None) -> Timing:
        """The start-up costs of the backend that runs this classification's data."""
        gvisor = classification in self.runsc_levels or (self.backend != "bwrap" and self.docker_runtime == "runsc")
        return self.timing_gvisor if gvisor else self.timing

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def store_dir(self) -> Path:
        """Registered versions' read-only copies, one folder per content hash."""
        return self.home / "store"

    @property
    def broker_dir(self) -> Path:
        return self.home / "broker"

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)


def load(environ: dict | None = None) -> Settings:
    env = os.environ if environ is None else environ
    home = Path(env.get("SANDBOX_HOME", REPO_ROOT / "var")).resolve()
    return Settings(
        home=home,
        database_url=env.get("SANDBOX_DATABASE_URL", f"sqlite:///{home / 'sandbox.db'}"),
        broker_url=env.get("SANDBOX_BROKER_URL", "filesystem://"),
        backend=env.get("SANDBOX_BACKEND", "auto"),
        docker_image=env.get("SANDBOX_IMAGE", "sandbox-runner:latest"),
        docker_runtime=env.get("SANDBOX_DOCKER_RUNTIME", "runc"),
        datasets_dir=Path(env.get("SANDBOX_DATASETS_DIR", home / "data")).resolve(),
        manifests_dir=Path(env.get("SANDBOX_MANIFESTS_DIR", REPO_ROOT / "datasets")).resolve(),
        policies_dir=Path(env.get("SANDBOX_POLICIES_DIR", REPO_ROOT / "policies")).resolve(),
        signing_key_path=Path(env.get("SANDBOX_SIGNING_KEY", home / "keys" / "release_ed25519.pem")),
        lease_margin_seconds=int(env.get("SANDBOX_LEASE_MARGIN_SECONDS", "60")),
        sweep_seconds=float(env.get("SANDBOX_SWEEP_SECONDS", "15")),
        runsc_levels=tuple(x for x in env.get("SANDBOX_RUNSC_LEVELS", "L4").split(",") if x),
        hold_slots=env.get("SANDBOX_HOLD_SLOTS", "1") != "0",
        timing=_timing(env, "SANDBOX_TIMING", Timing()),
        timing_gvisor=_timing(env, "SANDBOX_TIMING_GVISOR", GVISOR),
        ingest_roots=tuple(x.strip() for x in env.get("SANDBOX_INGEST_ROOTS", str(home / "incoming")).split(",")
                           if x.strip()),
        ingest_schemes=tuple(x.strip() for x in env.get("SANDBOX_INGEST_SCHEMES", "file,s3").split(",") if x.strip()),
        s3_endpoint=env.get("SANDBOX_S3_ENDPOINT", ""),
        data_store=env.get("SANDBOX_DATA_STORE", "").strip().rstrip("/"),
        upload_max_bytes=int(env.get("SANDBOX_UPLOAD_MAX_BYTES", str(2 << 30))),
        behind_proxy=env.get("SANDBOX_BEHIND_PROXY", "0") == "1",
        metrics_token=env.get("SANDBOX_METRICS_TOKEN", ""),
        checkpoint_dir=Path(env.get("SANDBOX_CHECKPOINT_DIR") or home / "checkpoints"),
        checkpoint_seconds=float(env.get("SANDBOX_CHECKPOINT_SECONDS", "300")),
        smtp_url=env.get("SANDBOX_SMTP_URL", "").strip(),
        mail_from=env.get("SANDBOX_MAIL_FROM", "sandbox@localhost").strip(),
    )


def _timing(env, name: str, default: Timing) -> Timing:
    """SANDBOX_TIMING="box_start_seconds=1.5,child_start_cpu_seconds=5": overrides by field."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    values = {}
    for item in raw.split(","):
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in Timing.__dataclass_fields__:
            raise ValueError(f"{name}: unknown field {key!r} (one of {', '.join(Timing.__dataclass_fields__)})")
        try:
            values[key] = int(value) if key == "child_start_cpu_seconds" else float(value)
        except ValueError:
            raise ValueError(f"{name}: {key} must be a number, not {value!r}") from None
    return replace(default, **values)


@dataclass(frozen=True)
class ClientSettings:
    url: str
    token: str


def load_client(environ: dict | None = None) -> ClientSettings:
    env = os.environ if environ is None else environ
    return ClientSettings(url=env.get("SANDBOX_URL", "http://127.0.0.1:5000"), token=env.get("SANDBOX_TOKEN", ""))

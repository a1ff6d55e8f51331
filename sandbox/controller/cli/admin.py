"""Commands run on the server by whoever administers it: each builds the application
itself (bootstrap, the web app, a worker) and works on the store directly, with no
token. Demo setup, `make run`, serving, workers, sweeping lost jobs, creating users."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time

from sandbox.controller.cli.common import print_json

DEMO_USERS = (("operator", "operator"), ("operator2", "operator"), ("owner", "owner"),
              ("reviewer", "compliance"), ("reviewer2", "compliance"))


def cmd_setup(args) -> int:
    info = setup(rows=args.rows, quiet=False)
    print_json(info["tokens"])
    return 0


def setup(rows: int | None = None, quiet: bool = True, settings=None, only: set | None = None) -> dict:
    """Generate demo data, register datasets, apply policies, create demo users.
    Idempotent: existing data (unless --rows asks for another size) and tokens are kept."""
    from sandbox import datagen
    from sandbox.bootstrap import bootstrap
    from sandbox.config import load
    settings = settings or load()
    # The demo data is registered as owners register theirs (owner.register_version): copied
    # from its folder into the store and reported on, so that folder is an allowed root here.
    settings = settings.with_(ingest_roots=(*settings.ingest_roots, str(settings.datasets_dir)))
    services = bootstrap(settings, enqueue=lambda _j: None)
    tokens_path = settings.home / "tokens.json"
    tokens = json.loads(tokens_path.read_text()) if tokens_path.exists() else {}
    for name, role in DEMO_USERS:
        tokens[name] = services.accounts.create_user(name, role, tokens.get(name))
    tokens_path.write_text(json.dumps(tokens, indent=2))
    tokens_path.chmod(0o600)
    # The demo datasets belong to the demo owner account, which alone acts on them.
    owner = services.accounts.user("owner")
    infos = {}
    for manifest_path in sorted(settings.manifests_dir.glob("*.yaml")):
        manifest = datagen.load_manifest(manifest_path)
        if only is not None and manifest.name not in only:
            continue
        out = settings.datasets_dir / manifest.name
        t0 = time.monotonic()
        if rows is not None or not datagen.is_ready(out):
            datagen.generate(manifest, rows if rows is not None else manifest.default_rows, out)
        reg = services.owner.register_version(owner, manifest_path.read_text(encoding="utf-8"), str(out))
        infos[manifest.name] = {**reg, "seconds": round(time.monotonic() - t0, 1)}
        policy_path = settings.policies_dir / f"{manifest.name}.yaml"
        if policy_path.exists():
            services.owner.apply_policy(owner, policy_path.read_text(encoding="utf-8"), str(policy_path),
                                        f"demo set-up from {policy_path.name}")
    # Web UI passwords: random, kept across runs like the tokens; set again only
    # when the store does not have them (a recreated database).
    from sandbox.controller.web.auth import password_is, set_password
    passwords_path = settings.home / "passwords.json"
    passwords = json.loads(passwords_path.read_text()) if passwords_path.exists() else {}
    for name, _role in DEMO_USERS:
        passwords.setdefault(name, secrets.token_urlsafe(12))
        if not password_is(services, name, passwords[name]):
            set_password(services, name, passwords[name])
    passwords_path.write_text(json.dumps(passwords, indent=2))
    passwords_path.chmod(0o600)
    if not quiet:
        for name, info in infos.items():
            print(f"dataset {name}: version {info['version'][:12]} ({info['seconds']} s)", file=sys.stderr)
    services.dispose()
    return {"datasets": infos, "tokens": tokens, "passwords": passwords}


def cmd_up(args) -> int:
    """make run: set up, start a worker, serve the API until interrupted."""
    from sandbox.config import load
    settings = load()
    info = setup(rows=args.rows, quiet=False, settings=settings)
    from sandbox.agent.backends.select import get_backend
    try:
        backend = get_backend(settings).name
    except Exception as e:  # noqa: BLE001 - shown to the person starting the service
        backend = f"none ({e})"
    worker = subprocess.Popen([sys.executable, "-m", "sandbox.controller.cli", "worker"], start_new_session=True)
    # Signs the audit head every SANDBOX_CHECKPOINT_SECONDS into SANDBOX_CHECKPOINT_DIR (docs/operations.md).
    checkpointer = subprocess.Popen([sys.executable, "-m", "sandbox.controller.cli", "audit", "checkpoint", "--every"],
                                    start_new_session=True, stdout=subprocess.DEVNULL)
    url = f"http://{args.host}:{args.port}"
    print("\n=== public-data sandbox is up ===")
    print(f"API:      {url}/api/v1   (OpenAPI: {url}/api/v1/openapi.json)")
    print(f"Backend:  {backend}")
    print("Tokens (export SANDBOX_TOKEN=... to use the CLI):")
    for name, token in info["tokens"].items():
        role = dict(DEMO_USERS).get(name, "?")
        print(f"  {role:<10} {name:<10} {token}")
    print(f"Web UI:   {url}/ui   (sign in with a name and password below; kept in {settings.home / 'passwords.json'})")
    for name, password in info["passwords"].items():
        role = dict(DEMO_USERS).get(name, "?")
        print(f"  {role:<10} {name:<10} {password}")
    print(f"Try:      SANDBOX_TOKEN={info['tokens']['operator']} .venv/bin/sandbox submit jobs/health_query.json --wait")
    print("Ctrl-C to stop.\n", flush=True)
    # The same server as production (gunicorn, deploy/gunicorn.conf.py), one process on SQLite.
    api = subprocess.Popen(gunicorn_argv(args.host, args.port), start_new_session=True)
    # Stopped by Ctrl-C or SIGTERM alike: both end in the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    code = 0
    try:
        code = api.wait()  # returns only when gunicorn could not start or died
    except KeyboardInterrupt:
        pass
    finally:
        for proc in (api, worker, checkpointer):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        api.wait(timeout=30)
        worker.wait(timeout=30)
        checkpointer.wait(timeout=30)
    return 1 if code else 0


def gunicorn_argv(host: str | None, port: int | None, config: str | None = None) -> list[str]:
    """The API under gunicorn with the deployment's config file; --host/--port, when given,
    override its bind (SANDBOX_BIND)."""
    from sandbox.config import REPO_ROOT
    conf = config or os.environ.get("SANDBOX_GUNICORN_CONFIG") or str(REPO_ROOT / "deploy" / "gunicorn.conf.py")
    argv = [sys.executable, "-m", "gunicorn", "--config", conf]
    if host is not None or port is not None:
        argv += ["--bind", f"{host or '127.0.0.1'}:{port or 5000}"]
    return argv


def cmd_serve(args) -> int:
    """Production: the API under gunicorn (workers, timeouts, access log: deploy/gunicorn.conf.py);
    this process becomes gunicorn's master, so signals from systemd or Docker reach it."""
    argv = gunicorn_argv(args.host, args.port, args.config)
    sys.stdout.flush()
    os.execv(argv[0], argv)
    return 0  # not reached


def cmd_worker(args) -> int:
    import os

    from sandbox.agent.tasks import run_worker
    from sandbox.controller.cli.common import UsageError
    # Each box takes CPUs of its own (agent/backends/cpuslots.py); with more concurrent boxes
    # than CPUs, a box would wait for one past its worker slot's bound.
    cpus = len(os.sched_getaffinity(0))
    if args.concurrency > cpus:
        raise UsageError(f"--concurrency {args.concurrency} exceeds the {cpus} CPUs this worker may use; "
                         f"every box needs a CPU of its own: use at most {cpus}, or more hosts")
    run_worker(concurrency=args.concurrency)
    return 0


def cmd_sweep(args) -> int:
    from sandbox.bootstrap import bootstrap
    services = bootstrap()
    print_json(services.agent.sweep())
    return 0


def cmd_user_create(args) -> int:
    from sandbox.bootstrap import bootstrap
    services = bootstrap(enqueue=lambda _j: None)
    print(services.accounts.create_user(args.name, args.role))
    return 0


def cmd_notices_send_mail(args) -> int:
    """`sandbox notices send-mail`: the sweeper's notices round (licence-expiring scan, mail of
    notices now visible) once, for cron where no worker runs."""
    from sandbox.bootstrap import bootstrap
    print_json(bootstrap(enqueue=lambda _j: None).notices.tick())
    return 0


def cmd_user_email(args) -> int:
    from sandbox.bootstrap import bootstrap
    bootstrap(enqueue=lambda _j: None).notices.set_email(args.name, args.address)
    print(f"{args.name}: notices mailed to {args.address}" if args.address else f"{args.name}: no mail address")
    return 0

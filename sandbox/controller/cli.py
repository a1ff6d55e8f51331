"""`sandbox` command line: local administration (setup, up, worker) and, over
HTTP, the commands of the three roles. Exit codes: 0 ok, 1 refused or failed,
2 bad input (with a message saying what to fix)."""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

DEMO_USERS = (("operator", "operator"), ("operator2", "operator"), ("owner", "owner"),
              ("reviewer", "compliance"), ("reviewer2", "compliance"))


class UsageError(Exception):
    """Bad input from the command line: exit code 2."""


def _print(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def _client(args):
    from sandbox.client import Sandbox
    from sandbox.config import load_client
    env = load_client()
    token = args.token or env.token
    if not token:
        raise UsageError("no token: pass --token or set SANDBOX_TOKEN (make run prints the demo tokens)")
    return Sandbox(args.url or env.url, token)


# ------------------------------------------------------------------ local admin
def cmd_setup(args) -> int:
    info = setup(rows=args.rows, quiet=False)
    _print(info["tokens"])
    return 0


def setup(rows: int | None = None, quiet: bool = True, settings=None, only: set | None = None) -> dict:
    """Generate demo data, register datasets, apply policies, create demo users.
    Idempotent: existing data (unless --rows asks for another size) and tokens are kept."""
    from sandbox import datagen
    from sandbox.bootstrap import bootstrap
    from sandbox.config import load
    settings = settings or load()
    services = bootstrap(settings, enqueue=lambda _j: None)
    infos = {}
    for manifest_path in sorted(settings.manifests_dir.glob("*.yaml")):
        manifest = datagen.load_manifest(manifest_path)
        if only is not None and manifest.name not in only:
            continue
        out = settings.datasets_dir / manifest.name
        t0 = time.monotonic()
        if rows is not None or not datagen.is_ready(out):
            datagen.generate(manifest, rows if rows is not None else manifest.default_rows, out)
        reg = services.register_dataset(manifest_path, out)
        infos[manifest.name] = {**reg, "seconds": round(time.monotonic() - t0, 1)}
        policy_path = settings.policies_dir / f"{manifest.name}.yaml"
        if policy_path.exists():
            services.apply_policy(policy_path.read_text(encoding="utf-8"), str(policy_path), "owner")
    tokens_path = settings.home / "tokens.json"
    tokens = json.loads(tokens_path.read_text()) if tokens_path.exists() else {}
    for name, role in DEMO_USERS:
        tokens[name] = services.create_user(name, role, tokens.get(name))
    tokens_path.write_text(json.dumps(tokens, indent=2))
    tokens_path.chmod(0o600)
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
    services.store.dispose()
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
    try:
        from sandbox.controller.web import create_app
        create_app(settings).run(host=args.host, port=args.port, threaded=True, use_reloader=False)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    return 0


def cmd_serve(args) -> int:
    from sandbox.controller.web import create_app
    create_app().run(host=args.host, port=args.port, threaded=True, use_reloader=False)
    return 0


def cmd_worker(args) -> int:
    from sandbox.agent.tasks import run_worker
    run_worker(concurrency=args.concurrency)
    return 0


def cmd_sweep(args) -> int:
    from sandbox.bootstrap import bootstrap
    _print(bootstrap().sweep())
    return 0


def cmd_user_create(args) -> int:
    from sandbox.bootstrap import bootstrap
    token = bootstrap(enqueue=lambda _j: None).create_user(args.name, args.role)
    print(token)
    return 0


def cmd_policy_validate(args) -> int:
    from sandbox.core.policy import PolicyError, parse_policy
    bad = 0
    for f in args.files:
        try:
            p = parse_policy(Path(f).read_text(encoding="utf-8"), f)
            print(f"{f}: ok (dataset {p.dataset}, {p.classification}, hash {p.content_hash[:12]})")
        except PolicyError as e:
            print(str(e), file=sys.stderr)
            bad += 1
        except OSError as e:
            raise UsageError(f"{f}: cannot read ({e.strerror})")
    return 2 if bad else 0


def cmd_policy_diff(args) -> int:
    from sandbox.core.policy import diff_policies, parse_policy
    text = _read(args.file)
    parse_policy(text, args.file)
    dataset = parse_policy(text, args.file).dataset
    current = _client(args).policy(dataset)
    print(diff_policies(current["content"], text, f"applied v{current['version']}", args.file))
    return 0


def cmd_policy_apply(args) -> int:
    text = _read(args.file)
    from sandbox.core.policy import parse_policy
    parse_policy(text, args.file)  # validate locally first: clear errors with line numbers
    _print(_client(args).apply_policy(text, args.file))
    return 0


def cmd_verify_release(args) -> int:
    from sandbox.adapters.signing import verify_certificate
    try:
        signed = json.loads(_read(args.file))
    except ValueError:
        raise UsageError(f"{args.file}: not a JSON certificate")
    key = _read(args.public_key)
    if verify_certificate(signed, key):
        cert = signed["certificate"]
        print(f"OK: certificate of job {cert.get('job')} is signed by this key")
        if args.files_dir:
            import hashlib
            for name, digest in cert.get("files", {}).items():
                p = Path(args.files_dir) / name
                actual = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
                if actual != digest:
                    print(f"MISMATCH: {name}", file=sys.stderr)
                    return 1
                print(f"  {name}: sha256 matches")
        return 0
    print("INVALID: the signature does not match (tampered certificate or wrong key)", file=sys.stderr)
    return 1


# ------------------------------------------------------------------ role commands
def cmd_datasets(args) -> int:
    c = _client(args)
    _print(c.dataset(args.name) if args.name else c.datasets())
    return 0


def cmd_mock(args) -> int:
    data = _client(args).mock(args.name, args.format, args.rows)
    if args.output:
        Path(args.output).write_bytes(data)
        print(f"wrote {args.output}")
    else:
        sys.stdout.buffer.write(data)
    return 0


def cmd_submit(args) -> int:
    c = _client(args)
    # The server parses and validates the text (JSON or YAML) with the same rules for
    # every client, so the CLI sends it unchanged; a program job also sends its code.
    result = c.submit(_submission_text(args.file), dry_run=args.dry_run)
    if args.dry_run or not args.wait or not result.get("admitted"):
        _print(result)
        return 0 if result.get("admitted", True) else 1
    job = result["job"]
    print(f"submitted job {job['id']} ({job['state']})", file=sys.stderr)
    job = _follow(c, job["id"])
    _print(job)
    return 0


def _program_code(spec_path: str, spec: dict) -> str:
    name = spec.get("program")
    if not isinstance(name, str) or not name:
        raise UsageError("a program job spec names its Python file in \"program\"")
    return _read(str(Path(spec_path).parent / name))


def _submission_text(path: str) -> str:
    from sandbox.core.specs.query import load_spec_text
    text = _read(path)
    try:
        spec = load_spec_text(text)
    except Exception:  # noqa: BLE001 - the server reports the parse error with what to fix
        return text
    if isinstance(spec, dict) and spec.get("mode") in ("program", "reviewed"):
        return json.dumps({"spec": spec, "code": _program_code(path, spec)}, ensure_ascii=False)
    return text


def _follow(c, job_id: str) -> dict:
    last = None
    while True:
        job = c.job(job_id)
        if job["state"] != last:
            print(f"  state: {job['state']}", file=sys.stderr)
            last = job["state"]
        if job["state"] in ("released", "rejected", "failed", "cancelled", "awaiting_review"):
            return job
        if job["state"] == "in_progress" and _waited_long(job_id):
            return job
        time.sleep(0.5)


_started: dict = {}


def _waited_long(job_id: str, limit: float = 900) -> bool:
    _started.setdefault(job_id, time.monotonic())
    return time.monotonic() - _started[job_id] > limit


def cmd_run_mock(args) -> int:
    """Run a job on mock data through the same runner and backend, showing everything."""
    from sandbox.config import load
    from sandbox.core.manifest import parse_manifest
    from sandbox.core.specs.query import load_spec_text
    from sandbox.agent.backends.select import get_backend
    from sandbox.agent.mockrun import run_on_mock
    if not args.mock:
        raise UsageError("only --mock runs are local; submit real-data jobs with `sandbox submit`")
    raw = load_spec_text(_read(args.file))
    if not isinstance(raw, dict) or not isinstance(raw.get("dataset"), str):
        raise UsageError("the job spec must name its dataset")
    public = _client(args).dataset(raw["dataset"])
    manifest = parse_manifest(public)
    code = _program_code(args.file, raw) if raw.get("mode") in ("program", "reviewed") else None
    report = run_on_mock(raw, manifest, get_backend(load()), rows=args.rows, code=code)
    _print(report)
    return 0 if report["exit_code"] == 0 and all(c["status"] == "pass" for c in report["checks"]) else 1


def cmd_jobs(args) -> int:
    _print(_client(args).jobs(args.state))
    return 0


def cmd_status(args) -> int:
    c = _client(args)
    _print(_follow(c, args.job_id) if args.wait else c.job(args.job_id))
    return 0


def cmd_cancel(args) -> int:
    _print(_client(args).cancel(args.job_id))
    return 0


def cmd_download(args) -> int:
    paths = _client(args).download(args.job_id, args.output)
    for p in paths:
        print(p)
    return 0


def cmd_budget(args) -> int:
    _print(_client(args).budget(args.dataset, args.operator))
    return 0


def cmd_review(args) -> int:
    c = _client(args)
    if args.action == "list":
        _print(c.review_queue())
    elif args.action == "show":
        _print(c.review_detail(_need(args.job_id, "job id")))
    else:
        if args.action == "reject" and not args.reason:
            raise UsageError("a rejection needs --reason (the operator will read it)")
        _print(c.review(_need(args.job_id, "job id"), args.action, args.reason or ""))
    return 0


def cmd_run_approval(args) -> int:
    _print(_client(args).run_approval(args.job_id, args.decision, args.reason or ""))
    return 0


def cmd_audit_verify(args) -> int:
    result = _client(args).audit_verify()
    _print(result)
    return 0 if result["ok"] else 1


def cmd_audit_head(args) -> int:
    _print(_client(args).audit_head())
    return 0


def cmd_consumption(args) -> int:
    _print(_client(args).consumption(args.dataset))
    return 0


def cmd_metering(args) -> int:
    if args.csv:
        sys.stdout.write(_client(args).metering("csv"))
    else:
        _print(_client(args).metering())
    return 0


def _need(value, what):
    if not value:
        raise UsageError(f"missing {what}")
    return value


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{path}: cannot read ({e.strerror})")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sandbox", description="Public-data sandbox (数据可用不可见)")
    p.add_argument("--url", help="API base URL (default $SANDBOX_URL or http://127.0.0.1:5000)")
    p.add_argument("--token", help="API token (default $SANDBOX_TOKEN)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("setup", help="generate demo data, register datasets, apply policies, create demo users")
    s.add_argument("--rows", type=int, help="rows per dataset (default: each manifest's default_rows)")
    s.set_defaults(func=cmd_setup)
    s = sub.add_parser("up", help="setup, then run a worker and the API until interrupted (make run)")
    s.add_argument("--rows", type=int)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=5000)
    s.set_defaults(func=cmd_up)
    s = sub.add_parser("serve", help="run the API")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=5000)
    s.set_defaults(func=cmd_serve)
    s = sub.add_parser("worker", help="run a Celery worker")
    s.add_argument("--concurrency", type=int, default=1)
    s.set_defaults(func=cmd_worker)
    s = sub.add_parser("sweep", help="recover jobs of lost workers now")
    s.set_defaults(func=cmd_sweep)
    s = sub.add_parser("user-create", help="create a user and print its token once")
    s.add_argument("name")
    s.add_argument("--role", required=True, choices=["operator", "owner", "compliance"])
    s.set_defaults(func=cmd_user_create)

    s = sub.add_parser("datasets", help="list datasets, or show one's schema and metadata")
    s.add_argument("name", nargs="?")
    s.set_defaults(func=cmd_datasets)
    s = sub.add_parser("mock", help="download mock data (generated from the manifest alone)")
    s.add_argument("name")
    s.add_argument("-o", "--output")
    s.add_argument("--format", choices=["csv", "parquet"], default="csv")
    s.add_argument("--rows", type=int, default=1000)
    s.set_defaults(func=cmd_mock)
    s = sub.add_parser("submit", help="submit a job spec (JSON or YAML)")
    s.add_argument("file")
    s.add_argument("--dry-run", action="store_true", help="show cost and balance after, reserve nothing")
    s.add_argument("--wait", action="store_true", help="follow the job's state")
    s.set_defaults(func=cmd_submit)
    s = sub.add_parser("run", help="run a job locally on mock data (--mock), showing outputs, stdout, errors")
    s.add_argument("file")
    s.add_argument("--mock", action="store_true", required=True)
    s.add_argument("--rows", type=int, default=2000)
    s.set_defaults(func=cmd_run_mock)
    s = sub.add_parser("jobs", help="list jobs")
    s.add_argument("--state")
    s.set_defaults(func=cmd_jobs)
    s = sub.add_parser("status", help="show a job")
    s.add_argument("job_id")
    s.add_argument("--wait", action="store_true")
    s.set_defaults(func=cmd_status)
    s = sub.add_parser("cancel", help="cancel a job that has not started")
    s.add_argument("job_id")
    s.set_defaults(func=cmd_cancel)
    s = sub.add_parser("download", help="download a released result and its certificate")
    s.add_argument("job_id")
    s.add_argument("-o", "--output", default=".")
    s.set_defaults(func=cmd_download)
    s = sub.add_parser("budget", help="privacy-budget balance")
    s.add_argument("dataset")
    s.add_argument("--operator")
    s.set_defaults(func=cmd_budget)
    s = sub.add_parser("review", help="compliance: list | show | approve | reject")
    s.add_argument("action", choices=["list", "show", "approve", "reject"])
    s.add_argument("job_id", nargs="?")
    s.add_argument("--reason")
    s.set_defaults(func=cmd_review)
    s = sub.add_parser("run-approval", help="data owner: approve or reject a job before it runs")
    s.add_argument("decision", choices=["approve", "reject"])
    s.add_argument("job_id")
    s.add_argument("--reason")
    s.set_defaults(func=cmd_run_approval)
    s = sub.add_parser("policy", help="data owner: validate | diff | apply policy files")
    psub = s.add_subparsers(dest="policy_command", required=True)
    t = psub.add_parser("validate")
    t.add_argument("files", nargs="+")
    t.set_defaults(func=cmd_policy_validate)
    t = psub.add_parser("diff")
    t.add_argument("file")
    t.set_defaults(func=cmd_policy_diff)
    t = psub.add_parser("apply")
    t.add_argument("file")
    t.set_defaults(func=cmd_policy_apply)
    s = sub.add_parser("verify-release", help="verify a release certificate offline")
    s.add_argument("file")
    s.add_argument("--public-key", required=True)
    s.add_argument("--files-dir", help="also check the sha256 of released files in this folder")
    s.set_defaults(func=cmd_verify_release)
    s = sub.add_parser("audit", help="audit log")
    asub = s.add_subparsers(dest="audit_command", required=True)
    t = asub.add_parser("verify", help="verify the hash chain; says where it is broken")
    t.set_defaults(func=cmd_audit_verify)
    t = asub.add_parser("head", help="print the chain head (seq, hash) for anchoring elsewhere")
    t.set_defaults(func=cmd_audit_head)
    s = sub.add_parser("consumption", help="owner/compliance: budget consumption per operator and period")
    s.add_argument("dataset")
    s.set_defaults(func=cmd_consumption)
    s = sub.add_parser("metering", help="owner/compliance: jobs, run seconds, rows, budget, releases per month")
    s.add_argument("--csv", action="store_true")
    s.set_defaults(func=cmd_metering)
    return p


def main(argv: list[str] | None = None) -> int:
    from sandbox.client import ApiError
    from sandbox.core.errors import InvalidInput
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, InvalidInput) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ApiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if e.status == 400 else 1
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        if "Connection" in type(e).__name__ or "connection" in str(e).lower():
            print("error: cannot reach the sandbox API (is `make run` running? set SANDBOX_URL)", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())

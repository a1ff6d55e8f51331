"""Commands of the three roles (operator, data owner, compliance), run from any machine:
they reach the sandbox only through its HTTP API (`sandbox.client`) with the person's
token. Two need no server at all: `policy validate` and `verify-release` check files
offline. `run --mock` fetches the public manifest over HTTP, then runs the job on mock
data through a local isolation backend."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from sandbox.controller.cli import render, render_plan
from sandbox.controller.cli.common import UsageError, print_json, read_text, show
from sandbox.controller.cli.follow import follow


def _client(args):
    from sandbox.client import Sandbox
    from sandbox.config import load_client
    env = load_client()
    token = args.token or env.token
    if not token:
        raise UsageError("no token: pass --token or set SANDBOX_TOKEN (make run prints the demo tokens)")
    return Sandbox(args.url or env.url, token)


def cmd_policy_validate(args) -> int:
    from sandbox.core.policy.file import PolicyError, parse_policy
    bad = 0
    for f in args.files:
        try:
            p = parse_policy(read_text(f), f)
            print(f"{f}: ok (dataset {p.dataset}, {p.classification}, hash {p.content_hash[:12]})")
        except PolicyError as e:
            print(str(e), file=sys.stderr)
            bad += 1
    return 2 if bad else 0


def cmd_policy_diff(args) -> int:
    from sandbox.core.policy.file import diff_policies, parse_policy
    text = read_text(args.file)
    parse_policy(text, args.file)
    dataset = parse_policy(text, args.file).dataset
    current = _client(args).policy(dataset)
    # No policy applied yet (content None): the whole file shows as new.
    label = f"applied v{current['version']}" if current["content"] is not None else "no policy applied yet"
    print(diff_policies(current["content"], text, label, args.file))
    return 0


def cmd_policy_apply(args) -> int:
    text = read_text(args.file)
    from sandbox.core.policy.file import parse_policy
    parse_policy(text, args.file)  # validate locally first: clear errors with line numbers
    if not (args.reason or "").strip():
        raise UsageError("policy apply: say why the policy changes with --reason \"...\" "
                         "(it is kept with the version and in the audit log)")
    print_json(_client(args).apply_policy(text, args.file, args.reason, args.base))
    return 0


def cmd_verify_release(args) -> int:
    from sandbox.adapters.signing import verify_certificate
    try:
        signed = json.loads(read_text(args.file))
    except ValueError:
        raise UsageError(f"{args.file}: not a JSON certificate")
    key = read_text(args.public_key)
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


def cmd_datasets(args) -> int:
    c = _client(args)
    if args.name:
        show(args, c.dataset(args.name), render.dataset)
    else:
        show(args, c.datasets(), render.datasets)
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
    job = _submit_and_follow(c, _submission_text(args.file), args)
    if isinstance(job, int):
        return job
    job, code = job
    show(args, job, render.job)
    return code


def _submit_and_follow(c, submission, args) -> tuple[dict, int] | int:
    """Submit; with --wait (and an admitted job) follow it to its end and return the job
    and the exit code; otherwise print the answer and return the exit code."""
    result = c.submit(submission, dry_run=args.dry_run)
    if args.dry_run or not args.wait or not result.get("admitted"):
        show(args, result, render_plan.dry_run if args.dry_run else render.submitted)
        return 0 if result.get("admitted", True) else 1
    job = result["job"]
    print(f"submitted job {job['id']} ({job['state']})", file=sys.stderr)
    return follow(c, job["id"], args.timeout)


def cmd_query(args) -> int:
    """`sandbox query DATASET "SELECT ..."`: a SQL query job, compiled and checked by the
    server like any query spec (sandbox/core/specs/sql.py); "@file.sql" reads the SQL from a file."""
    sql = read_text(args.sql[1:]) if args.sql.startswith("@") else args.sql
    spec = {"mode": "query", "dataset": args.dataset, "purpose": args.purpose, "sql": sql}
    if args.epsilon:
        spec["epsilon"] = args.epsilon[0] if len(args.epsilon) == 1 else args.epsilon
    c = _client(args)
    job = _submit_and_follow(c, spec, args)
    if isinstance(job, int):
        return job
    job, code = job
    if job["state"] == "released" and not args.json:
        from sandbox.client import released_frames
        frames = released_frames(c.release(job["id"]), job.get("spec") or spec)
        # Plain text, never wrapped: released tables are copied into other tools.
        for df in frames if isinstance(frames, list) else [frames]:
            print(df.to_string(index=False))
            print()
    else:
        show(args, job, render.job)
    return code


def _program_code(spec_path: str, spec: dict) -> str | None:
    """The source of the file `program` names, next to the spec; None for a reviewed job of
    trusted tables and models alone (no program, no outputs: no code to send)."""
    name = spec.get("program")
    if spec.get("mode") == "reviewed" and name is None and "outputs" not in spec:
        return None
    if not isinstance(name, str) or not name:
        raise UsageError("a program job spec names its Python file in \"program\"" if spec.get("mode") == "program"
                         else "this reviewed job declares outputs: name the Python file that writes them in "
                              "\"program\", or drop outputs and keep only tables and models")
    return read_text(str(Path(spec_path).parent / name))


def _submission_text(path: str) -> str:
    from sandbox.core.specs.common import load_spec_text
    text = read_text(path)
    try:
        spec = load_spec_text(text)
    except Exception:  # noqa: BLE001 - the server reports the parse error with what to fix
        return text
    if isinstance(spec, dict) and spec.get("mode") in ("program", "reviewed"):
        code = _program_code(path, spec)
        if code is not None:
            return json.dumps({"spec": spec, "code": code}, ensure_ascii=False)
    return text


def cmd_run_mock(args) -> int:
    """Run a job on mock data through the same runner and backend, showing everything."""
    from sandbox.config import load
    from sandbox.core.manifest import parse_public_manifest
    from sandbox.core.specs.common import load_spec_text
    from sandbox.agent.backends.select import get_backend
    from sandbox.agent.mockrun import run_on_mock
    if not args.mock:
        raise UsageError("only --mock runs are local; submit real-data jobs with `sandbox submit`")
    raw = load_spec_text(read_text(args.file))
    if not isinstance(raw, dict) or not isinstance(raw.get("dataset"), str):
        raise UsageError("the job spec must name its dataset")
    public = _client(args).dataset(raw["dataset"])
    manifest = parse_public_manifest(public)  # hidden columns are not in the catalog
    code = _program_code(args.file, raw) if raw.get("mode") in ("program", "reviewed") else None
    report = run_on_mock(raw, manifest, get_backend(load()), rows=args.rows, code=code)
    print_json(report)
    return 0 if report["exit_code"] == 0 and all(c["status"] == "pass" for c in report["checks"]) else 1


def cmd_jobs(args) -> int:
    show(args, _client(args).jobs(args.state), render.jobs)
    return 0


def cmd_status(args) -> int:
    c = _client(args)
    job, code = follow(c, args.job_id, args.timeout) if args.wait else (c.job(args.job_id), 0)
    show(args, job, render.job)
    return code


def cmd_cancel(args) -> int:
    show(args, _client(args).cancel(args.job_id), render.outcome)
    return 0


def cmd_download(args) -> int:
    paths = _client(args).download(args.job_id, args.output)
    for p in paths:
        print(p)
    return 0


def cmd_budget(args) -> int:
    show(args, _client(args).budget(args.dataset, args.operator), render.budget)
    return 0


def cmd_review(args) -> int:
    c = _client(args)
    if args.action == "list":
        show(args, c.review_queue(), render.review_list)
    elif args.action == "show":
        show(args, c.review_detail(_need(args.job_id, "job id")), render.review_show)
    elif args.action == "reasons":
        show(args, c.review_reasons(), render.reasons)
    elif args.action == "diagnostics":
        print_json(c.review_diagnostics(_need(args.job_id, "job id")))
    else:
        if args.action == "reject" and not args.reason:
            raise UsageError("a rejection needs --reason CODE from the fixed list (`sandbox review reasons`); "
                             "the operator reads its fixed text, and --note stays with compliance")
        if args.action == "decide" and not args.file:
            raise UsageError("decide needs --file NAME=DECISION for each output (approve, request_changes, "
                             "reject:REASON_CODE)")
        files = _file_decisions(args.file) if args.file else None
        signoffs = [{"output": o, "check": ch} for o, ch in args.signoff]
        show(args, c.review(_need(args.job_id, "job id"), None if args.action == "decide" else args.action,
                            args.reason or "", args.note or "", files=files, signoffs=signoffs), render.outcome)
    return 0


def _file_decisions(items: list[str]) -> dict:
    """["t.csv=approve", "u.csv=reject:too_detailed"] -> {name: {decision, reason}}."""
    out = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        decision, _, reason = value.partition(":")
        if not sep or not name or decision not in ("approve", "request_changes", "reject"):
            raise UsageError(f"--file {item}: write NAME=approve, NAME=request_changes or NAME=reject:REASON_CODE")
        out[name] = {"decision": decision, "reason": reason}
    return out


def cmd_run_approval(args) -> int:
    show(args, _client(args).run_approval(args.job_id, args.decision, args.reason or ""), render.outcome)
    return 0


def cmd_audit_verify(args) -> int:
    result = _client(args).audit_verify()
    print_json(result)
    return 0 if result["ok"] else 1


def cmd_audit_head(args) -> int:
    print_json(_client(args).audit_head())
    return 0


def cmd_consumption(args) -> int:
    show(args, _client(args).consumption(args.dataset), render.consumption)
    return 0


def cmd_metering(args) -> int:
    if args.csv:
        sys.stdout.write(_client(args).metering("csv"))
    else:
        print_json(_client(args).metering())
    return 0


def _need(value, what):
    if not value:
        raise UsageError(f"missing {what}")
    return value

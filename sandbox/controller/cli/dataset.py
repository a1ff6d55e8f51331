"""`sandbox dataset ...`: a data owner registers, inspects and retires versions of its
datasets over the API, and drafts a manifest from its own data (locally: the draft never
leaves the owner's machine). Reports and drafts are for the owner only."""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import yaml

from sandbox.controller.cli.common import UsageError, print_json, read_text


def add_parser(sub) -> None:
    s = sub.add_parser("dataset", help="data owner: register | report | versions | retire | draft")
    dsub = s.add_subparsers(dest="dataset_command", required=True)
    t = dsub.add_parser("register", help="register a new version from a Parquet file/folder or URI on the server")
    t.add_argument("name", help="the dataset's name (must match the manifest's name)")
    t.add_argument("--manifest", required=True, help="the manifest YAML (`sandbox dataset draft` writes one)")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="a Parquet file or folder on the server, or a file:// or s3:// URI, under the "
                                    "allowed roots (SANDBOX_INGEST_ROOTS)")
    src.add_argument("--upload", metavar="FILE_OR_FOLDER", help="a Parquet file or folder (hive partitions "
                                                                "included) on this machine, uploaded in chunks "
                                                                "(resumed after a broken connection)")
    t.add_argument("--enforce", action="store_true",
                   help="store a corrected version (drop null units, keep a random k rows per unit, clamp, drop "
                        "undeclared columns) instead of refusing")
    t.add_argument("--json", action="store_true", help="print the whole answer as JSON (no progress bar)")
    t.set_defaults(func=cmd_register)
    t = dsub.add_parser("report", help="the registration report of a version (default: the current one)")
    t.add_argument("name")
    t.add_argument("--version")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_report)
    t = dsub.add_parser("versions", help="the dataset's registered versions")
    t.add_argument("name")
    t.set_defaults(func=cmd_versions)
    t = dsub.add_parser("retire", help="retire a version (default: the current one): no new jobs run on it")
    t.add_argument("name")
    t.add_argument("--version")
    t.set_defaults(func=cmd_retire)
    t = dsub.add_parser("draft", help="draft a manifest from local Parquet data (printed; owner only)")
    t.add_argument("path")
    t.add_argument("--name", help="dataset name (default: the file or folder name)")
    t.add_argument("--unit", help="the privacy unit column (default: the best identifier candidate)")
    t.set_defaults(func=cmd_draft)


def _client(args):
    from sandbox.client import Sandbox
    from sandbox.config import load_client
    cfg = load_client()
    return Sandbox(args.url or cfg.url, args.token or cfg.token)


def _call(args, method: str, path: str, **kw) -> dict:
    # The generic request of sandbox.client (its dataset-owner calls live here, with the CLI).
    return _client(args)._req(method, path, **kw).json()


def _source(data: str) -> str:
    """A URI as given; a local path made absolute (the server reads it: same host)."""
    return data if "://" in data else os.path.abspath(data)


def cmd_register(args) -> int:
    from sandbox.client import ApiError
    text = read_text(args.manifest)
    try:
        declared = (yaml.safe_load(text) or {}).get("name")
    except (yaml.YAMLError, AttributeError):
        raise UsageError(f"{args.manifest}: not a YAML manifest (a mapping with name, columns, ...)")
    if declared != args.name:
        raise UsageError(f"{args.manifest} names the dataset '{declared}', not '{args.name}': fix one of them")
    body = {"manifest": text, "enforce": args.enforce, "progress": secrets.token_hex(16)}
    if args.upload:
        body["upload"] = upload_file(_client(args), Path(args.upload))
    else:
        body["data"] = _source(args.data)
    try:
        if args.json or not sys.stderr.isatty():
            result = _call(args, "POST", "/datasets", json=body)
        else:
            result = _with_progress_bar(args, body)
    except ApiError as e:
        if e.status == 400 and "report" in e.body:
            if args.json:
                print_json(e.body)
            else:
                print(format_report(e.body["report"]))
        if "upload" in body:  # kept by the server for another try through the API; the CLI uploads again
            _client(args)._req("DELETE", f"/uploads/{body['upload']}")
        raise
    if args.json:
        print_json(result)
        return 0
    print(f"registered {result['name']} version {result['version']}"
          f"{' (enforced)' if result['enforced'] else ''}")
    print(format_report(result["report"]))
    return 0


def _with_progress_bar(args, body: dict) -> dict:
    """POST the registration in a thread and show how far the server has got (it writes its
    stage and fraction under the request's progress token) until the answer comes."""
    import threading

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sandbox.client import ApiError
    answer: dict = {}

    def post() -> None:
        try:
            answer["result"] = _call(args, "POST", "/datasets", json=body)
        except BaseException as e:  # re-raised in the main thread
            answer["error"] = e
    worker = threading.Thread(target=post, daemon=True)
    worker.start()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("registering", total=1.0)
        while worker.is_alive():
            worker.join(0.5)
            try:
                now = _call(args, "GET", f"/registration-progress/{body['progress']}")
            except ApiError:  # not started yet, or just finished
                continue
            bar.update(task, completed=now["fraction"], description=now["stage"])
    if "error" in answer:
        raise answer["error"]
    return answer["result"]


CHUNK_BYTES = 32 << 20


def upload_file(client, path: Path, chunk_bytes: int = CHUNK_BYTES, retries: int = 3) -> str:
    """Upload one local Parquet file, or a folder's *.parquet files at their relative paths
    (hive partitions kept), in chunks; after a failed chunk, ask the server how much it holds
    and go on from there. Returns the upload id."""
    from sandbox.core import datafiles
    if path.is_dir():
        files = [(f.path, f.name) for f in datafiles.data_files(path)]
        if not files:
            raise UsageError(f"{path}: no *.parquet files in this folder")
    elif path.is_file():
        files = [(path, None)]
    else:
        raise UsageError(f"{path}: no such file or folder")
    size = sum(p.stat().st_size for p, _ in files)
    upload = client._req("POST", "/uploads").json()
    if size > upload["max_bytes"]:
        client._req("DELETE", f"/uploads/{upload['upload']}")
        raise UsageError(f"{path}: {size} bytes is over the server's upload limit of {upload['max_bytes']} bytes")
    sent = 0
    for local, rel in files:
        sent += _upload_one(client, upload["upload"], local, rel, chunk_bytes, retries, sent, size)
    return upload["upload"]


def _upload_one(client, upload_id: str, path: Path, rel: str | None, chunk_bytes: int, retries: int,
                before: int, size: int) -> int:
    import requests

    from sandbox.client import ApiError
    params = {"path": rel} if rel else {}
    length = path.stat().st_size
    offset, failures = 0, 0
    with open(path, "rb") as fh:
        while offset < length:
            fh.seek(offset)
            chunk = fh.read(chunk_bytes)
            try:
                offset = client._req("PUT", f"/uploads/{upload_id}", params={**params, "offset": offset},
                                     data=chunk, headers={"Content-Type": "application/octet-stream"}).json()["offset"]
            except (requests.ConnectionError, requests.Timeout, ApiError) as e:
                failures += 1
                if failures > retries or (isinstance(e, ApiError) and e.status != 400):
                    raise
                offset = client._req("GET", f"/uploads/{upload_id}", params=params).json()["offset"]
            done = before + offset
            print(f"uploaded {done * 100 // max(size, 1)}% ({done}/{size} bytes)", file=sys.stderr)
    return length


def cmd_report(args) -> int:
    params = {"version": args.version} if args.version else {}
    result = _call(args, "GET", f"/datasets/{args.name}/report", params=params)
    if args.json:
        print_json(result)
    else:
        print(f"{args.name} version {result['version']} ({result['state']}"
              f"{', current' if result['current'] else ''}), from {result['source']}")
        print(format_report(result["report"]))
    return 0


def cmd_versions(args) -> int:
    versions = _call(args, "GET", f"/datasets/{args.name}/versions")["versions"]
    for v in versions:
        flags = ", ".join(f for f in ("current" if v["current"] else "", v["state"],
                                      "enforced" if v["enforced"] else "",
                                      "bound verified" if v["bound_verified"] else "bound NOT verified") if f)
        print(f"{v['version']}  {v['registered_at'][:19]}  {v['rows']:>12} rows  {flags}")
    if not versions:
        print(f"{args.name}: no versions registered with `sandbox dataset register`", file=sys.stderr)
    return 0


def cmd_retire(args) -> int:
    print_json(_call(args, "POST", f"/datasets/{args.name}/retire",
                     json={"version": args.version} if args.version else {}))
    return 0


def cmd_draft(args) -> int:
    from sandbox.agent.draft import draft_manifest
    path = Path(args.path)
    if not path.exists():
        raise UsageError(f"{args.path}: no such file or folder")
    draft = draft_manifest(path, name=args.name, unit=args.unit)
    sys.stdout.write(draft)
    return 0


def format_report(report: dict) -> str:
    """The registration report as an owner reads it."""
    lines = []
    schema = report.get("schema", {})
    if "rows" in report:
        lines.append(f"rows: {report['rows']}")
    if "units" in report:
        lines.append(f"privacy units ({report['privacy_unit']}): {report['units']}; bound "
                     f"{report['max_rows_per_unit']} rows per unit, largest unit {report['max_rows_per_unit_seen']}")
        lines.append(f"units over the bound: {report['units_over_bound']} ({report['rows_over_bound']} rows over)")
        lines.append(f"rows with a null unit: {report['null_unit_rows']}")
    for key, label in (("missing_columns", "missing columns"), ("extra_columns", "undeclared columns")):
        if schema.get(key):
            lines.append(f"{label}: {', '.join(schema[key])}")
    for name, t in (schema.get("wrong_types") or {}).items():
        lines.append(f"wrong type: {name} is {t['file']}, manifest says {t['manifest']}")
    for name, col in (report.get("columns") or {}).items():
        parts = [f"{col['nulls']} null"] if col.get("nulls") else []
        if col.get("below") or col.get("above"):
            parts.append(f"{col.get('below', 0)} below / {col.get('above', 0)} above bounds")
        if col.get("unknown"):
            parts.append(f"{col['unknown']} not in categories ({', '.join(col.get('unknown_values', []))})")
        if parts:
            lines.append(f"column {name}: " + "; ".join(parts))
    if "enforcement" in report:
        e = report["enforcement"]
        lines.append(f"enforced: kept {e['rows_kept']} of {e['rows_in']} rows (dropped "
                     f"{e['null_unit_rows_dropped']} null-unit rows, {e['rows_over_bound_dropped']} rows over the "
                     f"bound); clamped {sum(e['values_clamped'].values())} values; dropped columns "
                     f"{', '.join(e['columns_dropped']) or 'none'}")
    if "bound_verified" in report:
        lines.append(f"bound verified: {'yes' if report['bound_verified'] else 'no'}")
    return "\n".join(lines)

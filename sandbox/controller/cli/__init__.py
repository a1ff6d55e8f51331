"""`sandbox` command line: local administration (setup, up, worker) and, over
HTTP, the commands of the three roles. Exit codes (common.EXIT_CODES, in --help): 0 ok,
1 refused or failed, 2 bad input (with a message saying what to fix), 3 --wait timed out.

`admin` holds the commands that build the application on the server; `operator`
the commands that reach it through the HTTP API (or check files offline)."""
from __future__ import annotations

import argparse
import sys

from sandbox.controller.cli import admin, dataset, notices, operator, ops, policy
from sandbox.controller.cli.admin import setup
from sandbox.controller.cli.common import UsageError, add_cli_options

__all__ = ["UsageError", "build_parser", "main", "setup"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sandbox", description="Public-data sandbox (数据可用不可见)")
    p.add_argument("--url", help="API base URL (default $SANDBOX_URL or http://127.0.0.1:5000)")
    p.add_argument("--token", help="API token (default $SANDBOX_TOKEN)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("setup", help="generate demo data, register datasets, apply policies, create demo users")
    s.add_argument("--rows", type=int, help="rows per dataset (default: each manifest's default_rows)")
    s.set_defaults(func=admin.cmd_setup)
    s = sub.add_parser("up", help="setup, then run a worker and the API until interrupted (make run)")
    s.add_argument("--rows", type=int)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=5000)
    s.set_defaults(func=admin.cmd_up)
    s = sub.add_parser("serve", help="run the API under gunicorn (production; deploy/gunicorn.conf.py)")
    s.add_argument("--host", help="listen address (default: SANDBOX_BIND or 127.0.0.1:5000)")
    s.add_argument("--port", type=int)
    s.add_argument("--config", help="gunicorn config file (default deploy/gunicorn.conf.py)")
    s.set_defaults(func=admin.cmd_serve)
    s = sub.add_parser("worker", help="run a Celery worker")
    s.add_argument("--concurrency", type=int, default=1)
    s.set_defaults(func=admin.cmd_worker)
    s = sub.add_parser("sweep", help="recover jobs of lost workers now")
    s.set_defaults(func=admin.cmd_sweep)
    s = sub.add_parser("user-create", help="create a user and print its token once")
    s.add_argument("name")
    s.add_argument("--role", required=True, choices=["operator", "owner", "compliance"])
    s.set_defaults(func=admin.cmd_user_create)

    s = sub.add_parser("datasets", help="list datasets, or show one's schema and metadata")
    s.add_argument("name", nargs="?")
    s.set_defaults(func=operator.cmd_datasets)
    s = sub.add_parser("mock", help="download mock data (generated from the manifest alone)")
    s.add_argument("name")
    s.add_argument("-o", "--output")
    s.add_argument("--format", choices=["csv", "parquet"], default="csv")
    s.add_argument("--rows", type=int, default=1000)
    s.set_defaults(func=operator.cmd_mock)
    s = sub.add_parser("submit", help="submit a job spec (JSON or YAML)")
    s.add_argument("file")
    s.add_argument("--dry-run", action="store_true", help="show cost and balance after, reserve nothing")
    s.add_argument("--wait", action="store_true", help="follow the job's state")
    s.set_defaults(func=operator.cmd_submit)
    s = sub.add_parser("query", help="run SQL aggregates as a DP query job, e.g. sandbox query health_visits "
                                     "\"SELECT district, COUNT(*) FROM health_visits GROUP BY district\" --epsilon 0.5")
    s.add_argument("dataset")
    s.add_argument("sql", help="one or more SELECT statements separated by ';' (or @file.sql)")
    s.add_argument("--epsilon", type=float, action="append",
                   help="epsilon of the statement (repeat once per statement); or OPTIONS(epsilon => ...) in it")
    s.add_argument("--purpose", default="exploratory analysis", help="why you need these statistics")
    s.add_argument("--dry-run", action="store_true", help="show cost and balance after, reserve nothing")
    s.add_argument("--wait", action="store_true", help="follow the job and print the released table")
    s.set_defaults(func=operator.cmd_query)
    s = sub.add_parser("run", help="run a job locally on mock data (--mock), showing outputs, stdout, errors")
    s.add_argument("file")
    s.add_argument("--mock", action="store_true", required=True)
    s.add_argument("--rows", type=int, default=2000)
    s.set_defaults(func=operator.cmd_run_mock)
    s = sub.add_parser("jobs", help="list jobs")
    s.add_argument("--state")
    s.set_defaults(func=operator.cmd_jobs)
    s = sub.add_parser("status", help="show a job")
    s.add_argument("job_id")
    s.add_argument("--wait", action="store_true")
    s.set_defaults(func=operator.cmd_status)
    s = sub.add_parser("cancel", help="cancel a job that has not started")
    s.add_argument("job_id")
    s.set_defaults(func=operator.cmd_cancel)
    s = sub.add_parser("download", help="download a released result and its certificate")
    s.add_argument("job_id")
    s.add_argument("-o", "--output", default=".")
    s.set_defaults(func=operator.cmd_download)
    s = sub.add_parser("budget", help="privacy-budget balance")
    s.add_argument("dataset")
    s.add_argument("--operator")
    s.set_defaults(func=operator.cmd_budget)
    s = sub.add_parser("review", help="compliance: list | show | approve | reject | decide | reasons | diagnostics")
    s.add_argument("action", choices=["list", "show", "approve", "reject", "decide", "reasons", "diagnostics"])
    s.add_argument("job_id", nargs="?")
    s.add_argument("--reason", help="to reject: a reason code (`review reasons` lists them; the operator "
                                    "reads its fixed text), e.g. disclosure_risk")
    s.add_argument("--note", help="your own words, for compliance only (never shown to the operator)")
    s.add_argument("--file", action="append", default=[], metavar="NAME=DECISION",
                   help="decide one output (repeat for each; with `decide`): approve, request_changes or "
                        "reject:REASON_CODE, e.g. --file t.csv=reject:too_detailed")
    s.add_argument("--signoff", action="append", default=[], nargs=2, metavar=("OUTPUT", "CHECK"),
                   help="sign off one finding that needs review (`review show` lists them as findings); "
                        "approving a file needs one for each of its findings")
    s.set_defaults(func=operator.cmd_review)
    s = sub.add_parser("run-approval", help="data owner: approve or reject a job before it runs")
    s.add_argument("decision", choices=["approve", "reject"])
    s.add_argument("job_id")
    s.add_argument("--reason")
    s.set_defaults(func=operator.cmd_run_approval)
    dataset.add_parser(sub)
    notices.add_parser(sub)
    s = sub.add_parser("policy", help="validate | diff | apply policy files (owner); versions | decide")
    psub = s.add_subparsers(dest="policy_command", required=True)
    t = psub.add_parser("validate")
    t.add_argument("files", nargs="+")
    t.set_defaults(func=operator.cmd_policy_validate)
    t = psub.add_parser("diff")
    t.add_argument("file")
    t.set_defaults(func=operator.cmd_policy_diff)
    t = psub.add_parser("apply")
    t.add_argument("file")
    t.add_argument("--reason", help="why the policy changes (required; kept with the version and in the audit log)")
    t.add_argument("--base", type=int, metavar="N",
                   help="the version your file started from (`policy diff` prints it): refused with a conflict "
                        "if another version was applied since; without it the file applies on top of any version")
    t.set_defaults(func=operator.cmd_policy_apply)
    policy.add_parsers(psub)
    s = sub.add_parser("verify-release", help="verify a release certificate offline")
    s.add_argument("file")
    s.add_argument("--public-key", required=True)
    s.add_argument("--files-dir", help="also check the sha256 of released files in this folder")
    s.set_defaults(func=operator.cmd_verify_release)
    s = sub.add_parser("audit", help="audit log")
    asub = s.add_subparsers(dest="audit_command", required=True)
    t = asub.add_parser("verify", help="verify the hash chain; says where it is broken")
    t.set_defaults(func=operator.cmd_audit_verify)
    t = asub.add_parser("head", help="print the chain head (seq, hash) for anchoring elsewhere")
    t.set_defaults(func=operator.cmd_audit_head)
    ops.add_parsers(sub, asub)  # audit checkpoint / verify-local, backup, restore, rotate-key
    s = sub.add_parser("consumption", help="owner/compliance: budget consumption per operator and period")
    s.add_argument("dataset")
    s.set_defaults(func=operator.cmd_consumption)
    s = sub.add_parser("metering", help="owner/compliance: jobs, run seconds, rows, budget, releases per month")
    s.add_argument("--csv", action="store_true")
    s.set_defaults(func=operator.cmd_metering)
    add_cli_options(p, sub)  # --json, --timeout, exit codes in --help, `completion`
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


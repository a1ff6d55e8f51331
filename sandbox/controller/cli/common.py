"""What the admin and the role commands share: the exit-code-2 error, JSON output for
machines (`--json`) and rich output for people, the exit codes, reading an input file with
a message saying what to fix."""
from __future__ import annotations

import json
from pathlib import Path

# Shown by `sandbox --help` and documented in docs/jobs.md ("Command line").
EXIT_CODES = """exit codes:
  0    done (with --wait: the job was released)
  1    refused: the server said no (not allowed, not found, conflict), a job was not
       admitted, or with --wait it ended rejected, failed or cancelled; or the API is
       unreachable
  2    bad input: a message says what to fix
  3    --wait stopped at --timeout before the outcome (the job goes on; `sandbox status
       JOB --wait` follows it again)
  130  interrupted (Ctrl-C)

Every role command prints a short summary or a table; --json prints the API's document
unchanged, for scripts. Shell completion: eval "$(sandbox completion bash)"."""

# Role commands whose default output is for people; each takes --json for the API document.
JSON_COMMANDS = ("datasets", "submit", "query", "jobs", "status", "cancel", "budget", "review",
                 "run-approval", "consumption")
WAIT_COMMANDS = ("submit", "query", "status")
WAIT_TIMEOUT = 900.0


class UsageError(Exception):
    """Bad input from the command line: exit code 2."""


def print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def console(stderr: bool = False):
    """A console made at each use so it writes to the current sys.stdout/stderr and takes
    the width of the terminal ($COLUMNS when set; 80 columns when piped). No markup or
    highlighting: API values are printed as they are."""
    from rich.console import Console
    return Console(stderr=stderr, markup=False, highlight=False, emoji=False, soft_wrap=False)


def show(args, doc, render) -> None:
    """The API document as is with --json; otherwise what `render(doc)` draws for people."""
    if getattr(args, "json", False):
        print_json(doc)
    else:
        console().print(render(doc))


def add_cli_options(parser, sub) -> None:
    """--json on the role commands, --timeout where --wait is, the exit codes in --help,
    and `sandbox completion bash`: added to the parser once it holds every command."""
    import argparse
    parser.epilog = EXIT_CODES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for name in JSON_COMMANDS:
        if name in sub.choices:
            sub.choices[name].add_argument("--json", action="store_true",
                                           help="print the API's JSON document instead of a summary")
    for name in WAIT_COMMANDS:
        if name in sub.choices:
            sub.choices[name].add_argument("--timeout", type=float, default=WAIT_TIMEOUT, metavar="SECONDS",
                                           help=f"with --wait: stop waiting after this long, exit code 3 "
                                                f"(default {WAIT_TIMEOUT:.0f})")
    from sandbox.controller.cli.completion import cmd_completion
    s = sub.add_parser("completion", help="print a shell completion script: eval \"$(sandbox completion bash)\"")
    s.add_argument("shell", choices=["bash"])
    s.set_defaults(func=cmd_completion)


def read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{path}: cannot read ({e.strerror})")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text (byte {e.start}); save the file as UTF-8") from None

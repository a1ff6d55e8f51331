"""What the admin and the role commands share: the exit-code-2 error, JSON output,
reading an input file with a message saying what to fix."""
from __future__ import annotations

import json
from pathlib import Path


class UsageError(Exception):
    """Bad input from the command line: exit code 2."""


def print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{path}: cannot read ({e.strerror})")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text (byte {e.start}); save the file as UTF-8") from None

"""How far a registration has got, for the owner waiting on it (CLI progress bar, web page).

The client names a random token with its registration request; while the request runs, the
agent writes {stage, fraction} to $SANDBOX_HOME/progress/<owner>/<token>.json (a file, so
every web worker process can answer the polls), and the owner polls it. It holds stage
names and a fraction only, never figures from the data; it is removed when the
registration ends.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Callable

from sandbox.core.errors import InvalidInput, NotFound

_TOKEN = re.compile(r"^[0-9a-f]{16,64}$")
# A poll every second at most needs no finer writes than this.
_MIN_STEP, _MIN_SECONDS = 0.01, 0.5

Progress = Callable[[str, float], None]


def check_token(token) -> str:
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise InvalidInput("progress: a token of 16 to 64 lowercase hex digits, chosen by the client", "progress")
    return token


def _path(settings, owner: str, token: str) -> Path:
    return settings.home / "progress" / owner / f"{check_token(token)}.json"


def tracker(settings, owner: str, token: str | None) -> tuple[Progress | None, Callable[[], None]]:
    """(progress(stage, fraction), finish()) for a registration; (None, no-op) without a token."""
    if token is None:
        return None, lambda: None
    path = _path(settings, owner, token)
    path.parent.mkdir(parents=True, exist_ok=True)
    last = {"stage": None, "fraction": -1.0, "at": 0.0}

    def progress(stage: str, fraction: float) -> None:
        fraction = min(1.0, max(0.0, float(fraction)))
        now = time.monotonic()
        if (stage == last["stage"] and fraction - last["fraction"] < _MIN_STEP
                and now - last["at"] < _MIN_SECONDS):
            return
        last.update(stage=stage, fraction=fraction, at=now)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"stage": stage, "fraction": round(fraction, 4), "done": False}),
                       encoding="utf-8")
        os.replace(tmp, path)

    def finish() -> None:
        path.unlink(missing_ok=True)
        path.with_suffix(".tmp").unlink(missing_ok=True)

    progress("starting", 0.0)
    return progress, finish


def read(settings, owner: str, token: str) -> dict:
    """The owner's registration's progress; NotFound when none runs under that token (not
    started yet, or finished: the registration's own answer says how it ended)."""
    path = _path(settings, owner, token)  # a bad token is a 400, outside the try
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        raise NotFound("no registration in progress under this token (not started, or finished)") from None


def scaled(progress: Progress | None, start: float, end: float) -> Progress | None:
    """A stage's own 0..1 mapped into [start, end] of the whole registration."""
    if progress is None:
        return None
    return lambda stage, fraction: progress(stage, start + (end - start) * min(1.0, max(0.0, fraction)))

"""The command line is split by where a command runs: `admin` builds the application on the
server; `operator` (the three roles' commands) reaches it only through the HTTP API, so it
must never construct the application or open the store itself."""
from __future__ import annotations

from pathlib import Path

import sandbox.controller.cli as cli
from tests.unit.test_domain_imports import imported_modules

SERVER_SIDE = ("sandbox.bootstrap", "sandbox.controller.accounts", "sandbox.controller.views",
               "sandbox.controller.operator", "sandbox.controller.owner", "sandbox.controller.compliance",
               "sandbox.controller.web", "sandbox.adapters.store",
               "sandbox.agent.tasks")


def server_side_imports(path: Path) -> set[str]:
    return {m for m in imported_modules(path) if m.startswith(SERVER_SIDE)}


def test_role_commands_never_build_the_application():
    assert server_side_imports(Path(cli.operator.__file__)) == set()


def test_admin_commands_are_the_ones_that_build_it():
    assert {"sandbox.bootstrap", "sandbox.agent.tasks"} <= server_side_imports(Path(cli.admin.__file__))
    # `serve` and `up` build the web application in gunicorn's workers, from its config file.
    from sandbox.config import REPO_ROOT
    assert 'wsgi_app = "sandbox.controller.web:create_app()"' in \
        (REPO_ROOT / "deploy" / "gunicorn.conf.py").read_text(encoding="utf-8")

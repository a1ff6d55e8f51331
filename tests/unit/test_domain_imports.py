"""The domain imports no framework: it must be testable fast and in isolation."""
from __future__ import annotations

import ast
from pathlib import Path

import sandbox.domain

FORBIDDEN = {"flask", "celery", "docker", "sqlalchemy", "kombu", "werkzeug", "requests"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_domain_modules_import_no_framework():
    files = sorted(Path(sandbox.domain.__file__).parent.glob("*.py"))
    assert len(files) >= 8
    offenders = {f.name: sorted(imported_roots(f) & FORBIDDEN) for f in files if imported_roots(f) & FORBIDDEN}
    assert offenders == {}


def test_the_check_would_catch_a_framework_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from sqlalchemy import select\nimport flask\n")
    assert imported_roots(bad) & FORBIDDEN == {"sqlalchemy", "flask"}

"""The core imports no framework and nothing outside itself: it must be testable fast and in
isolation, and it ships inside the runner image (which holds only core, privacy and runner)."""
from __future__ import annotations

import ast
from pathlib import Path

import sandbox.core

FORBIDDEN = {"flask", "celery", "docker", "sqlalchemy", "kombu", "werkzeug", "requests"}


def imported_modules(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.add(node.module)
    return mods


def imported_roots(path: Path) -> set[str]:
    return {m.split(".")[0] for m in imported_modules(path)}


def core_files() -> list[Path]:
    return sorted(Path(sandbox.core.__file__).parent.rglob("*.py"))


def test_core_modules_import_no_framework():
    files = core_files()
    assert len(files) >= 12
    offenders = {f.name: sorted(imported_roots(f) & FORBIDDEN) for f in files if imported_roots(f) & FORBIDDEN}
    assert offenders == {}


def test_core_imports_nothing_of_the_package_outside_the_core():
    outside = {f.name: sorted(m for m in imported_modules(f) if m.startswith("sandbox") and
                              not (m == "sandbox.core" or m.startswith("sandbox.core.")))
               for f in core_files()}
    assert {k: v for k, v in outside.items() if v} == {}


def test_the_check_would_catch_a_framework_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from sqlalchemy import select\nimport flask\nfrom sandbox.agent import ingest\n")
    assert imported_roots(bad) & FORBIDDEN == {"sqlalchemy", "flask"}
    assert "sandbox.agent" in imported_modules(bad)

"""The web UI works installed: what it reads at run time ships inside the package, not the repository."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import sandbox.controller.web as web
import sandbox.controller.web.ui as ui_package
from sandbox.config import REPO_ROOT
from sandbox.controller.web.ui.program_examples import program_example, shipped_examples

UI = Path(ui_package.__file__).parent
WEB = Path(web.__file__).parent


def test_the_ui_reads_nothing_under_the_repository_root():
    offenders = [p.name for p in UI.rglob("*.py") if "REPO_ROOT" in p.read_text(encoding="utf-8")]
    assert offenders == []


def test_program_examples_load_from_the_package():
    assert Path(str(shipped_examples())).resolve().parent == UI.resolve()
    contract, code, purpose = program_example({"name": "health_visits"}, "program")
    assert code == (UI / "examples" / "program_mean_cost.py").read_text(encoding="utf-8")
    assert purpose and "mode" not in json.loads(contract) and "program" not in json.loads(contract)
    _contract, code, _purpose = program_example({"name": "enterprise_registry"}, "reviewed")
    assert code == (UI / "examples" / "reviewed_enterprise.py").read_text(encoding="utf-8")


def test_shipped_examples_are_the_operators_examples_in_jobs():
    """jobs/ is what operators copy; the package holds the program and reviewed ones verbatim."""
    wanted = set()
    for spec_file in (REPO_ROOT / "jobs").glob("*.json"):
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
        if spec.get("mode") in ("program", "reviewed"):
            wanted |= {spec_file.name, spec["program"]}
    shipped = {p.name for p in (UI / "examples").iterdir() if p.suffix in (".json", ".py")}
    assert shipped == wanted
    for name in shipped:
        assert (UI / "examples" / name).read_bytes() == (REPO_ROOT / "jobs" / name).read_bytes(), name


def test_every_data_file_of_the_web_ui_is_declared_as_package_data():
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]
    covered = set()
    for package, patterns in declared.items():
        root = REPO_ROOT.joinpath(*package.split("."))
        covered |= {p for pattern in patterns for p in root.glob(pattern)}
    data = {p for p in WEB.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")}
    data |= set((UI / "examples").glob("*.py"))
    assert data and sorted(map(str, data - covered)) == []

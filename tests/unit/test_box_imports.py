"""What may run next to raw data: only sandbox.privacy imports OpenDP (one place for every
measurement and its privacy-map check), and the box code (sandbox.runner, sandbox.privacy)
imports nothing of the package outside core, privacy and runner, which is all the runner
image and the bwrap box carry. Static (ast) checks: the files are read, not imported."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import sandbox
from sandbox.agent.backends.bwrap import BOX_SUBPACKAGES

PACKAGE = Path(sandbox.__file__).resolve().parent
BOX_CODE = {"core", "privacy", "runner"}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = PACKAGE, *, in_functions: bool = True) -> set[str]:
    """Every module an import statement names (with in_functions=False, only those that run
    when the module is imported). Relative imports are resolved; `from a import b` counts
    a and a.b (b may be a module)."""
    here = module_name(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    mods = set()
    todo = [ast.parse(path.read_text(encoding="utf-8"))]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            mods.add(base)
            mods |= {f"{base}.{a.name}" for a in node.names if a.name != "*"}
        if in_functions or not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))
    return mods


def module_file(name: str, root: Path = PACKAGE) -> Path | None:
    """The file of a module of the package, None for a name that is not a module."""
    path = root.parent.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def opendp_importers(files, root: Path = PACKAGE) -> set[str]:
    return {module_name(f, root) for f in files
            if any(m.split(".")[0] == "opendp" for m in imported_modules(f, root))}


def outside_box_code(files, root: Path = PACKAGE) -> dict[str, list[str]]:
    found = {}
    for f in files:
        bad = sorted(m for m in imported_modules(f, root)
                     if m.startswith("sandbox.") and m.split(".")[1] not in BOX_CODE)
        if bad:
            found[module_name(f, root)] = bad
    return found


def test_only_the_privacy_package_imports_opendp():
    importers = opendp_importers(sorted(PACKAGE.rglob("*.py")))
    assert "sandbox.privacy.measurements" in importers  # else the check looks in the wrong place
    assert {m for m in importers if m.split(".")[:2] != ["sandbox", "privacy"]} == set()


def test_the_box_code_imports_only_core_privacy_and_runner():
    files = sorted((PACKAGE / "runner").rglob("*.py")) + sorted((PACKAGE / "privacy").rglob("*.py"))
    assert len(files) >= 8
    assert outside_box_code(files) == {}


def test_the_checks_would_catch_stray_imports(tmp_path):
    root = tmp_path / "sandbox"
    bad = root / "runner" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from opendp.prelude import m\n    from sandbox import agent\n"
                   "    from ..adapters import signing\n    from . import query\n    import sandbox.core.dp\n")
    assert opendp_importers([bad], root) == {"sandbox.runner.bad"}
    assert outside_box_code([bad], root) == {
        "sandbox.runner.bad": ["sandbox.adapters", "sandbox.adapters.signing", "sandbox.agent"]}


def test_the_runner_image_and_the_bwrap_box_carry_the_box_code_only():
    dockerfile = (PACKAGE.parent / "Dockerfile").read_text(encoding="utf-8")
    copied = re.findall(r"^COPY\s+(sandbox\S*)\s", dockerfile, re.M)
    assert sorted(copied) == ["sandbox/__init__.py"] + [f"sandbox/{p}" for p in sorted(BOX_CODE)]
    assert set(BOX_SUBPACKAGES) == BOX_CODE


def test_the_box_code_needs_no_library_the_image_lacks():
    # Everything runner and privacy import, and what the package modules they reach import
    # when loaded (core's lazy PyYAML import is for parsing files, which the box never does),
    # must come from the standard library or the image's wheels (scripts/build-image.sh).
    image_wheels = {"opendp", "polars", "pyarrow", "numpy", "pandas", "statsmodels"}
    box = sorted((PACKAGE / "runner").rglob("*.py")) + sorted((PACKAGE / "privacy").rglob("*.py"))
    todo, seen, libraries = list(box), set(), set()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for m in imported_modules(f, in_functions=f in box):
            parts = m.split(".")
            if parts[0] != "sandbox":
                libraries.add(parts[0])
                continue
            # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
            todo += [found for i in range(1, len(parts) + 1) if (found := module_file(".".join(parts[:i])))]
    assert {"dp.py", "manifest.py"} <= {f.name for f in seen if f.parent.name == "core"}
    assert libraries - set(sys.stdlib_module_names) - {"__future__"} <= image_wheels

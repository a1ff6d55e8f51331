"""Meta-tests that keep the data-access contract honest (airlock's pattern):
every mutator of the repository takes the audit event it records, both
implementations match the Protocol, and only core.lifecycle.transition assigns a
job's state."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import sandbox
from sandbox.adapters.memory import MemoryRepository, MemoryTx
from sandbox.adapters.store.repository import SqlRepository, SqlTx
from sandbox.core.ports import MUTATORS, Repository, Tx
from sandbox.core.records import Event

MUTATOR_PREFIXES = ("add_", "save_", "set_", "update_", "delete_", "remove_", "put_")


def protocol_methods() -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in vars(Tx).items()
            if callable(fn) and not name.startswith("_")}


def test_every_mutator_of_the_repository_takes_an_audit_event():
    methods = protocol_methods()
    mutators = {n for n in methods if n.startswith(MUTATOR_PREFIXES)}
    assert mutators == set(MUTATORS)
    missing = [n for n in mutators if "event" not in methods[n].parameters
               or methods[n].parameters["event"].annotation not in (Event, "Event")]
    assert missing == []


def test_nothing_else_in_the_protocol_writes():
    # Readers and the two exceptions that exist for a reason: record() is the event itself,
    # lock_budget() writes nothing.
    others = set(protocol_methods()) - set(MUTATORS)
    assert not {n for n in others if n.startswith(MUTATOR_PREFIXES)}


@pytest.mark.parametrize("impl", [SqlTx, MemoryTx])
def test_implementations_have_the_protocols_methods_and_parameters(impl):
    for name, sig in protocol_methods().items():
        assert hasattr(impl, name), f"{impl.__name__} lacks {name}"
        mine = list(inspect.signature(getattr(impl, name)).parameters)
        assert mine == list(sig.parameters), f"{impl.__name__}.{name}: {mine} != {list(sig.parameters)}"


@pytest.mark.parametrize("impl", [SqlRepository, MemoryRepository])
def test_repositories_have_the_protocols_methods_and_parameters(impl):
    for name, fn in vars(Repository).items():
        if callable(fn) and not name.startswith("_"):
            assert hasattr(impl, name), f"{impl.__name__} lacks {name}"
            mine = list(inspect.signature(getattr(impl, name)).parameters)
            assert mine == list(inspect.signature(fn).parameters), f"{impl.__name__}.{name}"


def _state_assignments(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, innermost function) of every assignment to an attribute named `state`."""
    found = []

    def visit(node, fn: str) -> None:
        for child in ast.iter_child_nodes(node):
            targets = (child.targets if isinstance(child, ast.Assign) else
                       [child.target] if isinstance(child, (ast.AugAssign, ast.AnnAssign)) else [])
            if any(isinstance(sub, ast.Attribute) and sub.attr == "state" for t in targets for sub in ast.walk(t)):
                found.append((child.lineno, fn))
            visit(child, child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn)

    visit(tree, "<module>")
    return found


def test_only_the_transition_function_assigns_a_jobs_state():
    root = Path(sandbox.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, fn in _state_assignments(tree):
            where = (path.relative_to(root).as_posix(), fn)
            if where != ("core/lifecycle.py", "transition"):
                offenders.append(f"{where[0]}:{line} in {fn}")
    assert offenders == []


def test_the_state_check_would_catch_an_assignment():
    tree = ast.parse("def f(job):\n    job.state = 'released'\n")
    assert _state_assignments(tree)

"""A YAML reader for owners' files: it walks the node tree, so every value keeps the line it
came from, and collects every problem as (file, line, field, message) instead of stopping at
the first.
"""
from __future__ import annotations

import math
import re
from datetime import date

import yaml

from sandbox.core.errors import Text

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# PyYAML (YAML 1.1) reads 1e-6 as a string; owners write it, so accept it as a number.
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_MAX_TEXT = 128


BAD = object()  # a value that failed validation; its problem is already recorded


class YamlReader:
    """Walks the YAML node tree, so every value keeps the line it came from, and collects
    all problems instead of stopping at the first."""

    def __init__(self, filename: str):
        self.file = filename
        self.problems: list[tuple] = []
        # value node id -> its key node: "is required" points at the parent key's line
        # ("budget:"), not at the first key inside the block.
        self.key_of: dict[int, yaml.Node] = {}

    def fail(self, node, field: str | None, problem: str):
        line = node.start_mark.line + 1 if node is not None else 1
        self.problems.append((self.file, line, field, problem))
        return BAD

    def mapping(self, node, path: str, required: tuple, optional: tuple) -> dict | object:
        if not isinstance(node, yaml.MappingNode):
            return self.fail(node, path or None, Text("must be a mapping, got {value}", value=_show(node)))
        found: dict[str, yaml.Node] = {}
        allowed = required + optional
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            where = _join(path, str(key))
            if not isinstance(key, str) or key_node.tag != "tag:yaml.org,2002:str":
                self.fail(key_node, path or None, Text("keys must be plain names, got {value}", value=_show(key_node)))
            elif key in found:
                self.fail(key_node, where, Text("duplicate key"))
            elif key not in allowed:
                self.fail(key_node, where, Text("unknown key; expected one of {allowed}", allowed=", ".join(allowed)))
            else:
                found[key] = value_node
                self.key_of[id(value_node)] = key_node
        for key in required:
            if key not in found:
                self.fail(self.key_of.get(id(node), node), _join(path, key), Text("is required"))
        return found

    def text(self, node, field: str) -> str | object:
        if not _is_scalar(node, "str"):
            return self.fail(node, field, Text("must be text, got {value} (quote it)", value=_show(node)))
        value = node.value
        if not value or value != value.strip() or len(value) > _MAX_TEXT or any(ord(c) < 32 for c in value):
            return self.fail(node, field, Text("{value} must be 1-{max} characters, no surrounding spaces or "
                                               "control characters", value=_show(node), max=_MAX_TEXT))
        return value

    def name(self, node, field: str) -> str | object:
        value = self.text(node, field)
        if value is not BAD and not _NAME_RE.match(value):
            return self.fail(node, field, Text("{value} must be lower-case letters, digits and _", value=_show(node)))
        return value

    def choice(self, node, field: str, options: tuple) -> str | object:
        if not isinstance(node, yaml.ScalarNode) or node.value not in options:
            return self.fail(node, field, Text("{value} is not one of {allowed}", value=_show(node),
                                               allowed=", ".join(options)))
        return node.value

    def boolean(self, node, field: str) -> bool | object:
        if not _is_scalar(node, "bool"):
            return self.fail(node, field, Text("{value} must be true or false", value=_show(node)))
        return _construct(node)

    def date(self, node, field: str) -> date | object:
        # Read the raw scalar, quoted or not: YAML would reject 2025-13-01 with a
        # message that names no field.
        if isinstance(node, yaml.ScalarNode) and _DATE_RE.match(node.value):
            try:
                return date.fromisoformat(node.value)
            except ValueError:
                pass
        return self.fail(node, field, Text("{value} is not a date (YYYY-MM-DD)", value=_show(node)))

    def number(self, node, field: str, *, integer: bool = False, minimum=None,
               exclusive_min: bool = False, maximum=None, exclusive_max: bool = False):
        value = BAD
        if _is_scalar(node, "int"):
            value = _construct(node)
        elif not integer and _is_scalar(node, "float"):
            value = _construct(node)
        elif not integer and _is_scalar(node, "str") and node.style is None and _FLOAT_RE.match(node.value):
            value = float(node.value)
        if value is BAD:
            if integer:
                return self.fail(node, field, Text("{value} is not an integer", value=_show(node)))
            return self.fail(node, field, Text("{value} is not a number", value=_show(node)))
        if abs(value) > 1e15 or not math.isfinite(value):  # huge ints overflow float()
            return self.fail(node, field, Text("{value} must be finite", value=_show(node)))
        if minimum is not None and (value < minimum or (exclusive_min and value == minimum)):
            return self.fail(node, field, Text("{value} must be {op} {limit}", value=_show(node),
                                               op=">" if exclusive_min else ">=", limit=minimum))
        if maximum is not None and (value > maximum or (exclusive_max and value == maximum)):
            return self.fail(node, field, Text("{value} must be {op} {limit}", value=_show(node),
                                               op="<" if exclusive_max else "<=", limit=maximum))
        return float(value) if not integer else value

    def items(self, node, field: str) -> list | object:
        if not isinstance(node, yaml.SequenceNode):
            return self.fail(node, field, Text("must be a list, got {value}", value=_show(node)))
        return node.value

    def name_set(self, node, field: str, read, *, options: tuple | None = None) -> frozenset | object:
        items = self.items(node, field)
        if items is BAD:
            return BAD
        out, ok = set(), True
        for i, item in enumerate(items):
            where = f"{field}[{i}]"
            value = self.choice(item, where, options) if options else read(item, where)
            if value is BAD:
                ok = False
            elif value in out:
                ok = False
                self.fail(item, where, Text("{value} is listed twice", value=_show(item)))
            else:
                out.add(value)
        return frozenset(out) if ok else BAD


def _is_scalar(node, tag: str) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == f"tag:yaml.org,2002:{tag}"


def _construct(node):
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def _show(node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return Text("nothing") if node.tag.endswith(":null") else repr(node.value)
    if isinstance(node, yaml.SequenceNode):
        return Text("a list")
    if isinstance(node, yaml.MappingNode):
        return Text("a mapping")
    return Text("nothing")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


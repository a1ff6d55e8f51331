"""Data owners' policies: one YAML file per dataset in `policies/`.

A policy says who may use a dataset (licences with expiry and purposes, 授权场景),
how (job modes), how much (a per-operator privacy budget per period plus a
lifetime cap), and what a result must pass before release. `parse_policy` checks
a file against the schema below and reports every problem as
``file:line: field: what is wrong`` so an owner can fix the file without help.

Schema (unknown keys are refused; ``?`` marks optional keys and their default)::

    dataset: health_visits            # must equal the file's stem (health_visits.yaml)
    classification: L3                # L1 public .. L4 most sensitive; see LEVEL_RULES
    modes: [query, program]           # subset of query | program | reviewed
    release: one_reviewer             # auto | one_reviewer | two_reviewers
    run_approval: auto                # auto | owner (owner approves each job before it runs)
    licences:                         # may be empty: nobody is licensed
      - operator: operator            # operator id
        expires: 2027-12-31           # last valid day (YYYY-MM-DD)
        purposes: [public_health_planning]
        revoked: false                # ? false
    budget:                           # per operator
      epsilon_per_period: 5.0         # > 0
      delta_per_period: 1.0e-6        # ? 0.0, in [0, 1)
      refresh: monthly                # none | daily | monthly | quarterly | yearly (UTC calendar)
      lifetime_epsilon: 50.0          # >= epsilon_per_period
      lifetime_delta: 1.0e-5          # ? 0.0, >= delta_per_period, < 1
    min_group_size: 10                # ? 10, smallest released cell
    forbidden_columns: [person_id]    # ? []
    limits:                           # ? each key optional, see LIMITS
      memory_mb: 2048
      cpus: 1.0
      wall_seconds: 600
      output_bytes: 10485760

The policy is pure data; nothing here reads files. The CLI/store read the text
and pass it in, and store `Policy.text` with `Policy.content_hash`.
"""
from __future__ import annotations

import difflib
import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import PurePosixPath

import yaml

from sandbox.core.errors import InvalidInput, Text, join_texts
from sandbox.core.manifest import LEVELS

MODES = ("query", "program", "reviewed")
DP_MODES = frozenset({"query", "program"})
RELEASE_RULES = ("auto", "one_reviewer", "two_reviewers")
RUN_APPROVALS = ("auto", "owner")
REFRESH_RULES = ("none", "daily", "monthly", "quarterly", "yearly")

# What a classification level implies (team decision): (allowed modes, allowed release rules).
# L3/L4 hold personal or sensitive data, so only DP modes; L3 needs a human before
# release, L4 two independent humans.
LEVEL_RULES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "L1": (frozenset(MODES), frozenset(RELEASE_RULES)),
    "L2": (frozenset(MODES), frozenset(RELEASE_RULES)),
    "L3": (DP_MODES, frozenset({"one_reviewer", "two_reviewers"})),
    "L4": (DP_MODES, frozenset({"two_reviewers"})),
}

# key: (default, minimum, maximum, integer?). The caps keep one job from starving
# the machine whatever an owner writes.
LIMITS: dict[str, tuple] = {
    "memory_mb": (2048, 64, 65536, True),
    "cpus": (1.0, 0.1, 32.0, False),
    "wall_seconds": (600, 1, 86400, True),
    "output_bytes": (10 * 1024 * 1024, 1, 1024 * 1024 * 1024, True),
}

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# PyYAML (YAML 1.1) reads 1e-6 as a string; owners write it, so accept it as a number.
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_MAX_TEXT = 128


class PolicyError(InvalidInput):
    """A policy file is invalid. `file`, `line` (1-based) and `field` locate the first
    problem; `problems` lists every problem found as (file, line, field, message)."""

    def __init__(self, file: str, line: int, field: str | None, problem: str,
                 problems: tuple = ()):
        self.file = file
        self.line = line
        self.problem = problem
        self.problems = problems or ((file, line, field, problem),)
        super().__init__(join_texts("\n", (_format(*p) for p in self.problems)), field)

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.update(file=self.file, line=self.line,
                   problems=[{"file": f, "line": ln, "field": fd, "message": m}
                             for f, ln, fd, m in self.problems])
        return out


# Where a problem is; no words, so not a message to translate (the problem is a Text).
_AT_FIELD = "{file}:{line}: {field}: {problem}"
_AT_LINE = "{file}:{line}: {problem}"


def _format(file: str, line: int, field: str | None, problem: str) -> Text:
    if field:
        return Text(_AT_FIELD, file=file, line=line, field=field, problem=problem)
    return Text(_AT_LINE, file=file, line=line, problem=problem)


@dataclass(frozen=True)
class Licence:
    """An operator's licence (授权) to use one dataset for named purposes."""
    operator: str
    expires: date            # last day the licence is valid
    purposes: frozenset[str]
    revoked: bool = False

    def to_dict(self) -> dict:
        return {"operator": self.operator, "expires": self.expires.isoformat(),
                "purposes": sorted(self.purposes), "revoked": self.revoked}


@dataclass(frozen=True, kw_only=True)
class Budget:
    """Per-operator privacy budget: a per-period allowance that refreshes, and a lifetime
    cap that never does (refreshing alone lets repeated queries average noise away).
    Keyword-only so an epsilon can never land in a delta slot by position."""
    epsilon_per_period: float
    refresh: str
    lifetime_epsilon: float
    delta_per_period: float = 0.0
    lifetime_delta: float = 0.0

    def __post_init__(self):
        # parse_policy reports these with line numbers first; this guards direct construction.
        if self.refresh not in REFRESH_RULES:
            raise InvalidInput(Text("refresh must be one of {allowed}", allowed=", ".join(REFRESH_RULES)),
                               "budget.refresh")
        for name in ("epsilon_per_period", "lifetime_epsilon", "delta_per_period", "lifetime_delta"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise InvalidInput(Text("{name} must be a finite number >= 0", name=name), f"budget.{name}")
        if self.epsilon_per_period <= 0:
            raise InvalidInput(Text("epsilon_per_period must be > 0"), "budget.epsilon_per_period")
        if self.lifetime_epsilon < self.epsilon_per_period:
            raise InvalidInput(Text("lifetime_epsilon must be >= epsilon_per_period"), "budget.lifetime_epsilon")
        if self.lifetime_delta < self.delta_per_period or self.lifetime_delta >= 1:
            raise InvalidInput(Text("lifetime_delta must be >= delta_per_period and < 1"), "budget.lifetime_delta")

    def to_dict(self) -> dict:
        return {"epsilon_per_period": self.epsilon_per_period, "delta_per_period": self.delta_per_period,
                "refresh": self.refresh, "lifetime_epsilon": self.lifetime_epsilon,
                "lifetime_delta": self.lifetime_delta}


@dataclass(frozen=True)
class ResourceLimits:
    memory_mb: int = LIMITS["memory_mb"][0]
    cpus: float = LIMITS["cpus"][0]
    wall_seconds: int = LIMITS["wall_seconds"][0]
    output_bytes: int = LIMITS["output_bytes"][0]

    def to_dict(self) -> dict:
        return {"memory_mb": self.memory_mb, "cpus": self.cpus,
                "wall_seconds": self.wall_seconds, "output_bytes": self.output_bytes}


@dataclass(frozen=True)
class Policy:
    dataset: str
    classification: str
    modes: frozenset[str]
    licences: tuple[Licence, ...]
    budget: Budget
    release: str
    run_approval: str = "auto"
    min_group_size: int = 10
    forbidden_columns: frozenset[str] = frozenset()
    limits: ResourceLimits = ResourceLimits()
    # The canonical text as applied; content_hash is over these bytes. parse_policy sets
    # it to the file's text; a Policy built in code (or via dataclasses.replace) gets a
    # dump of its own content, so a changed policy never keeps an old text and hash.
    text: str = field(default="", init=False, compare=False, repr=False)

    def __post_init__(self):
        dumped = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        object.__setattr__(self, "text", canonical_text(dumped))

    @property
    def content_hash(self) -> str:
        """sha256 (hex) of the canonical text bytes as applied; comments count, since the
        file an owner reviewed is the thing pinned."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def reviewers_required(self) -> int:
        """Reviewers for a query-mode job: 0 (auto), 1 or 2. See reviewers_for(mode)."""
        return self.reviewers_for("query")

    def reviewers_for(self, mode: str) -> int:
        # "auto" release applies to query mode only: program output is DP too but the
        # analyst's code chose what to compute, and reviewed mode is not DP at all.
        if self.release == "two_reviewers":
            return 2
        if self.release == "one_reviewer":
            return 1
        return 0 if mode == "query" else 1

    def licence(self, operator: str) -> Licence | None:
        for lic in self.licences:
            if lic.operator == operator:
                return lic
        return None

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "classification": self.classification,
            "modes": sorted(self.modes),
            "release": self.release,
            "run_approval": self.run_approval,
            "licences": [lic.to_dict() for lic in self.licences],
            "budget": self.budget.to_dict(),
            "min_group_size": self.min_group_size,
            "forbidden_columns": sorted(self.forbidden_columns),
            "limits": self.limits.to_dict(),
        }


def canonical_text(text: str) -> str:
    """The bytes that get hashed: BOM dropped, LF line endings, one final newline, so an
    editor's line-ending choice does not change a policy's identity."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text.rstrip("\n") + "\n"


# --- parsing ---------------------------------------------------------------------------

_BAD = object()  # a value that failed validation; its problem is already recorded


class _Reader:
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
        return _BAD

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
        if value is not _BAD and not _NAME_RE.match(value):
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
        value = _BAD
        if _is_scalar(node, "int"):
            value = _construct(node)
        elif not integer and _is_scalar(node, "float"):
            value = _construct(node)
        elif not integer and _is_scalar(node, "str") and node.style is None and _FLOAT_RE.match(node.value):
            value = float(node.value)
        if value is _BAD:
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
        if items is _BAD:
            return _BAD
        out, ok = set(), True
        for i, item in enumerate(items):
            where = f"{field}[{i}]"
            value = self.choice(item, where, options) if options else read(item, where)
            if value is _BAD:
                ok = False
            elif value in out:
                ok = False
                self.fail(item, where, Text("{value} is listed twice", value=_show(item)))
            else:
                out.add(value)
        return frozenset(out) if ok else _BAD


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


def parse_policy(text: str, filename: str = "<policy>") -> Policy:
    """Validate policy YAML `text` and return the Policy; raise PolicyError listing
    every problem, each with the file, line and field."""
    if not isinstance(text, str):
        raise PolicyError(filename, 1, None, Text("policy must be text"))
    canon = canonical_text(text)
    try:
        root = yaml.compose(canon, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(filename, mark.line + 1 if mark else 1, None,
                          Text("not valid YAML: {detail}", detail=problem)) from None
    if root is None:
        raise PolicyError(filename, 1, None, Text("policy is empty"))

    r = _Reader(filename)
    top = r.mapping(root, "", required=("dataset", "classification", "modes", "release", "run_approval",
                                         "licences", "budget"),
                    optional=("min_group_size", "forbidden_columns", "limits"))
    if top is _BAD:
        _raise(r)

    def get(key, read, default=None):
        return read(top[key]) if key in top else default

    dataset = get("dataset", lambda n: r.name(n, "dataset"))
    stem = _file_stem(filename)
    if dataset not in (_BAD, None) and stem is not None and stem != dataset:
        # One file per dataset: a copied file that still names another dataset is a mistake.
        r.fail(top["dataset"], "dataset", Text("{dataset} does not match the file name {stem}.yaml",
                                               dataset=repr(dataset), stem=stem))
    classification = get("classification", lambda n: r.choice(n, "classification", LEVELS))
    modes = get("modes", lambda n: r.name_set(n, "modes", None, options=MODES))
    if modes is not _BAD and modes is not None and not modes:
        r.fail(top["modes"], "modes", Text("must list at least one mode"))
    release = get("release", lambda n: r.choice(n, "release", RELEASE_RULES))
    run_approval = get("run_approval", lambda n: r.choice(n, "run_approval", RUN_APPROVALS))
    licences = get("licences", lambda n: _licences(r, n))
    budget = get("budget", lambda n: _budget(r, n))
    min_group_size = get("min_group_size", lambda n: r.number(n, "min_group_size", integer=True, minimum=1), 10)
    forbidden = get("forbidden_columns", lambda n: r.name_set(n, "forbidden_columns", r.text), frozenset())
    limits = get("limits", lambda n: _limits(r, n), ResourceLimits())

    if classification in LEVEL_RULES:
        _check_level(r, top, classification, modes, release)
    if r.problems:
        _raise(r)
    policy = Policy(dataset=dataset, classification=classification, modes=modes, licences=licences,
                    budget=budget, release=release, run_approval=run_approval,
                    min_group_size=min_group_size, forbidden_columns=forbidden, limits=limits)
    object.__setattr__(policy, "text", canon)  # pin the owner's file, comments included
    return policy


def _raise(r: _Reader):
    problems = sorted(r.problems, key=lambda p: p[1])  # in file order, as an owner reads
    first = problems[0]
    raise PolicyError(first[0], first[1], first[2], first[3], tuple(problems))


def _file_stem(filename: str) -> str | None:
    p = PurePosixPath(filename.replace("\\", "/"))
    return p.stem if p.suffix in (".yaml", ".yml") else None


def _check_level(r: _Reader, top: dict, level: str, modes, release):
    allowed_modes, allowed_release = LEVEL_RULES[level]
    if modes not in (_BAD, None):
        for i, item in enumerate(top["modes"].value):
            if item.value not in allowed_modes:
                r.fail(item, f"modes[{i}]", Text("mode {mode} is not allowed at classification {level} "
                                                 "(allowed: {allowed})", mode=repr(item.value), level=level,
                                                 allowed=", ".join(sorted(allowed_modes))))
    if release not in (_BAD, None) and release not in allowed_release:
        r.fail(top["release"], "release", Text("release {release} is not allowed at classification {level} "
                                               "(allowed: {allowed})", release=repr(release), level=level,
                                               allowed=", ".join(sorted(allowed_release))))


def _licences(r: _Reader, node):
    items = r.items(node, "licences")
    if items is _BAD:
        return _BAD
    out, seen, ok = [], set(), True
    for i, item in enumerate(items):
        path = f"licences[{i}]"
        m = r.mapping(item, path, required=("operator", "expires", "purposes"), optional=("revoked",))
        if m is _BAD:
            ok = False
            continue
        operator = r.text(m["operator"], f"{path}.operator") if "operator" in m else _BAD
        expires = r.date(m["expires"], f"{path}.expires") if "expires" in m else _BAD
        purposes = r.name_set(m["purposes"], f"{path}.purposes", r.text) if "purposes" in m else _BAD
        revoked = r.boolean(m["revoked"], f"{path}.revoked") if "revoked" in m else False
        if purposes not in (_BAD,) and not purposes:
            purposes = r.fail(m["purposes"], f"{path}.purposes", Text("must list at least one purpose"))
        if operator is not _BAD and operator in seen:
            operator = r.fail(m["operator"], f"{path}.operator",
                              Text("operator {operator} already has a licence above; merge them",
                                   operator=repr(operator)))
        if _BAD in (operator, expires, purposes, revoked):
            ok = False
            continue
        seen.add(operator)
        out.append(Licence(operator=operator, expires=expires, purposes=purposes, revoked=revoked))
    return tuple(out) if ok else _BAD


def _budget(r: _Reader, node):
    m = r.mapping(node, "budget", required=("epsilon_per_period", "refresh", "lifetime_epsilon"),
                  optional=("delta_per_period", "lifetime_delta"))
    if m is _BAD:
        return _BAD

    def num(key, default, **kw):
        return r.number(m[key], f"budget.{key}", **kw) if key in m else default

    eps = num("epsilon_per_period", _BAD, minimum=0, exclusive_min=True)
    life_eps = num("lifetime_epsilon", _BAD, minimum=0, exclusive_min=True)
    delta = num("delta_per_period", 0.0, minimum=0, maximum=1, exclusive_max=True)
    life_delta = num("lifetime_delta", 0.0, minimum=0, maximum=1, exclusive_max=True)
    refresh = r.choice(m["refresh"], "budget.refresh", REFRESH_RULES) if "refresh" in m else _BAD
    if _BAD not in (eps, life_eps) and life_eps < eps:
        r.fail(m["lifetime_epsilon"], "budget.lifetime_epsilon",
               Text("{value} must be >= epsilon_per_period ({limit})", value=f"{life_eps:g}", limit=f"{eps:g}"))
        return _BAD
    if _BAD not in (delta, life_delta) and life_delta < delta:
        where = m.get("lifetime_delta", node)
        r.fail(where, "budget.lifetime_delta", Text("{value} must be >= delta_per_period ({limit})",
                                                    value=f"{life_delta:g}", limit=f"{delta:g}"))
        return _BAD
    if _BAD in (eps, life_eps, delta, life_delta, refresh):
        return _BAD
    return Budget(epsilon_per_period=eps, delta_per_period=delta, refresh=refresh,
                  lifetime_epsilon=life_eps, lifetime_delta=life_delta)


def _limits(r: _Reader, node):
    m = r.mapping(node, "limits", required=(), optional=tuple(LIMITS))
    if m is _BAD:
        return _BAD
    values = {}
    for key, (default, lo, hi, integer) in LIMITS.items():
        values[key] = (r.number(m[key], f"limits.{key}", integer=integer, minimum=lo, maximum=hi)
                       if key in m else default)
    if _BAD in values.values():
        return _BAD
    return ResourceLimits(**values)


# --- diff ------------------------------------------------------------------------------

def diff_policies(old_text: str | None, new_text: str, old_name: str = "current",
                  new_name: str = "proposed") -> str:
    """A unified diff of the two texts followed by a short semantic summary, for
    `sandbox policy diff`. Both texts are validated first (PolicyError if invalid);
    `old_text` None means the dataset has no applied policy yet."""
    new = parse_policy(new_text, new_name)
    old = parse_policy(old_text, old_name) if old_text is not None else None
    old_lines = old.text.splitlines(keepends=True) if old else []
    body = "".join(difflib.unified_diff(old_lines, new.text.splitlines(keepends=True),
                                        fromfile=old_name if old else "/dev/null", tofile=new_name))
    summary = semantic_changes(old, new)
    if not summary:
        summary = [Text("no changes")] if not body else [Text("no semantic changes (comments or formatting only)")]
    return body + ("\n" if body and not body.endswith("\n") else "") + \
        "Summary:\n" + "".join(f"  {line}\n" for line in summary)


def semantic_changes(old: Policy | None, new: Policy) -> list[str]:
    """One line per meaningful change, e.g. 'budget.epsilon_per_period: 2.0 -> 3.0'."""
    if old is None:
        return [Text("new policy for {dataset} ({level}, {n} licence(s))", dataset=new.dataset,
                     level=new.classification, n=len(new.licences))]
    out: list[str] = []
    a, b = old.to_dict(), new.to_dict()
    for key in b:
        if key == "licences":
            continue
        _compare(key, a[key], b[key], out)
    old_lic = {lic.operator: lic.to_dict() for lic in old.licences}
    new_lic = {lic.operator: lic.to_dict() for lic in new.licences}
    for op in new_lic.keys() - old_lic.keys():
        out.append(Text("licence added: {operator}", operator=op))
    for op in old_lic.keys() - new_lic.keys():
        out.append(Text("licence removed: {operator}", operator=op))
    for op in sorted(old_lic.keys() & new_lic.keys()):
        for key in new_lic[op]:
            _compare(f"licences[{op}].{key}", old_lic[op][key], new_lic[op][key], out)
    return out


def _compare(path: str, old, new, out: list[str]):
    if old == new:
        return
    if isinstance(old, dict):
        for key in new:
            _compare(f"{path}.{key}", old.get(key), new[key], out)
    elif isinstance(old, list):
        added = [x for x in new if x not in old]
        removed = [x for x in old if x not in new]
        parts = ([Text("added {values}", values=", ".join(map(str, added)))] if added else []) + \
                ([Text("removed {values}", values=", ".join(map(str, removed)))] if removed else [])
        out.append(join_texts(": ", [path, join_texts("; ", parts)]))
    else:
        out.append(f"{path}: {old} -> {new}")


def check_against_manifest(policy: Policy, manifest) -> list[str]:
    """Problems between a policy and its dataset's public manifest (empty if none):
    the policy must not grade the data lower than the manifest does, and forbidden
    columns must exist (a typo there would silently forbid nothing)."""
    problems = []
    if policy.dataset != manifest.name:
        problems.append(Text("policy is for {policy} but the manifest is {manifest}", policy=repr(policy.dataset),
                             manifest=repr(manifest.name)))
    if LEVELS.index(policy.classification) < LEVELS.index(manifest.classification):
        problems.append(Text("classification {level} is below the manifest's {manifest_level}",
                             level=policy.classification, manifest_level=manifest.classification))
    for col in sorted(policy.forbidden_columns):
        if not manifest.has_column(col):
            problems.append(Text("forbidden column {column} is not a column of {dataset}", column=repr(col),
                                 dataset=manifest.name))
    return problems

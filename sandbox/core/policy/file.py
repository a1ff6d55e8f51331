"""A data owner's policy file: one YAML file per dataset in `policies/`.

`parse_policy` checks a file against the schema below and reports every problem as
``file:line: field: what is wrong`` so an owner can fix the file without help;
`check_against_manifest` compares it with the dataset's public manifest, and
`diff_policies` shows what a new version changes.

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
    budget:                           # per operator, unless the key starts with dataset_
      epsilon_per_period: 5.0         # > 0
      delta_per_period: 1.0e-6        # ? 0.0, in [0, 1)
      refresh: monthly                # none | daily | monthly | quarterly | yearly (UTC calendar)
      lifetime_epsilon: 50.0          # >= epsilon_per_period
      lifetime_delta: 1.0e-5          # ? 0.0, >= delta_per_period, < 1
      min_epsilon_per_query: 0.05     # ? 0.0 (no floor), <= epsilon_per_period; each query of a
                                      #   query job, and a program job as a whole, costs at least this
      jobs_per_period: 200            # ? no quota; jobs admitted per operator per period (not
                                      #   counting jobs cancelled or refused before running)
      dataset_epsilon_per_period: 8.0 # ? no cap; all operators together, >= epsilon_per_period
      dataset_lifetime_epsilon: 80.0  # ? no cap; >= lifetime_epsilon and dataset_epsilon_per_period
      dataset_delta_per_period: 2.0e-6  # ? no cap; in [0, 1), >= delta_per_period
      dataset_lifetime_delta: 2.0e-5  # ? no cap; < 1, >= lifetime_delta and dataset_delta_per_period
    min_group_size: 10                # ? 10, smallest released cell
    forbidden_columns: [person_id]    # ? []
    limits:                           # ? each key optional, see LIMITS
      memory_mb: 2048
      cpus: 1.0
      wall_seconds: 600
      output_bytes: 10485760
    policy_changes: second_approval   # ? none; second_approval: a change to this policy is only
                                      #   proposed until another person (compliance) approves it

Nothing here reads files: the CLI/store read the text and pass it in, and store
`Policy.text` with `Policy.content_hash`. What a parsed policy holds, and what each
classification level allows: `sandbox.core.policy.model`.
"""
from __future__ import annotations

import difflib
from pathlib import PurePosixPath

import yaml

from sandbox.core.errors import InvalidInput, Text, join_texts
from sandbox.core.manifest import LEVELS
from sandbox.core.policy.model import (BUDGET_ORDER, DATASET_CAPS, LEVEL_RULES, LIMITS, MODES, POLICY_CHANGES,
    REFRESH_RULES, RELEASE_RULES, RUN_APPROVALS, Budget, Licence, Policy, ResourceLimits, canonical_text)
from sandbox.core.policy.reader import BAD, YamlReader


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

    r = YamlReader(filename)
    top = r.mapping(root, "", required=("dataset", "classification", "modes", "release", "run_approval",
                                         "licences", "budget"),
                    optional=("min_group_size", "forbidden_columns", "limits", "policy_changes"))
    if top is BAD:
        _raise(r)

    def get(key, read, default=None):
        return read(top[key]) if key in top else default

    dataset = get("dataset", lambda n: r.name(n, "dataset"))
    stem = _file_stem(filename)
    if dataset not in (BAD, None) and stem is not None and stem != dataset:
        # One file per dataset: a copied file that still names another dataset is a mistake.
        r.fail(top["dataset"], "dataset", Text("{dataset} does not match the file name {stem}.yaml",
                                               dataset=repr(dataset), stem=stem))
    classification = get("classification", lambda n: r.choice(n, "classification", LEVELS))
    modes = get("modes", lambda n: r.name_set(n, "modes", None, options=MODES))
    if modes is not BAD and modes is not None and not modes:
        r.fail(top["modes"], "modes", Text("must list at least one mode"))
    release = get("release", lambda n: r.choice(n, "release", RELEASE_RULES))
    run_approval = get("run_approval", lambda n: r.choice(n, "run_approval", RUN_APPROVALS))
    licences = get("licences", lambda n: _licences(r, n))
    budget = get("budget", lambda n: _budget(r, n))
    min_group_size = get("min_group_size", lambda n: r.number(n, "min_group_size", integer=True, minimum=1), 10)
    forbidden = get("forbidden_columns", lambda n: r.name_set(n, "forbidden_columns", r.text), frozenset())
    limits = get("limits", lambda n: _limits(r, n), ResourceLimits())
    policy_changes = get("policy_changes", lambda n: r.choice(n, "policy_changes", POLICY_CHANGES), "none")

    if classification in LEVEL_RULES:
        _check_level(r, top, classification, modes, release)
    if r.problems:
        _raise(r)
    policy = Policy(dataset=dataset, classification=classification, modes=modes, licences=licences,
                    budget=budget, release=release, run_approval=run_approval,
                    min_group_size=min_group_size, forbidden_columns=forbidden, limits=limits,
                    policy_changes=policy_changes)
    object.__setattr__(policy, "text", canon)  # pin the owner's file, comments included
    return policy


def _raise(r: YamlReader):
    problems = sorted(r.problems, key=lambda p: p[1])  # in file order, as an owner reads
    first = problems[0]
    raise PolicyError(first[0], first[1], first[2], first[3], tuple(problems))


def _file_stem(filename: str) -> str | None:
    p = PurePosixPath(filename.replace("\\", "/"))
    return p.stem if p.suffix in (".yaml", ".yml") else None


def _check_level(r: YamlReader, top: dict, level: str, modes, release):
    allowed_modes, allowed_release = LEVEL_RULES[level]
    if modes not in (BAD, None):
        for i, item in enumerate(top["modes"].value):
            if item.value not in allowed_modes:
                r.fail(item, f"modes[{i}]", Text("mode {mode} is not allowed at classification {level} "
                                                 "(allowed: {allowed})", mode=repr(item.value), level=level,
                                                 allowed=", ".join(sorted(allowed_modes))))
    if release not in (BAD, None) and release not in allowed_release:
        r.fail(top["release"], "release", Text("release {release} is not allowed at classification {level} "
                                               "(allowed: {allowed})", release=repr(release), level=level,
                                               allowed=", ".join(sorted(allowed_release))))


def _licences(r: YamlReader, node):
    items = r.items(node, "licences")
    if items is BAD:
        return BAD
    out, seen, ok = [], set(), True
    for i, item in enumerate(items):
        path = f"licences[{i}]"
        m = r.mapping(item, path, required=("operator", "expires", "purposes"), optional=("revoked",))
        if m is BAD:
            ok = False
            continue
        operator = r.text(m["operator"], f"{path}.operator") if "operator" in m else BAD
        expires = r.date(m["expires"], f"{path}.expires") if "expires" in m else BAD
        purposes = r.name_set(m["purposes"], f"{path}.purposes", r.text) if "purposes" in m else BAD
        revoked = r.boolean(m["revoked"], f"{path}.revoked") if "revoked" in m else False
        if purposes not in (BAD,) and not purposes:
            purposes = r.fail(m["purposes"], f"{path}.purposes", Text("must list at least one purpose"))
        if operator is not BAD and operator in seen:
            operator = r.fail(m["operator"], f"{path}.operator",
                              Text("operator {operator} already has a licence above; merge them",
                                   operator=repr(operator)))
        if BAD in (operator, expires, purposes, revoked):
            ok = False
            continue
        seen.add(operator)
        out.append(Licence(operator=operator, expires=expires, purposes=purposes, revoked=revoked))
    return tuple(out) if ok else BAD


def _budget(r: YamlReader, node):
    m = r.mapping(node, "budget", required=("epsilon_per_period", "refresh", "lifetime_epsilon"),
                  optional=("delta_per_period", "lifetime_delta", "min_epsilon_per_query", "jobs_per_period",
                            *DATASET_CAPS))
    if m is BAD:
        return BAD

    def num(key, default, **kw):
        return r.number(m[key], f"budget.{key}", **kw) if key in m else default

    positive = {"minimum": 0, "exclusive_min": True}
    below_one = {"minimum": 0, "maximum": 1, "exclusive_max": True}
    values = {
        "epsilon_per_period": num("epsilon_per_period", BAD, **positive),
        "lifetime_epsilon": num("lifetime_epsilon", BAD, **positive),
        "delta_per_period": num("delta_per_period", 0.0, **below_one),
        "lifetime_delta": num("lifetime_delta", 0.0, **below_one),
        "min_epsilon_per_query": num("min_epsilon_per_query", 0.0, minimum=0),
        "jobs_per_period": num("jobs_per_period", None, integer=True, minimum=1),
        "dataset_epsilon_per_period": num("dataset_epsilon_per_period", None, **positive),
        "dataset_lifetime_epsilon": num("dataset_lifetime_epsilon", None, **positive),
        "dataset_delta_per_period": num("dataset_delta_per_period", None, **below_one),
        "dataset_lifetime_delta": num("dataset_lifetime_delta", None, **below_one),
    }
    refresh = r.choice(m["refresh"], "budget.refresh", REFRESH_RULES) if "refresh" in m else BAD
    ordered = True
    for key, other in (("lifetime_epsilon", "epsilon_per_period"), ("lifetime_delta", "delta_per_period"),
                       *BUDGET_ORDER):
        v, limit = values[key], values[other]
        if BAD in (v, limit) or None in (v, limit):
            continue
        floor = key == "min_epsilon_per_query"
        if (floor and v > limit) or (not floor and v < limit):
            where = m.get(key, node)
            text = (Text("{value} must be <= {other} ({limit}): a larger floor refuses every job", value=f"{v:g}",
                         other=other, limit=f"{limit:g}") if floor else
                    Text("{value} must be >= {other} ({limit})", value=f"{v:g}", other=other, limit=f"{limit:g}"))
            r.fail(where, f"budget.{key}", text)
            ordered = False
    if not ordered or BAD in values.values() or refresh is BAD:
        return BAD
    return Budget(refresh=refresh, **values)


def _limits(r: YamlReader, node):
    m = r.mapping(node, "limits", required=(), optional=tuple(LIMITS))
    if m is BAD:
        return BAD
    values = {}
    for key, (default, lo, hi, integer) in LIMITS.items():
        values[key] = (r.number(m[key], f"limits.{key}", integer=integer, minimum=lo, maximum=hi)
                       if key in m else default)
    if BAD in values.values():
        return BAD
    return ResourceLimits(**values)


# --- diff ------------------------------------------------------------------------------

def diff_policies(old_text: str | None, new_text: str, old_name: str = "current",
                  new_name: str = "proposed") -> str:
    """A unified diff of the two texts followed by a short semantic summary, for
    `sandbox policy diff`. Both texts are validated first (PolicyError if invalid);
    `old_text` None means the dataset has no applied policy yet."""
    new = parse_policy(new_text, new_name)
    old = parse_policy(old_text, old_name) if old_text is not None else None
    body = text_diff(old.text if old else None, new.text, old_name, new_name)
    summary = semantic_changes(old, new)
    if not summary:
        summary = [Text("no changes")] if not body else [Text("no semantic changes (comments or formatting only)")]
    return body + ("\n" if body and not body.endswith("\n") else "") + \
        "Summary:\n" + "".join(f"  {line}\n" for line in summary)


def text_diff(old_text: str | None, new_text: str, old_name: str = "current", new_name: str = "proposed") -> str:
    """The unified diff alone (no validation, no summary), e.g. between two stored versions."""
    old_lines = canonical_text(old_text).splitlines(keepends=True) if old_text is not None else []
    return "".join(difflib.unified_diff(old_lines, canonical_text(new_text).splitlines(keepends=True),
                                        fromfile=old_name if old_text is not None else "/dev/null",
                                        tofile=new_name))


def semantic_changes(old: Policy | None, new: Policy) -> list[str]:
    """One line per meaningful change, e.g. 'budget.epsilon_per_period: 2.0 -> 3.0'."""
    if old is None:
        return [Text("new policy for {dataset} ({level}, {n} licence(s))", dataset=new.dataset,
                     level=new.classification, n=len(new.licences))]
    out: list[str] = []
    a, b = old.to_dict(), new.to_dict()
    for key in [*b, *(k for k in a if k not in b)]:   # optional keys may be in one only
        if key == "licences":
            continue
        _compare(key, a.get(key), b.get(key), out)
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
    if isinstance(old, dict) and isinstance(new, dict):
        # Optional keys appear only when set, so a removed key reads as "-> None".
        for key in [*new, *(k for k in old if k not in new)]:
            _compare(f"{path}.{key}", old.get(key), new.get(key), out)
    elif isinstance(old, list):
        added = [x for x in new if x not in old]
        removed = [x for x in old if x not in new]
        parts = ([Text("added {values}", values=", ".join(map(str, added)))] if added else []) + \
                ([Text("removed {values}", values=", ".join(map(str, removed)))] if removed else [])
        out.append(join_texts(": ", [path, join_texts("; ", parts)]))
    else:
        # A Text (same English as before) so pages can show the values in their language.
        out.append(Text(CHANGE, path=path, old=old, new=new))


# One value changed; no words, so not a message to translate (pages translate the values).
CHANGE = "{path}: {old} -> {new}"


# --- against the manifest --------------------------------------------------------------

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

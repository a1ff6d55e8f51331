"""What every job spec shares, whatever its mode: reading its text (JSON or YAML, size
checked first) and checking its header (known keys, mode, dataset, purpose) and the fields
several modes use (names, epsilon). Specs are untrusted input; every refusal is an
`InvalidInput` naming the field, and nothing here looks at data.
"""
from __future__ import annotations

import hashlib
import json
import math
import re

from sandbox.core.errors import InvalidInput, Text
from sandbox.core.manifest import Manifest

MAX_SPEC_BYTES = 64 * 1024
MAX_EPSILON = 10.0
# Below this the noise is a million times the sensitivity (useless), and far below it the
# scale arithmetic overflows (1e-300 and smaller): refused as input, not a 500.
MIN_EPSILON = 1e-6
MAX_PURPOSE_CHARS = 200
MAX_DEPTH = 8
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


# ---------------------------------------------------------------- text input

def load_spec_text(text: str | bytes, *, max_bytes: int = MAX_SPEC_BYTES) -> object:
    """Parse a spec from JSON or YAML text. The size is checked before parsing,
    YAML anchors/aliases and duplicate keys are refused (aliases can expand a small
    file into a huge structure; duplicates silently drop one value)."""
    if isinstance(text, str):
        raw = text.encode("utf-8")
    elif isinstance(text, (bytes, bytearray)):
        raw = bytes(text)
    else:
        raise InvalidInput(Text("spec must be JSON or YAML text"))
    if len(raw) > max_bytes:
        raise InvalidInput(Text("spec is {size} bytes; the limit is {limit} bytes", size=len(raw), limit=max_bytes),
                           "spec")
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(Text("spec must be UTF-8 text"), "spec") from None
    if not body.strip():
        raise InvalidInput(Text("spec is empty"), "spec")
    if body.lstrip().startswith(("{", "[")):
        try:
            return json.loads(body, object_pairs_hook=_no_duplicate_pairs)
        except InvalidInput:
            raise
        except (ValueError, RecursionError) as e:
            raise InvalidInput(Text("spec is not valid JSON: {detail}", detail=_short(e)), "spec") from None
    return _load_yaml(body)


def _no_duplicate_pairs(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise InvalidInput(Text("spec: key '{key}' appears twice; keep one", key=k), "spec")
        out[k] = v
    return out


def _load_yaml(body: str) -> object:
    # PyYAML is a pure data parser; imported here so the module's import stays stdlib-only.
    import yaml

    class _StrictLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.events.AliasEvent):
                raise InvalidInput(Text("spec: YAML anchors and aliases (&, *) are not allowed"), "spec")
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = key_node.value
                if key in seen:
                    raise InvalidInput(Text("spec: key '{key}' appears twice; keep one", key=key), "spec")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    try:
        return yaml.load(body, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except InvalidInput:
        raise
    except (yaml.YAMLError, RecursionError) as e:
        raise InvalidInput(Text("spec is neither valid JSON nor valid YAML: {detail}", detail=_short(e)),
                           "spec") from None


def _short(e: Exception) -> str:
    return " ".join(str(e).split())[:200]


# ------------------------------------------------------------------ header and shared fields

def check_header(data: object, manifest: Manifest, *, mode: str, allowed: tuple, required: tuple, who: str,
                 max_bytes: int) -> None:
    """What every job spec shares: a mapping of known keys, the required ones present, its
    mode, and this dataset. `who` names the spec in messages (a Text, e.g. Text("the spec"))."""
    _check_size(data, max_bytes)
    if not isinstance(data, dict):
        raise InvalidInput(Text("spec must be a mapping with keys: {keys}", keys=", ".join(required)), "spec")
    refuse_unknown(data, allowed, "", who)
    for key in required:
        if key not in data:
            raise InvalidInput(Text("{field}: missing; {who} needs {keys}", field=key, who=who,
                                    keys=", ".join(required)), key)
    if data["mode"] != mode:
        raise InvalidInput(Text("mode: must be \"{mode}\" for a {mode} job (got {value})", mode=mode,
                                value=show(data["mode"])), "mode")
    if data["dataset"] != manifest.name:
        raise InvalidInput(Text("dataset: {value} is not this dataset; use \"{name}\"", value=show(data["dataset"]),
                                name=manifest.name), "dataset")


def parse_purpose(purpose: object, what: str | None = None) -> str:
    """The licensed purpose a job states (every mode): one line, stripped. `what` says
    what the job asks for (default: "this analysis")."""
    if what is None:
        what = Text("this analysis")
    if not isinstance(purpose, str) or not purpose.strip():
        raise InvalidInput(Text("purpose: give a non-empty text saying why you need {what}", what=what), "purpose")
    purpose = purpose.strip()
    if len(purpose) > MAX_PURPOSE_CHARS:
        raise InvalidInput(Text("purpose: at most {max} characters (got {n})", max=MAX_PURPOSE_CHARS,
                                n=len(purpose)), "purpose")
    if any(ord(ch) < 32 for ch in purpose):
        raise InvalidInput(Text("purpose: remove control characters (newlines, tabs)"), "purpose")
    return purpose


def require_keys(raw: dict, keys: tuple, where: str, who: str) -> None:
    """Refuse a mapping missing one of `keys`, naming all of them ("every query needs ...")."""
    listed = Text("{first} and {last}", first=", ".join(keys[:-1]), last=keys[-1])
    for key in keys:
        if key not in raw:
            raise InvalidInput(Text("{field}: missing; {who} needs {keys}", field=f"{where}.{key}", who=who,
                                    keys=listed), f"{where}.{key}")


def check_name(name: object, where: str) -> str:
    """An output or query name: an identifier of at most 64 characters."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInput(Text("{field}: use letters, digits and _ (start with a letter or _), "
                                "at most 64 characters (got {value})", field=f"{where}.name", value=show(name)),
                           f"{where}.name")
    return name


def parse_epsilon(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(Text("{field}: must be a number greater than 0 and at most {max} (got {value})",
                                field=where, max=f"{MAX_EPSILON:g}", value=show(value)), where)
    try:
        eps = float(value)
    except OverflowError:  # a huge int
        eps = math.inf
    if not math.isfinite(eps) or eps <= 0 or eps > MAX_EPSILON:
        raise InvalidInput(Text("{field}: must be a finite number greater than 0 and at most {max} (got {value})",
                                field=where, max=f"{MAX_EPSILON:g}", value=show(value)), where)
    if eps < MIN_EPSILON:
        raise InvalidInput(Text("{field}: must be at least {min} (got {value})", field=where,
                                min=f"{MIN_EPSILON:g}", value=show(value)), where)
    return eps


def refuse_unknown(mapping: dict, allowed: tuple, where: str, what: str) -> None:
    for key in mapping:
        if key not in allowed:
            field = f"{where}.{key}" if where and isinstance(key, str) else (where or str(key))
            raise InvalidInput(Text("{field}: unknown key {key}; allowed keys for {what}: {keys}", field=field,
                                    key=show(key), what=what, keys=", ".join(allowed)), field)


def show(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10 ** 30:
        return Text("a very large integer")  # repr of a huge int is slow, and refused past 4300 digits
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 60 else text[:57] + "..."


def _check_size(data: object, max_bytes: int) -> None:
    """Refuse a spec whose JSON form would exceed max_bytes, walking it with a budget
    (never serializing it whole: shared references could make that enormous)."""
    budget = max_bytes
    stack = [(data, 0)]
    while stack:
        obj, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidInput(Text("spec is nested more than {max} levels deep", max=MAX_DEPTH), "spec")
        if isinstance(obj, dict):
            budget -= 2 + 2 * len(obj)
            for k, v in obj.items():
                budget -= len(str(k)) + 2
                stack.append((v, depth + 1))
        elif isinstance(obj, (list, tuple)):
            budget -= 2 + len(obj)
            stack.extend((v, depth + 1) for v in obj)
        elif isinstance(obj, str):
            budget -= len(obj.encode("utf-8", "replace")) + 2
        elif isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) > 10 ** 30:
            budget -= 32  # don't format giant ints just to measure them
        else:
            budget -= len(repr(obj))
        if budget < 0:
            raise InvalidInput(Text("spec is larger than the limit of {limit} bytes", limit=max_bytes), "spec")


class CanonicalSpec:
    """The canonical JSON of a spec (`to_dict()`) and its hash: what admission, the audit
    log and certificates name a spec by."""

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

"""Licence changes as edits of a policy file's text: add a licence, extend one, revoke one,
change its purposes. The owner's file is what gets reviewed and hashed, so each edit keeps
its comments, key order and layout (ruamel.yaml round trip) and changes only what it must.

The result is only a draft: it goes through the same apply path as a hand-edited file
(parse_policy, a reason, the base-version check, a second approval where the policy asks).
"""
from __future__ import annotations

import io
import re
from datetime import date
from typing import Iterable

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from sandbox.core.errors import InvalidInput, Text
from sandbox.core.policy.model import canonical_text


def add_licence(text: str, operator: str, expires: date, purposes: Iterable[str]) -> str:
    operator = _operator(operator)
    return _edit(text, lambda licences: _add(licences, operator, _date(expires), _purposes(purposes)))


def extend_licence(text: str, operator: str, expires: date) -> str:
    """A later last valid day (shortening a licence is a hand edit: it is rarer and deserves a look)."""
    expires = _date(expires)

    def change(licences):
        lic = _find(licences, operator)
        if expires <= _as_date(lic.get("expires")):
            raise InvalidInput(Text("the new expiry must be later than {expires}", expires=str(lic.get("expires"))),
                               "expires")
        lic["expires"] = expires
    return _edit(text, change)


def revoke_licence(text: str, operator: str) -> str:
    def change(licences):
        lic = _find(licences, operator)
        if lic.get("revoked") is True:
            raise InvalidInput(Text("the licence of {operator} is already revoked", operator=operator), "operator")
        _set(lic, "revoked", True)
    return _edit(text, change)


def set_purposes(text: str, operator: str, purposes: Iterable[str]) -> str:
    purposes = _purposes(purposes)

    def change(licences):
        lic = _find(licences, operator)
        old = lic.get("purposes")
        lic["purposes"] = _flow(purposes, like=old)
    return _edit(text, change)


def split_purposes(value: str) -> list[str]:
    """Purposes as a person types them: separated by commas (ASCII or Chinese) or spaces."""
    for sep in ("，", "、", "\n"):
        value = value.replace(sep, ",")
    return [p.strip() for chunk in value.split(",") for p in chunk.split() if p.strip()]


# --- helpers ---------------------------------------------------------------------------

def _edit(text: str, change) -> str:
    if not isinstance(text, str):
        raise InvalidInput(Text("policy must be text"), "content")
    try:
        data, _, block_indent = load_yaml_guess_indent(canonical_text(text))
    except YAMLError:
        raise InvalidInput(Text("the policy is not valid YAML; fix it in the editor first"), "content") from None
    if not isinstance(data, CommentedMap) or not isinstance(data.get("licences"), list):
        raise InvalidInput(Text("the policy has no licences list; fix it in the editor first"), "content")
    change(data["licences"])
    yaml = _yaml(_mapping_indent(text), 2 if block_indent is None else block_indent)
    out = io.StringIO()
    yaml.dump(data, out)
    return canonical_text(out.getvalue())


def _yaml(indent: int, block_indent: int) -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096          # never re-wrap an owner's long lines
    # The file's own indentation (guessed on load): a dash `offset` spaces in, items 2 after it.
    yaml.indent(mapping=indent, sequence=block_indent + 2, offset=block_indent)
    return yaml


def _add(licences: CommentedSeq, operator: str, expires: date, purposes: list[str]) -> None:
    if any(isinstance(lic, dict) and lic.get("operator") == operator for lic in licences):
        raise InvalidInput(Text("{operator} already has a licence; extend it or change its purposes",
                                operator=operator), "operator")
    lic = CommentedMap()
    lic["operator"], lic["expires"], lic["purposes"] = operator, expires, _flow(purposes)
    if isinstance(licences, CommentedSeq) and (not licences or licences.fa.flow_style()):
        licences.fa.set_flow_style()
        # `licences: []` stays one flow line: the comments after it then stay where they are.
        lic.fa.set_flow_style()
    if licences and isinstance(licences[-1], CommentedMap):
        # The comments after the list hang on the last item's last key: they follow the new item.
        _move_trailing_comment(licences[-1], lic, "purposes")
    licences.append(lic)


def _set(m: CommentedMap, key: str, value) -> None:
    """Set a key; a new one goes last and takes over the trailing comment of the old last key."""
    if key in m:
        m[key] = value
        return
    m[key] = value
    _move_trailing_comment(m, m, key)


def _move_trailing_comment(source: CommentedMap, target: CommentedMap, target_key: str) -> None:
    keys = [k for k in source if k != target_key or source is not target]
    if not keys:
        return
    slot = source.ca.items.get(keys[-1])
    if slot and len(slot) > 2 and slot[2] is not None:
        target.ca.items.setdefault(target_key, [None, None, None, None])[2] = slot[2]
        slot[2] = None


def _mapping_indent(text: str) -> int:
    """Spaces before the keys of the first nested mapping (`budget:` then `  epsilon...`)."""
    after_key = False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.match(r"^( +)[A-Za-z_]", line)
        if after_key and m:
            return len(m.group(1))
        after_key = re.match(r"^[A-Za-z_][\w]*:\s*(#.*)?$", line) is not None
    return 2


def _find(licences, operator: str) -> CommentedMap:
    for lic in licences:
        if isinstance(lic, dict) and lic.get("operator") == operator:
            return lic
    raise InvalidInput(Text("{operator} has no licence in this policy", operator=operator), "operator")


def _flow(items: list[str], like=None) -> CommentedSeq:
    seq = CommentedSeq(items)
    if isinstance(like, CommentedSeq) and not like.fa.flow_style():
        seq.fa.set_block_style()
    else:
        seq.fa.set_flow_style()
    return seq


def _operator(value) -> str:
    value = value.strip() if isinstance(value, str) else ""
    if not value or any(c.isspace() for c in value):
        raise InvalidInput(Text("name the operator account (one word)"), "operator")
    return value


def _date(value) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(Text("expires: give the last valid day as YYYY-MM-DD"), "expires") from None


def _as_date(value) -> date:
    try:
        return _date(value)
    except InvalidInput:
        return date.min     # an unreadable old expiry: any real date extends it; parse_policy reports it


def _purposes(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        v = v.strip() if isinstance(v, str) else ""
        if v and v not in out:
            out.append(v)
    if not out:
        raise InvalidInput(Text("name at least one purpose"), "purposes")
    return out

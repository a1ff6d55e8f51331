"""Strict parsing of JSON request bodies: a depth limit checked before parsing (Python's
parser recurses, so 10,000 nested brackets would be a RecursionError, i.e. a 500), and
duplicate keys refused as the spec reader refuses them in YAML (last-wins would silently
drop a value the user wrote). Every refusal is an InvalidInput, answered as a 400."""
from __future__ import annotations

import json
import re

from flask import Request
from flask.json.provider import DefaultJSONProvider

from sandbox.core.errors import InvalidInput, Text

# Specs nest a few levels (core.specs.common.MAX_DEPTH is 8); the body wraps a spec once more.
MAX_JSON_DEPTH = 32
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def parse_json_body(data: str | bytes) -> object:
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(Text("the body must be UTF-8 text")) from None
    _check_depth(data)
    try:
        return json.loads(data, object_pairs_hook=_no_duplicate_keys)
    except InvalidInput:
        raise
    except (ValueError, RecursionError) as e:
        raise InvalidInput(Text("the body is not valid JSON: {detail}", detail=" ".join(str(e).split())[:200])) \
            from None


def _check_depth(text: str) -> None:
    # Brackets inside strings do not nest; blank the strings out, then count.
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub('""', text)):
        if m.group() in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise InvalidInput(Text("the body nests deeper than {limit} levels; flatten it",
                                        limit=MAX_JSON_DEPTH))
        else:
            depth -= 1


def _no_duplicate_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise InvalidInput(Text("key '{key}' appears twice in the body; keep one", key=key), key)
        out[key] = value
    return out


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with the strict loader (dumps unchanged)."""

    def loads(self, s, **kwargs):
        return parse_json_body(s)


class StrictRequest(Request):
    """get_json() failures are 400s naming the problem (Flask's default is a bare 400 page)."""

    def on_json_loading_failed(self, e):
        if isinstance(e, InvalidInput):
            raise e
        if e is None:
            raise InvalidInput(Text("send a JSON object body with Content-Type: application/json"))
        raise InvalidInput(Text("the body is not valid JSON: {detail}", detail=" ".join(str(e).split())[:200]))

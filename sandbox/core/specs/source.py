"""The operator's Python file (program and reviewed modes): size, syntax and the top-level
entrypoint function. Parsed and compiled only: nothing of the operator's code ever runs on
the host.
"""
from __future__ import annotations

import ast
import re

from sandbox.core.errors import InvalidInput, Text
from sandbox.core.specs.common import show

MAX_CODE_BYTES = 256 * 1024
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def parse_entrypoint(entrypoint: object) -> str:
    """The function of the operator's code that the box calls (program and reviewed modes)."""
    if not isinstance(entrypoint, str) or not _NAME_RE.match(entrypoint) or entrypoint.startswith("__"):
        raise InvalidInput(Text("entrypoint: the name of a function in your code, e.g. \"analyse\" (got {value})",
                                value=show(entrypoint)), "entrypoint")
    return entrypoint


def check_code(code: object, entrypoint: str = "analyse") -> None:
    """Size, syntax and a top-level `def <entrypoint>(df)`. Parsed and compiled only:
    nothing of the operator's code ever runs on the host."""
    args = parse_source(code, entrypoint, "df").args
    positional = len(args.posonlyargs) + len(args.args)
    if positional < 1 and args.vararg is None:
        raise InvalidInput(Text("code: {entrypoint} must take the block's DataFrame as its first argument",
                                entrypoint=entrypoint), "code")
    required = positional - len(args.defaults)
    kw_required = sum(d is None for d in args.kw_defaults)
    if required > 1 or kw_required:
        raise InvalidInput(Text("code: {entrypoint} is called with one argument (the DataFrame); give any other "
                                "parameters defaults", entrypoint=entrypoint), "code")


def parse_source(code: object, entrypoint: str, params: str) -> ast.FunctionDef:
    """Size and syntax of an operator's Python file, and its top-level `def <entrypoint>(<params>)`
    (the last one, as Python would bind it). The caller checks the parameters it will pass."""
    if not isinstance(code, str):
        raise InvalidInput(Text("code: send your program as UTF-8 Python text"), "code")
    size = len(code.encode("utf-8", "surrogatepass"))
    if size > MAX_CODE_BYTES:
        raise InvalidInput(Text("code: {size} bytes; the limit is {limit} bytes", size=size, limit=MAX_CODE_BYTES),
                           "code")
    if not code.strip():
        raise InvalidInput(Text("code: empty; define a function {entrypoint}({params})", entrypoint=entrypoint,
                                params=params), "code")
    if "\x00" in code:
        raise InvalidInput(Text("code: must be UTF-8 text without NUL characters"), "code")
    try:
        code.encode("utf-8")
        tree = ast.parse(code, filename="program.py", mode="exec")
        # compile() also catches what the parser lets through ('return' outside a function...).
        compile(tree, "program.py", "exec", dont_inherit=True)
    except SyntaxError as e:
        # e.msg is Python's own (English) description of the error.
        if e.lineno:
            message = Text("code: syntax error at line {line}: {detail}", line=e.lineno, detail=e.msg)
        else:
            message = Text("code: syntax error: {detail}", detail=e.msg)
        raise InvalidInput(message, "code") from None
    except (ValueError, UnicodeError):
        raise InvalidInput(Text("code: must be UTF-8 text without NUL characters"), "code") from None
    except (RecursionError, MemoryError):
        raise InvalidInput(Text("code: nested too deeply to compile"), "code") from None
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entrypoint]
    if not defs:
        raise InvalidInput(Text("code: define a top-level function `def {entrypoint}({params}):` (entrypoint "
                                "'{entrypoint}'); async functions and lambdas are not called", entrypoint=entrypoint,
                                params=params), "code")
    return defs[-1]


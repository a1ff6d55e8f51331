"""Program-mode job specs: DP for arbitrary analyst Python by sample-and-aggregate
(GUPT, Mohan et al. SIGMOD 2012).

The operator sends a Python file defining ``analyse(df) -> list[float]`` and an output
contract (this spec). The worker splits the dataset into k disjoint blocks by privacy
unit (sandbox.agent.blocks), runs the function once per block in its own box, clamps each
block's vector to the declared ranges and releases a DP aggregate of the k vectors
(sandbox.agent.aggregation). Everything here is public arithmetic on the spec and the manifest; it
never looks at data, so every message and every number is safe to show the operator.

Why the guarantee does not depend on the program
    Neighbouring datasets differ by adding or removing one person. The block of a
    person is a keyed hash of their id alone, so all of one person's rows sit in one
    block and adding or removing them changes that block only; k is fixed before the
    data is touched (never derived from the real count, which would let one person
    change k and so every block). The vector of k block outputs therefore changes in
    at most one entry, which can move anywhere inside the declared [lower, upper]:
    a replacement of one element of a vector of known size k (symmetric distance 2).
    Whatever the code returns, crashes or times out, that entry stays in range (the
    default vector is in range, and trusted code clamps), which is all the proof uses.

Accounting (m outputs, epsilon split evenly, eps_j = epsilon / m; basic composition)
    mean:   (1/k) * sum of k clamped values. Replacing one value moves it by at most
            (U - L) / k, so Laplace noise of scale b = (U - L) / (k * eps_j) gives eps_j.
            OpenDP's make_mean adds a tiny allowance for floating-point rounding, so the
            released scale can exceed this closed form by about 1e-12 relative.
            E|noise| = b; 95% of draws lie within b * ln(20) ~ 3b.
    median: OpenDP's make_private_quantile (alpha = 1/2) over a public grid of 1001
            candidates spanning [L, U], on the vector of known size k. Its privacy map
            gives eps = 2 / b for one replaced value, so b = 2 / eps_j. The score of a
            candidate is about twice its rank distance from the median, and the
            selection misses the best score by more than b * (ln 1001 + t) with
            probability at most e^-t, so with 95% probability the released value lies
            within r = b * (ln 1001 + ln 20) / 2 ranks of the median of the k block
            values (rank_error_95). It does not depend on the range, but it is useless
            unless r is well below k / 2.

How k, the ranges and epsilon trade accuracy (shown in the dry run)
    - Noise on a mean falls as 1 / (k * epsilon) and grows with the range width: halve
      the range or double k and the noise halves. With m outputs each gets epsilon / m,
      so every output's noise grows in proportion to m: ask only for what you need.
    - Larger k means smaller blocks. For averages of per-person quantities the estimate
      barely changes, but statistics computed on few rows (regression slopes, ratios,
      rare categories) become noisier or biased per block, and more blocks fail and
      contribute the default. GUPT's advice applies: pick blocks large enough that the
      statistic is stable on one block, then as many blocks as that allows.
    - Ranges too narrow clamp real block outputs (bias towards the bound); too wide add
      noise. Failing blocks pull the release towards the default vector.
    - The expected error covers the DP noise only, not the estimator's own error.
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from dataclasses import dataclass
from fractions import Fraction

from sandbox.core.errors import InvalidInput, Text
from sandbox.core.manifest import Manifest
from sandbox.core.specs.query import (_check_name, _parse_epsilon, _refuse_unknown, _require_keys, _show,
    check_header, parse_purpose)

MAX_SPEC_BYTES = 64 * 1024
MAX_CODE_BYTES = 256 * 1024
MAX_OUTPUTS = 50
MIN_K, MAX_K = 2, 1000
# 'auto': blocks of at least this many privacy units on the public size estimate, and
# DEFAULT_AUTO_K when there is no public estimate at all.
MIN_UNITS_PER_BLOCK = 100
DEFAULT_AUTO_K = 100
MIN_TIMEOUT, MAX_TIMEOUT, DEFAULT_TIMEOUT = 1, 600, 60
# Bounds far beyond any real statistic; keeps (upper - lower) / k finite and meaningful.
MAX_ABS_BOUND = 1e15
AGGREGATES = ("mean", "median")
MEDIAN_CANDIDATES = 1001
TOP_KEYS = ("mode", "dataset", "purpose", "program", "entrypoint", "outputs", "default", "aggregate",
            "blocks", "epsilon", "block_timeout_seconds")
REQUIRED_KEYS = ("mode", "dataset", "purpose", "outputs", "epsilon")
OUTPUT_KEYS = ("name", "lower", "upper", "aggregate")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# A client-side hint naming the code file next to the spec (jobs/*.json); never opened here.
_PROGRAM_FILE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.py$")


@dataclass(frozen=True)
class OutputSpec:
    name: str
    lower: float
    upper: float
    aggregate: str

    def to_dict(self) -> dict:
        return {"name": self.name, "lower": self.lower, "upper": self.upper, "aggregate": self.aggregate}


@dataclass(frozen=True)
class ProgramSpec:
    """A validated program job. `k` is resolved (never "auto") and `default` filled,
    so to_dict() re-parses to the same spec whatever the manifest says later."""
    dataset: str
    purpose: str
    entrypoint: str
    outputs: tuple[OutputSpec, ...]
    default: tuple[float, ...]
    k: int
    epsilon: float
    block_timeout_seconds: int
    code: str
    program_file: str | None = None

    @property
    def n_outputs(self) -> int:
        return len(self.outputs)

    @property
    def total_epsilon(self) -> float:
        return self.epsilon

    @property
    def code_sha256(self) -> str:
        return hashlib.sha256(self.code.encode("utf-8")).hexdigest()

    @property
    def epsilon_per_output(self) -> float:
        return split_epsilon(self.epsilon, self.n_outputs)

    def to_dict(self) -> dict:
        d = {"mode": "program", "dataset": self.dataset, "purpose": self.purpose, "entrypoint": self.entrypoint,
             "outputs": [o.to_dict() for o in self.outputs], "default": list(self.default),
             "blocks": self.k, "epsilon": self.epsilon, "block_timeout_seconds": self.block_timeout_seconds,
             "code_sha256": self.code_sha256}
        if self.program_file is not None:
            d["program"] = self.program_file
        return d

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)

    @property
    def content_hash(self) -> str:
        """Covers the contract and, through code_sha256, the code."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


# ------------------------------------------------------------------ validation

def parse_program_spec(data: object, manifest: Manifest, *, code: str, auto_k: int | None = None) -> ProgramSpec:
    """Validate an operator's program contract and code against the public manifest.

    `auto_k` is a data owner's policy value for blocks: "auto" (None: derive it from the
    manifest). Refusals are InvalidInput naming the field."""
    # code_sha256 is what to_dict() adds; it is recomputed from the code, never trusted.
    data = _without_code_sha(data)
    check_header(data, manifest, mode="program", allowed=TOP_KEYS, required=REQUIRED_KEYS,
                 who=Text("a program spec"), max_bytes=MAX_SPEC_BYTES)
    purpose = parse_purpose(data["purpose"])
    program_file = data.get("program")
    if program_file is not None and (not isinstance(program_file, str) or not _PROGRAM_FILE_RE.match(program_file)):
        raise InvalidInput(Text("program: the code file's name, e.g. \"my_analysis.py\" (letters, digits, _ . -)"),
                           "program")
    entrypoint = parse_entrypoint(data.get("entrypoint", "analyse"))
    default_agg = data.get("aggregate", "mean")
    if default_agg not in AGGREGATES:
        raise InvalidInput(Text("{field}: use one of {allowed} (got {value})", field="aggregate",
                                allowed=", ".join(AGGREGATES), value=_show(default_agg)), "aggregate")
    outputs = _parse_outputs(data["outputs"], default_agg)
    default = _parse_default(data.get("default"), outputs)
    epsilon = _parse_epsilon(data["epsilon"], "epsilon")
    k = _parse_blocks(data.get("blocks", "auto"), manifest, auto_k)
    timeout = data.get("block_timeout_seconds", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:
        raise InvalidInput(Text("block_timeout_seconds: a whole number of seconds from {min} to {max} (got {value})",
                                min=MIN_TIMEOUT, max=MAX_TIMEOUT, value=_show(timeout)), "block_timeout_seconds")
    check_code(code, entrypoint)
    return ProgramSpec(dataset=manifest.name, purpose=purpose, entrypoint=entrypoint, outputs=outputs,
                       default=default, k=k, epsilon=epsilon, block_timeout_seconds=timeout, code=code,
                       program_file=program_file)


def _without_code_sha(data: object) -> object:
    if isinstance(data, dict) and "code_sha256" in data:
        return {k: v for k, v in data.items() if k != "code_sha256"}
    return data


def _number(value: object, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(Text("{field}: {what} must be a number (got {value})", field=where, what=what,
                                value=_show(value)), where)
    try:
        f = float(value)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f) or abs(f) > MAX_ABS_BOUND:
        raise InvalidInput(Text("{field}: {what} must be a finite number within ±{max} (got {value})", field=where,
                                what=what, max=f"{MAX_ABS_BOUND:g}", value=_show(value)), where)
    return f + 0.0  # -0.0 -> 0.0, so equal specs hash alike


def _parse_outputs(raw: object, default_agg: str) -> tuple[OutputSpec, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_OUTPUTS:
        raise InvalidInput(Text("outputs: a list of 1 to {max} outputs, each {{name, lower, upper}}", max=MAX_OUTPUTS),
                           "outputs")
    out, names = [], set()
    for i, item in enumerate(raw):
        where = f"outputs[{i}]"
        if not isinstance(item, dict):
            raise InvalidInput(Text("{field}: each output is a mapping {{name, lower, upper}}", field=where), where)
        _refuse_unknown(item, OUTPUT_KEYS, where, Text("an output"))
        _require_keys(item, ("name", "lower", "upper"), where, Text("every output"))
        name = _check_name(item["name"], where)
        if name in names:
            raise InvalidInput(Text("{field}: '{name}' is used by an earlier output; names must be unique",
                                    field=f"{where}.name", name=name), f"{where}.name")
        names.add(name)
        lower = _number(item["lower"], f"{where}.lower", "lower")
        upper = _number(item["upper"], f"{where}.upper", "upper")
        if not lower < upper:
            raise InvalidInput(Text("{field}: must be greater than lower ({lower})", field=f"{where}.upper",
                                    lower=f"{lower:g}"), f"{where}.upper")
        agg = item.get("aggregate", default_agg)
        if agg not in AGGREGATES:
            raise InvalidInput(Text("{field}: use one of {allowed} (got {value})", field=f"{where}.aggregate",
                                    allowed=", ".join(AGGREGATES), value=_show(agg)), f"{where}.aggregate")
        out.append(OutputSpec(name=name, lower=lower, upper=upper, aggregate=agg))
    return tuple(out)


def _parse_default(raw: object, outputs: tuple[OutputSpec, ...]) -> tuple[float, ...]:
    if raw is None:
        # Midpoints: the least informative in-range value when the operator names none.
        return tuple(o.lower + (o.upper - o.lower) / 2 for o in outputs)
    if not isinstance(raw, list) or len(raw) != len(outputs):
        raise InvalidInput(Text("default: a list of {n} numbers, one per output, each within its range",
                                n=len(outputs)), "default")
    vals = []
    for i, (v, o) in enumerate(zip(raw, outputs)):
        f = _number(v, f"default[{i}]", Text("a default"))
        if not o.lower <= f <= o.upper:
            raise InvalidInput(Text("{field}: {value} is outside the range of '{name}' [{lo}, {hi}]",
                                    field=f"default[{i}]", value=f"{f:g}", name=o.name, lo=f"{o.lower:g}",
                                    hi=f"{o.upper:g}"), f"default[{i}]")
        vals.append(f)
    return tuple(vals)


def _parse_blocks(raw: object, manifest: Manifest, auto_k: int | None) -> int:
    if raw == "auto":
        return choose_k(public_unit_estimate(manifest), policy_k=auto_k)
    if isinstance(raw, bool) or not isinstance(raw, int) or not MIN_K <= raw <= MAX_K:
        raise InvalidInput(Text("blocks: a whole number from {min} to {max}, or \"auto\" (got {value})", min=MIN_K,
                                max=MAX_K, value=_show(raw)), "blocks")
    return raw


def parse_entrypoint(entrypoint: object) -> str:
    """The function of the operator's code that the box calls (program and reviewed modes)."""
    if not isinstance(entrypoint, str) or not _NAME_RE.match(entrypoint) or entrypoint.startswith("__"):
        raise InvalidInput(Text("entrypoint: the name of a function in your code, e.g. \"analyse\" (got {value})",
                                value=_show(entrypoint)), "entrypoint")
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


# ------------------------------------------------------------------ choosing k

def public_unit_estimate(manifest: Manifest) -> int | None:
    """A public lower bound on the number of privacy units: the manifest's published row
    count over the rows a unit may own. Never the real count (see choose_k)."""
    rows = manifest.default_rows
    if isinstance(rows, bool) or not isinstance(rows, int) or rows <= 0:
        return None
    return rows // manifest.max_rows_per_unit


def choose_k(n_units_public_estimate: int | None, *, policy_k: int | None = None,
             min_units_per_block: int = MIN_UNITS_PER_BLOCK) -> int:
    """k for blocks: "auto", from public information only.

    The real number of units must not be used: it changes when one person is added or
    removed, and a k that changes would reshuffle every block, voiding the sensitivity
    bound. A data owner's policy value wins; else blocks of at least min_units_per_block
    units on the public estimate, within [MIN_K, MAX_K]."""
    if policy_k is not None:
        if isinstance(policy_k, bool) or not isinstance(policy_k, int) or not MIN_K <= policy_k <= MAX_K:
            raise ValueError(f"policy k must be an integer from {MIN_K} to {MAX_K}")
        return policy_k
    if n_units_public_estimate is None:
        return DEFAULT_AUTO_K
    return max(MIN_K, min(MAX_K, int(n_units_public_estimate) // min_units_per_block))


# ------------------------------------------------------------------ accounting

def split_epsilon(epsilon: float, parts: int) -> float:
    """epsilon / parts, rounded down until `parts` copies add up to at most epsilon
    exactly (basic composition must never overspend by an ulp)."""
    e = epsilon / parts
    while Fraction(e) * parts > Fraction(epsilon):
        e = math.nextafter(e, 0.0)
    return e


def scale_at_least(numerator: float, epsilon: float) -> float:
    # numerator / epsilon, nudged up until numerator / scale <= epsilon exactly.
    scale = numerator / epsilon
    while Fraction(numerator) / Fraction(scale) > Fraction(epsilon):
        scale = math.nextafter(scale, math.inf)
    return scale


def mean_sensitivity(lower: float, upper: float, k: int) -> float:
    """Of the mean of k clamped block values when one block is replaced."""
    return (upper - lower) / k


def mean_noise_scale(lower: float, upper: float, k: int, epsilon: float) -> float:
    return scale_at_least(mean_sensitivity(lower, upper, k), epsilon)


def median_noise_scale(epsilon: float) -> float:
    """OpenDP's quantile on a vector of known size costs 2 / scale per replaced value."""
    return scale_at_least(2.0, epsilon)


def median_rank_error_95(scale: float, candidates: int = MEDIAN_CANDIDATES) -> float:
    return scale * (math.log(candidates) + math.log(20)) / 2


def median_candidates(lower: float, upper: float, n: int = MEDIAN_CANDIDATES,
                      include: tuple[float, ...] = ()) -> tuple[float, ...]:
    """Public, evenly spaced grid from lower to upper inclusive, plus `include` (the
    output's default): when many blocks return the default, it must be a candidate, or
    the scores of the grid points around it tie and the selection turns uniform."""
    step = (upper - lower) / (n - 1)
    grid = {lower + i * step for i in range(n - 1)} | {upper}
    grid |= {float(v) for v in include if lower <= v <= upper}
    return tuple(sorted(grid))


def expected_error(spec: ProgramSpec) -> dict:
    """The dry-run view: per output, mechanism, noise scale and expected error, from
    the contract alone. Shown before submission; nothing here depends on data."""
    eps_j = spec.epsilon_per_output
    outputs = []
    for o in spec.outputs:
        if o.aggregate == "mean":
            b = mean_noise_scale(o.lower, o.upper, spec.k, eps_j)
            outputs.append({"name": o.name, "aggregate": "mean", "mechanism": "laplace", "epsilon": eps_j,
                            "range": [o.lower, o.upper], "sensitivity": mean_sensitivity(o.lower, o.upper, spec.k),
                            "noise_scale": b, "expected_abs_error": b, "error_95": b * math.log(20)})
        else:
            b = median_noise_scale(eps_j)
            r = median_rank_error_95(b)
            outputs.append({"name": o.name, "aggregate": "median", "mechanism": "exponential", "epsilon": eps_j,
                            "range": [o.lower, o.upper], "sensitivity": None, "noise_scale": b,
                            "expected_abs_error": None, "rank_error_95": r,
                            "quantile_band_95": [max(0.0, 0.5 - r / spec.k), min(1.0, 0.5 + r / spec.k)]})
    return {"k": spec.k, "epsilon": spec.epsilon, "epsilon_per_output": eps_j, "composition": "basic",
            "outputs": outputs,
            "notes": ["Noise only: the estimator's own error on blocks of about 1/k of the data comes on top.",
                      "Mean noise falls as (upper - lower) / (k * epsilon per output); epsilon is split evenly "
                      "across outputs.",
                      "Blocks that fail, time out or return a wrong shape contribute the default vector, pulling "
                      "the release towards it.",
                      "A median is within rank_error_95 ranks (of k block values) of the blocks' median with 95% "
                      "probability."]}

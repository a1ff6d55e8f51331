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

The arithmetic of the release (k, the epsilon split, noise scales, expected error) is in
sandbox.core.specs.program_accounting; the checks of the code itself in sandbox.core.specs.source.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from sandbox.core.errors import InvalidInput, Text
from sandbox.core.manifest import Manifest
from sandbox.core.specs.common import (CanonicalSpec, check_header, check_name, parse_epsilon, parse_purpose, refuse_unknown,
    require_keys, show)
from sandbox.core.specs.program_accounting import MAX_K, MIN_K, choose_k, public_unit_estimate, split_epsilon
from sandbox.core.specs.source import check_code, parse_entrypoint

MAX_SPEC_BYTES = 64 * 1024
MAX_OUTPUTS = 50
MIN_TIMEOUT, MAX_TIMEOUT, DEFAULT_TIMEOUT = 1, 600, 60
# Bounds far beyond any real statistic; keeps (upper - lower) / k finite and meaningful.
MAX_ABS_BOUND = 1e15
AGGREGATES = ("mean", "median")
TOP_KEYS = ("mode", "dataset", "purpose", "program", "entrypoint", "outputs", "default", "aggregate",
            "blocks", "epsilon", "block_timeout_seconds")
REQUIRED_KEYS = ("mode", "dataset", "purpose", "outputs", "epsilon")
OUTPUT_KEYS = ("name", "lower", "upper", "aggregate")
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
class ProgramSpec(CanonicalSpec):
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
                                allowed=", ".join(AGGREGATES), value=show(default_agg)), "aggregate")
    outputs = _parse_outputs(data["outputs"], default_agg)
    default = _parse_default(data.get("default"), outputs)
    epsilon = parse_epsilon(data["epsilon"], "epsilon")
    k = _parse_blocks(data.get("blocks", "auto"), manifest, auto_k)
    timeout = data.get("block_timeout_seconds", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:
        raise InvalidInput(Text("block_timeout_seconds: a whole number of seconds from {min} to {max} (got {value})",
                                min=MIN_TIMEOUT, max=MAX_TIMEOUT, value=show(timeout)), "block_timeout_seconds")
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
                                value=show(value)), where)
    try:
        f = float(value)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f) or abs(f) > MAX_ABS_BOUND:
        raise InvalidInput(Text("{field}: {what} must be a finite number within ±{max} (got {value})", field=where,
                                what=what, max=f"{MAX_ABS_BOUND:g}", value=show(value)), where)
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
        refuse_unknown(item, OUTPUT_KEYS, where, Text("an output"))
        require_keys(item, ("name", "lower", "upper"), where, Text("every output"))
        name = check_name(item["name"], where)
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
                                    allowed=", ".join(AGGREGATES), value=show(agg)), f"{where}.aggregate")
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
                                max=MAX_K, value=show(raw)), "blocks")
    return raw



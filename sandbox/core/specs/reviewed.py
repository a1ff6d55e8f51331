"""Reviewed mode (non-DP): exact tables and models that go through the disclosure checks of
the release gate and then to human review.

A job declares its outputs in one or both of two ways:
- `tables` and `models`: computations (group-by, aggregates, public filters; OLS/logit/probit)
  that trusted code runs on the raw data in a box holding no operator code, together with
  the per-cell statistics the disclosure rules need (sandbox.runner.tables).
- `program` + `outputs`: the operator's own code writes declared files (csv / parquet tables,
  png / svg figures, text). Nothing in them is trusted, so they always need a person's
  judgement; a table's `table_kind` only chooses which rules can still be tried on it.
`timeout_seconds` bounds the whole run: the trusted box first, then the program in the time left.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from sandbox.core.errors import InvalidInput, Text
from sandbox.core.manifest import Manifest
from sandbox.core.specs.common import CanonicalSpec, parse_purpose
from sandbox.core.specs.computations import ModelSpec, TableSpec, parse_computations
from sandbox.core.specs.source import parse_entrypoint, parse_source

FILE_TYPES = ("csv", "parquet", "png", "svg", "text")
TABLE_TYPES = ("csv", "parquet")
TABLE_KINDS = ("frequency", "magnitude", "model", "other")
SUFFIXES = {"csv": (".csv",), "parquet": (".parquet",), "png": (".png",), "svg": (".svg",), "text": (".txt", ".md")}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_OUTPUTS = 16
# The one file the trusted tables box writes (sandbox.runner.tables); named here, in code both
# the box and the agent import, so the agent need not import the runner.
TRUSTED_RESULT_FILE = "trusted.json"
KEYS = {"mode", "dataset", "purpose", "program", "entrypoint", "outputs", "tables", "models", "timeout_seconds"}

@dataclass(frozen=True)
class DeclaredOutput:
    """A free-form file the operator's program writes. `model_df` is kept only to name it in
    the finding: degrees of freedom the operator's code reports are never trusted."""
    name: str
    type: str
    table_kind: str | None = None
    model_df: int | None = None

    def to_dict(self) -> dict:
        d = {"name": self.name, "type": self.type}
        if self.table_kind:
            d["table_kind"] = self.table_kind
        if self.model_df is not None:
            d["model_df"] = self.model_df
        return d


@dataclass(frozen=True)
class ReviewedSpec(CanonicalSpec):
    dataset: str
    purpose: str
    entrypoint: str
    outputs: tuple[DeclaredOutput, ...]
    timeout_seconds: int
    code: str
    program_file: str | None = None
    tables: tuple[TableSpec, ...] = ()
    models: tuple[ModelSpec, ...] = ()

    @property
    def code_sha256(self) -> str:
        return hashlib.sha256(self.code.encode()).hexdigest()

    @property
    def has_program(self) -> bool:
        return bool(self.outputs)

    @property
    def has_computations(self) -> bool:
        return bool(self.tables or self.models)

    def declared(self, name: str) -> DeclaredOutput | None:
        """A free-form file of the program (trusted tables and models are not 'declared files')."""
        return next((o for o in self.outputs if o.name == name), None)

    def output_plan(self) -> list[dict]:
        """Every file the job will produce, trusted tables and models first (for previews)."""
        return ([{"name": t.file_name, "type": "csv", "table_kind": t.kind, "computed_by": "trusted"}
                 for t in self.tables]
                + [{"name": m.file_name, "type": "json", "table_kind": "model", "computed_by": "trusted"}
                   for m in self.models]
                + [{**o.to_dict(), "computed_by": "program"} for o in self.outputs])

    def computations(self) -> dict:
        """What the trusted box needs: the tables and models, re-validated there."""
        d = {"tables": [t.to_dict() for t in self.tables], "models": [m.to_dict() for m in self.models]}
        return {k: v for k, v in d.items() if v}

    def to_dict(self) -> dict:
        d = {"mode": "reviewed", "dataset": self.dataset, "purpose": self.purpose,
             "timeout_seconds": self.timeout_seconds, "code_sha256": self.code_sha256}
        if self.outputs:
            d["entrypoint"] = self.entrypoint
            d["outputs"] = [o.to_dict() for o in self.outputs]
        if self.tables:
            d["tables"] = [t.to_dict() for t in self.tables]
        if self.models:
            d["models"] = [m.to_dict() for m in self.models]
        if self.program_file:
            d["program"] = self.program_file
        return d


def check_code(code: object, entrypoint: str) -> None:
    """Size, syntax and a top-level `def <entrypoint>(df, out)`; parsed, never run here."""
    args = parse_source(code, entrypoint, "df, out").args
    if len(args.args) < 2 or len(args.args) - len(args.defaults) > 2:
        raise InvalidInput(Text("code: define a top-level function {entrypoint}(df, out) that writes files into out",
                                entrypoint=entrypoint), "code")


def parse_reviewed_spec(data: object, manifest: Manifest, *, code: str | None) -> ReviewedSpec:
    if not isinstance(data, dict):
        raise InvalidInput(Text("the job spec must be an object"))
    unknown = sorted(set(data) - KEYS - {"code_sha256"})
    if unknown:
        raise InvalidInput(Text("{field}: unknown key; allowed: {keys}", field=unknown[0],
                                keys=", ".join(sorted(KEYS))), unknown[0])
    if data.get("mode") != "reviewed":
        raise InvalidInput(Text("mode: must be 'reviewed'"), "mode")
    if data.get("dataset") != manifest.name:
        raise InvalidInput(Text("dataset: must be '{name}'", name=manifest.name), "dataset")
    purpose = parse_purpose(data.get("purpose"))
    timeout = data.get("timeout_seconds", 300)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 3600:
        raise InvalidInput(Text("timeout_seconds: an integer from 1 to 3600"), "timeout_seconds")
    tables, models = parse_computations(data, manifest)
    raw_outputs = data.get("outputs")
    program_file = data.get("program")
    if program_file is not None and not isinstance(program_file, str):
        raise InvalidInput(Text("program: the file name of the code"), "program")
    if raw_outputs is None and not (tables or models):
        raise InvalidInput(Text("tables: declare the tables and models trusted code computes (tables, models), "
                                "or a program and the files it writes (program, outputs)"), "tables")
    entrypoint, outputs, code = "analyse", (), code or ""
    if raw_outputs is not None:
        entrypoint = parse_entrypoint(data.get("entrypoint", "analyse"))
        check_code(code, entrypoint)
        outputs = _parse_outputs(raw_outputs)
    elif code.strip():
        raise InvalidInput(Text("outputs: a program must declare the files it writes (outputs); a job of tables "
                                "and models alone sends no code"), "outputs")
    files = [o.name for o in outputs] + [t.file_name for t in tables] + [m.file_name for m in models]
    clash = next((f for f in files if files.count(f) > 1), None)
    if clash:
        raise InvalidInput(Text("{field}: '{name}' is produced twice (a table becomes <name>.csv, a model "
                                "<name>.json); rename one", field="tables", name=clash), "tables")
    return ReviewedSpec(manifest.name, purpose, entrypoint, outputs, timeout, code, program_file, tables, models)


def _parse_outputs(raw_outputs: object) -> tuple[DeclaredOutput, ...]:
    if not isinstance(raw_outputs, list) or not 1 <= len(raw_outputs) <= MAX_OUTPUTS:
        raise InvalidInput(Text("outputs: declare 1 to {max} output files", max=MAX_OUTPUTS), "outputs")
    outputs, seen = [], set()
    for i, o in enumerate(raw_outputs):
        where = f"outputs[{i}]"
        if not isinstance(o, dict) or set(o) - {"name", "type", "table_kind", "model_df"}:
            raise InvalidInput(Text("{field}: an object with name, type and (for tables) table_kind", field=where),
                               where)
        name, typ = o.get("name"), o.get("type")
        if not isinstance(name, str) or not NAME_RE.match(name) or name in seen:
            raise InvalidInput(Text("{field}: a unique plain file name (letters, digits, _.-; max 64)",
                                    field=f"{where}.name"), where)
        if typ not in FILE_TYPES:
            raise InvalidInput(Text("{field}: one of {allowed}", field=f"{where}.type", allowed=", ".join(FILE_TYPES)),
                               where)
        if not name.lower().endswith(SUFFIXES[typ]):
            suffixes = SUFFIXES[typ]
            if len(suffixes) == 1:
                message = Text("{field}: a {type} file must end with {suffix}", field=f"{where}.name", type=typ,
                               suffix=suffixes[0])
            else:
                message = Text("{field}: a {type} file must end with {first} or {last}", field=f"{where}.name",
                               type=typ, first=" or ".join(suffixes[:-1]), last=suffixes[-1])
            raise InvalidInput(message, where)
        kind = o.get("table_kind")
        if typ in TABLE_TYPES:
            if kind not in TABLE_KINDS:
                raise InvalidInput(Text("{field}: one of {allowed} (decides the checks)", field=f"{where}.table_kind",
                                        allowed=", ".join(TABLE_KINDS)), where)
        elif kind is not None:
            raise InvalidInput(Text("{field}: only tables have one", field=f"{where}.table_kind"), where)
        df = o.get("model_df")
        if df is not None and (isinstance(df, bool) or not isinstance(df, int) or df < 0 or kind != "model"):
            raise InvalidInput(Text("{field}: residual degrees of freedom of a model table (integer >= 0)",
                                    field=f"{where}.model_df"), where)
        seen.add(name)
        outputs.append(DeclaredOutput(name, typ, kind, df))
    return tuple(outputs)

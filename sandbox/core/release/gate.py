"""Release gate, first version: what the runner wrote is checked by trusted code
before anything can reach review or release.

Query mode outputs are DP by construction; the gate still refuses any output
whose shape differs from what the spec and the public manifest imply (so a
bug or tampering cannot smuggle extra cells, rows or text out).
"""
from __future__ import annotations

import csv
import io
import json
import math

from sandbox.core.errors import Text
from sandbox.core.manifest import Manifest

# One Check type for every rule: the gate's own checks and the disclosure checks alike.
from sandbox.core.release.checks import FAIL, NEEDS_REVIEW, PASS, Check  # noqa: E402,F401


def expected_cells(query: dict, manifest: Manifest) -> int:
    n = 1
    for g in query.get("group_by") or []:
        n *= len(manifest.column(g).categories)
    if query["statistic"] == "histogram":
        n *= len(query["bins"]) - 1
    return n


# A mechanism as the checks name it: its code (English and signed text stay the code), translated
# on the review page like any Text.
MECHANISM_NAMES = {"discrete_laplace": Text("discrete_laplace"), "laplace": Text("laplace"),
                   "exponential": Text("exponential"), "laplace+discrete_laplace": Text("laplace+discrete_laplace")}


def _mechanism(code) -> str:
    return MECHANISM_NAMES.get(code, str(code)) if isinstance(code, str) else str(code)


VALUE_COLUMNS = {"count": "count", "histogram": "count", "sum": "sum", "mean": "mean", "quantile": "quantile"}


def expected_columns(query: dict) -> list[str]:
    """The released table's columns: group keys, bin edges for a histogram, the value and its
    95% interval (sandbox.core.dp: count_cell, sum_cell, mean_cell, quantile_cell)."""
    value = VALUE_COLUMNS[query["statistic"]]
    cols = list(query.get("group_by") or [])
    if query["statistic"] == "histogram":
        cols += ["bin_lower", "bin_upper"]
    return cols + [value, f"{value}_lower", f"{value}_upper"]


def _cell_ok(values: list, statistic: str) -> bool:
    """Finite numbers; an interval around its value; counts non-negative integers."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return False
    if statistic == "histogram":
        values = values[2:]
    value, lower, upper = values
    if statistic in ("count", "histogram") and not all(isinstance(v, int) and v >= 0 for v in values):
        return False
    return lower <= value <= upper


def check_query_result(raw: bytes, spec: dict, manifest: Manifest) -> tuple[list[Check], dict | None]:
    """Validate result.json against the spec. Explanations mention only public
    facts (names, expected shapes), never values."""
    try:
        result = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return [Check("result_format", FAIL, Text("result.json is not valid JSON"))], None
    if not isinstance(result, dict) or not isinstance(result.get("tables"), list):
        return [Check("result_format", FAIL, Text("result.json must hold a list of tables"))], None
    checks: list[Check] = [Check("result_format", PASS, Text("result.json is a list of tables"))]
    by_name = {t.get("name"): t for t in result["tables"] if isinstance(t, dict)}
    wanted = [q["name"] for q in spec["queries"]]
    if sorted(by_name) != sorted(wanted) or len(result["tables"]) != len(wanted):
        checks.append(Check("declared_tables", FAIL,
                            Text("expected exactly the tables {tables}, one each", tables=str(wanted))))
        return checks, None
    checks.append(Check("declared_tables", PASS, Text("exactly the declared tables: {tables}",
                                                      tables=", ".join(wanted))))
    for q in spec["queries"]:
        t = by_name[q["name"]]
        rows = t.get("rows")
        cols = t.get("columns")
        n = expected_cells(q, manifest)
        wanted_cols = expected_columns(q)
        width = len(wanted_cols)
        ok = isinstance(rows, list) and cols == wanted_cols and len(rows) == n \
            and all(isinstance(r, list) and len(r) == width for r in rows)
        if ok:
            ok = all(_cell_ok(r[len(q.get("group_by") or []):], q["statistic"]) for r in rows)
        if ok:
            allowed_keys = [set(manifest.column(g).categories) for g in (q.get("group_by") or [])]
            ok = all(r[i] in allowed_keys[i] for r in rows for i in range(len(allowed_keys)))
        if not ok:
            checks.append(Check(f"shape:{q['name']}", FAIL,
                                Text("table {table} must have {n} rows of the columns {columns} with public "
                                     "keys, finite numbers, each value inside its interval", table=q["name"], n=n,
                                     columns=str(wanted_cols))))
            return checks, None
        # The noise facts are shown as the runner wrote them (str: a number is not reformatted).
        checks.append(Check(f"shape:{q['name']}", PASS,
                            Text("{n} cells, all public keys, finite values; noise: {mechanism} "
                                 "scale {scale} (epsilon {epsilon})", n=n, mechanism=_mechanism(t.get("mechanism")),
                                 scale=str(t.get("noise_scale")), epsilon=str(t.get("epsilon")))))
    return checks, result


GENERIC_RULES = ("table_size", "forbidden_columns", "direct_identifiers", "row_level")


def disclosure_checks_for_query(result: dict, spec: dict, *, forbidden_columns, min_group: int) -> list[Check]:
    """Statistical-disclosure checks on DP query tables.

    Only the rules that still matter under DP run (size, forbidden columns, identifiers,
    row-level shape): minimum cell counts and dominance protect exact aggregates, whereas a
    DP table's cells are noised so that no person's presence is revealed, whatever the count.
    """
    import pandas as pd

    from sandbox.core.release.tables import check_table
    out: list[Check] = []
    for q, t in zip(spec["queries"], sorted(result["tables"], key=lambda t: [x["name"] for x in spec["queries"]].index(t["name"]))):
        df = pd.DataFrame(t["rows"], columns=t["columns"])
        keys = list(q.get("group_by") or []) + (["bin_lower", "bin_upper"] if q["statistic"] == "histogram" else [])
        for c in check_table(df, kind="other", forbidden_columns=frozenset(forbidden_columns),
                             policy_min_group=min_group, key_columns=keys, max_rows=10_000):
            if c.name in GENERIC_RULES:
                out.append(Check(f"{c.name}:{q['name']}", c.status, c.explanation))
    return out


def table_csv(table: dict) -> str:
    """A released table as CSV, starting with a UTF-8 byte order mark: Excel on Chinese Windows
    reads a CSV without one in the local code page and shows the district names as mojibake.
    The mark is part of the signed bytes, so the certificate's sha256 covers it."""
    buf = io.StringIO()
    buf.write("\ufeff")
    w = csv.writer(buf)
    w.writerow(table["columns"])
    for r in table["rows"]:
        w.writerow(r)
    return buf.getvalue()


def csv_summary(text: str) -> dict:
    """Per-column summary for the reviewer: rows, and min/max/sum/decimals of numeric columns."""
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    if not rows:
        return {"rows": 0, "columns": {}}
    header, body = rows[0], rows[1:]
    cols = {}
    for i, name in enumerate(header):
        values = [r[i] for r in body if i < len(r)]
        nums = []
        for v in values:
            try:
                nums.append(float(v))
            except ValueError:
                nums = None
                break
        if nums:
            decimals = max((len(v.split(".")[1]) if "." in v else 0) for v in values)
            cols[name] = {"kind": "numeric", "min": min(nums), "max": max(nums), "sum": sum(nums),
                          "max_decimals": decimals}
        else:
            cols[name] = {"kind": "text", "distinct": len(set(values))}
    return {"rows": len(body), "columns": cols}


def spec_diff(previous: dict | None, current: dict, previous_id: str | None, current_id: str) -> str:
    """Unified diff of the operator's previous job spec on this dataset against this one."""
    import difflib
    if previous is None:
        return Text("(first job of this operator on this dataset)")
    a = json.dumps(previous, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    b = json.dumps(current, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    return "\n".join(difflib.unified_diff(a, b, f"job {previous_id}", f"job {current_id}", lineterm="")) \
        or Text("(identical to the previous job)")


def text_diff(previous: str | None, current: str, previous_id: str | None, current_id: str) -> str:
    """Unified diff of the operator's previous program on this dataset against this one."""
    import difflib
    if previous is None:
        return Text("(first program of this operator on this dataset)")
    return "\n".join(difflib.unified_diff(previous.splitlines(), current.splitlines(), f"job {previous_id}",
                                          f"job {current_id}", lineterm="")) \
        or Text("(identical to the previous program)")


def check_program_result(raw: bytes, spec) -> list[Check]:
    """The aggregate is computed by trusted code; the gate still checks it has exactly the
    contract's outputs, in order, with finite values, before anyone can review it."""
    try:
        result = json.loads(raw)
        (table,) = result["tables"]
        names = [r[0] for r in table["rows"]]
        values = [r[1] for r in table["rows"]]
    except (ValueError, KeyError, TypeError):
        return [Check("result_format", FAIL, Text("the program result must be one table of (output, value) rows"))]
    wanted = [o.name for o in spec.outputs]
    if names != wanted:
        return [Check("declared_outputs", FAIL, Text("expected exactly the outputs {outputs}, in that order",
                                                     outputs=str(wanted)))]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return [Check("finite_values", FAIL, Text("every released value must be a finite number"))]
    return [Check("declared_outputs", PASS, Text("exactly the contract's outputs: {outputs}",
                                                 outputs=", ".join(wanted))),
            Check("dp_aggregate", PASS, Text("sample-and-aggregate over k={k} blocks; noise from OpenDP "
                                             "({mechanism}), epsilon {epsilon}", k=spec.k,
                                             mechanism=_mechanism(table.get("mechanism")), epsilon=str(spec.epsilon)))]


def _read_table(declared_type: str, data: bytes):
    import pandas as pd
    if declared_type == "csv":
        return pd.read_csv(io.BytesIO(data))
    return pd.read_parquet(io.BytesIO(data))


def _key_columns(df) -> list[str]:
    import pandas as pd
    return [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]


def frequency_aggregate(name: str, declared_type: str, content: str, encoding: str, version: str):
    """A released frequency table as the differencing check's ReleasedAggregate: the key
    columns are the non-numeric ones, the count is the first numeric column."""
    import base64

    from sandbox.core.release.differencing import ReleasedAggregate
    data = base64.b64decode(content) if encoding == "base64" else content.encode()
    try:
        df = _read_table(declared_type, data)
    except Exception:  # noqa: BLE001 - an unreadable table was already refused by its checks
        return None
    keys = _key_columns(df)
    values = [c for c in df.columns if c not in keys]
    if not values:
        return None
    cells = {tuple(str(v) for v in row[:-1]): float(row[-1])
             for row in df[keys + [values[0]]].itertuples(index=False, name=None)}
    return ReleasedAggregate(version, tuple(keys), cells, label=name)


def check_declared_file(declared, data: bytes | None, max_bytes: int, policy, previous: list, version: str) -> list[Check]:
    """Every check a declared reviewed-mode file gets: type and size; for tables the
    statistical-disclosure rules of its kind (ACRO's rules, sandbox.core.release.tables) and,
    for frequency tables, differencing against every earlier release of this dataset version."""
    from sandbox.core.release.differencing import check_differencing
    from sandbox.core.release.files import check_file
    from sandbox.core.release.tables import check_table
    name = declared.name
    if data is None:
        return [Check(f"present:{name}", FAIL, Text("{name} was declared but not written by the program", name=name))]
    kind = {"csv": "csv", "parquet": "parquet", "png": "png", "svg": "svg", "text": "text"}[declared.type]
    file_check = check_file(name, data, kind, max_bytes)
    out = [Check(f"file:{name}", file_check.status, file_check.explanation)]
    if file_check.status != PASS or declared.type not in ("csv", "parquet"):
        if declared.type in ("png", "svg", "text") and file_check.status == PASS:
            out.append(Check(f"content:{name}", NEEDS_REVIEW,
                             Text("{name} is a {type}: a reviewer must look at it (no machine check reads it)",
                                  name=name, type=declared.type)))
        return out
    try:
        df = _read_table(declared.type, data)
    except Exception:  # noqa: BLE001 - what was wrong with it is for the reviewer, not the operator
        return out + [Check(f"table:{name}", FAIL, Text("{name} cannot be read as a {type} table", name=name,
                                                        type=declared.type))]
    for c in check_table(df, kind=declared.table_kind, forbidden_columns=frozenset(policy.forbidden_columns),
                         policy_min_group=policy.min_group_size,
                         declared_model_df=declared.model_df):  # never trusted: named in the finding
        out.append(Check(f"{c.name}:{name}", c.status, c.explanation))
    if declared.table_kind == "frequency":
        agg = frequency_aggregate(name, declared.type, data.decode("utf-8", "replace") if declared.type == "csv"
                                  else __import__("base64").b64encode(data).decode(),
                                  "utf-8" if declared.type == "csv" else "base64", version)
        if agg is not None:
            d = check_differencing(agg, previous, policy.min_group_size)
            out.append(Check(f"differencing:{name}", d.status, d.explanation))
    return out

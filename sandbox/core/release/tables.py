"""Statistical disclosure checks for tables about to leave the domain (pure domain code).

`check_table` runs every rule of a table's kind. The cell rules (threshold, dominance n-k
and p%, zeros, negatives, degrees of freedom) are here; direct identifiers and row-level
shape are in `microdata`, file type and content in `files`, the Check verdict in `checks`.

Decision on ACRO (PyPI `acro`, AI-SDC): we reimplement its rules here instead of importing it.
- ACRO records its checks while it *computes* a table itself (its crosstab/pivot_table/
  statsmodels wrappers); its rules are methods of `SDCChecks` over its own `SDCEvidence` and
  `TableModelDetails` objects, not functions of per-cell numbers. Our trusted tables are
  computed in a box without operator code (sandbox.runner.tables) and reach these rules as
  `CellStats` (sandbox.core.release.trusted); free-form tables arrive finished, written by
  untrusted programs.
- acro 1.0.2 pins pandas<=2.3.3 and pulls in statsmodels, matplotlib, rdflib, lxml, openpyxl
  (importing any acro module runs acro/__init__, which imports them all); we run pandas 3 /
  numpy 2, and neither the box nor the release gate should carry a plotting stack.
So the rules, their defaults and their edge cases follow ACRO 1.0.2 (`acro/sdcchecks.py`,
`acro/default.yaml`): safe_threshold 10, safe_nk_n 2, safe_nk_k 0.90, safe_pratio_p 0.10,
safe_dof_threshold 10, zeros_are_disclosive True. Each rule cites the ACRO definition it
mirrors; where we add or diverge, the comment says why. docs/disclosure-checks.md has the list.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from sandbox.core.release.cells import (cell_values, flatten, infer_key_columns, is_numeric, norm_key, norm_name,
    row_keys, unique_keys)
from sandbox.core.errors import Text
from sandbox.core.release.checks import FAIL, NEEDS_REVIEW, PASS, Check, fmt_cells, fmt_names
from sandbox.core.release.freeform import check_integer_counts
from sandbox.core.release.microdata import check_identifiers, check_row_level

TABLE_KINDS = ("frequency", "magnitude", "model", "other")

DEFAULT_THRESHOLD = 10          # ACRO safe_threshold
DEFAULT_NK = (2, 0.90)          # ACRO safe_nk_n, safe_nk_k
DEFAULT_P_PERCENT = 0.10        # ACRO safe_pratio_p
DEFAULT_MIN_DF = 10             # ACRO safe_dof_threshold
DEFAULT_MAX_ROWS = 10_000       # ours: an aggregate a person can review; larger looks like data
MAX_MODEL_ROWS = 100            # ours: a model's output has a row per parameter; more looks like records


@dataclass(frozen=True)
class CellStats:
    """What trusted code computed from raw data for one released cell.

    Contributors are privacy units (people, enterprises), not rows: a unit's rows are summed
    first, so `top1`/`top2` are the two largest per-unit contributions (signed, as ACRO's
    `nlargest`). `n_negative` counts units with a negative contribution (0 for counts); it
    is an addition to the brief's four fields because ACRO's dominance rules need it.
    """
    n_contributors: int
    total: float
    top1: float = 0.0
    top2: float = 0.0
    n_negative: int = 0

    def __post_init__(self):
        if self.n_contributors < 0 or self.n_negative < 0:
            raise ValueError("n_contributors and n_negative must be >= 0")
        if self.n_contributors < 2 and self.top2 != 0:
            raise ValueError("top2 must be 0 when there are fewer than 2 contributors")
        if self.top2 > self.top1:
            raise ValueError("top2 must not exceed top1")

    @property
    def has_negative(self) -> bool:
        return self.n_negative > 0 or self.top2 < 0 or self.top1 < 0 or self.total < 0


# --- check_table -------------------------------------------------------------------------

def check_table(table: pd.DataFrame, *, kind: str, cell_stats: Mapping[tuple, CellStats] | None = None,
                policy_min_group: int = DEFAULT_THRESHOLD, forbidden_columns: Collection[str] = frozenset(),
                nk: tuple[int, float] = DEFAULT_NK, p_percent: float = DEFAULT_P_PERCENT,
                max_rows: int = DEFAULT_MAX_ROWS, model_df: int | None = None,
                min_df: int = DEFAULT_MIN_DF, zeros_are_disclosive: bool = True,
                key_columns: Sequence[str] | None = None, declared_model_df: int | None = None) -> list[Check]:
    """Run every rule that applies to a table of this kind; one Check per rule, in this order.

    All kinds: table_size, forbidden_columns, direct_identifiers, row_level.
    frequency: cell_keys (with cell_stats), min_cell_count, zero_cells, negative_values, integer_counts.
    magnitude: cell_keys (with cell_stats), min_cell_count, dominance_nk, dominance_p,
    negative_values. model: degrees_of_freedom, model_size. other: table_kind (always needs review).

    `model_df` is residual degrees of freedom computed by trusted code; without it (a model
    table the operator's program wrote) the check needs review and names `declared_model_df`,
    what the operator declared, as not trusted.

    The table should be long form: key columns (the group-by values) then value columns.
    Key columns are the non-numeric columns (and a named index) unless `key_columns` says.
    `cell_stats` is keyed by the same key tuples. Without it, contributor-based rules cannot
    be verified and say so (needs_review), except that a frequency table's own visible
    counts below the threshold fail at once.
    """
    if kind not in TABLE_KINDS:
        raise ValueError(f"kind must be one of {TABLE_KINDS}, not {kind!r}")
    n, k = nk
    if n not in (1, 2):
        raise ValueError("CellStats carries the two largest contributions, so nk n must be 1 or 2")
    df = flatten(table)
    keys = list(key_columns) if key_columns is not None else infer_key_columns(df)
    missing = [c for c in keys if c not in df.columns]
    if missing:
        raise ValueError(f"key_columns not in the table: {missing}")
    values = [c for c in df.columns if c not in keys and is_numeric(df[c])]

    checks = [_check_size(df, max_rows), _check_forbidden(df, forbidden_columns),
              check_identifiers(df), check_row_level(df, keys, keys_trusted=key_columns is not None)]
    if kind == "frequency":
        if cell_stats is not None:
            checks.append(_check_cell_keys(df, keys, cell_stats))
        checks += [_check_threshold_frequency(df, keys, values, cell_stats, policy_min_group),
                   _check_zeros(df, keys, values, cell_stats, zeros_are_disclosive),
                   _check_negative_counts(df, keys, values), check_integer_counts(df, keys, values)]
    elif kind == "magnitude":
        if cell_stats is not None:
            checks.append(_check_cell_keys(df, keys, cell_stats))
        checks += [_check_threshold_magnitude(cell_stats, policy_min_group),
                   _check_nk(cell_stats, n, k),
                   _check_p_percent(cell_stats, p_percent),
                   _check_negative_magnitude(df, keys, values, cell_stats)]
    elif kind == "model":
        checks += [_check_dof(model_df, min_df) if model_df is not None else _untrusted_dof(declared_model_df),
                   _check_model_size(df)]
    else:
        checks.append(Check("table_kind", NEEDS_REVIEW,
                            Text("the output is not declared as a frequency, magnitude or model table, so no "
                                 "cell-level rule could be applied; judge it by hand or ask the operator to "
                                 "declare it as an aggregate with its group-by")))
    return checks


def _check_size(df: pd.DataFrame, max_rows: int) -> Check:
    if len(df) > max_rows:
        return Check("table_size", FAIL, Text("{rows} rows exceed the limit of {max_rows} for a released "
                                              "table; aggregate further (coarser groups) or split the output",
                                              rows=len(df), max_rows=max_rows))
    return Check("table_size", PASS, Text("{rows} rows, within the limit of {max_rows}", rows=len(df),
                                          max_rows=max_rows))


def _check_forbidden(df: pd.DataFrame, forbidden: Collection[str]) -> Check:
    # Case-insensitive and trimmed: "Person_ID " must not slip past a policy listing person_id.
    wanted = {norm_name(f) for f in forbidden}
    hits = [str(c) for c in df.columns if norm_name(c) in wanted]
    if hits:
        return Check("forbidden_columns", FAIL,
                     Text("column(s) {names} are forbidden by the dataset's policy; remove them from the output",
                          names=fmt_names(hits)))
    return Check("forbidden_columns", PASS, Text("no column the policy forbids"))


def _check_cell_keys(df: pd.DataFrame, keys: list[str], cell_stats: Mapping[tuple, CellStats]) -> Check:
    # Ours, not ACRO's: the threshold is checked on the groups trusted code computed, so the
    # table must not hold rows outside them (an untrusted program could append extra cells).
    widths = {len(k) for k in cell_stats}
    if widths - {len(keys)} or (not keys and widths != {0}):
        return Check("cell_keys", NEEDS_REVIEW,
                     Text("could not match the table's rows to the computed groups (key columns: "
                          "{keys}); check by hand that every row is one of the declared groups",
                          keys=fmt_names(keys) or Text("none")))
    known = {norm_key(k) for k in cell_stats}
    extra = [k for k in row_keys(df, keys) if norm_key(k) not in known]
    if extra:
        return Check("cell_keys", FAIL, Text("{n} row(s) are not groups the trusted side computed: "
                                             "{cells}; the table does not match its declared group-by, so rerun it",
                                             n=len(extra), cells=fmt_cells(extra)))
    return Check("cell_keys", PASS, Text("every row is one of the {n} computed groups", n=len(cell_stats)))


def _check_threshold_frequency(df, keys, values, cell_stats, threshold) -> Check:
    if cell_stats is not None:
        return _threshold_from_stats(cell_stats, threshold)
    # Without recomputed stats the visible counts still fail when small (the table shows it),
    # but large visible counts prove nothing: rows are not people, and the program is untrusted.
    small = [key for key, v in cell_values(df, keys, values) if 0 < v < threshold]
    if small:
        return Check("min_cell_count", FAIL,
                     Text("{n} cell(s) show counts below {threshold}: {cells}; merge "
                          "categories or suppress those cells", n=len(small), threshold=threshold,
                          cells=fmt_cells(small)))
    return Check("min_cell_count", NEEDS_REVIEW,
                 Text("visible counts are all {threshold} or more, but trusted code could not recompute the "
                      "number of contributors per cell; confirm each cell counts at least "
                      "{threshold} distinct people/units, or rerun the job as a declared aggregate",
                      threshold=threshold))


def _check_threshold_magnitude(cell_stats, threshold) -> Check:
    if cell_stats is None:
        return Check("min_cell_count", NEEDS_REVIEW, _no_stats(Text("contributor counts")))
    return _threshold_from_stats(cell_stats, threshold)


def _threshold_from_stats(cell_stats: Mapping[tuple, CellStats], threshold: int) -> Check:
    # ACRO MinimumThresholdCheck: count < safe_threshold fails (exactly the threshold passes).
    # Diverges only in leaving empty cells (0 contributors) to zero_cells, which names them apart.
    small = [key for key, s in cell_stats.items() if 0 < s.n_contributors < threshold]
    if small:
        return Check("min_cell_count", FAIL,
                     Text("{n} cell(s) have fewer than {threshold} contributors: {cells}; "
                          "merge categories or suppress those cells", n=len(small), threshold=threshold,
                          cells=fmt_cells(small)))
    return Check("min_cell_count", PASS, Text("all {n} cells have {threshold} or more contributors (or none)",
                                              n=len(cell_stats), threshold=threshold))


def _check_zeros(df, keys, values, cell_stats, zeros_are_disclosive: bool) -> Check:
    # ACRO PresenceOfZeroCheck: a zero count is class disclosure (everyone in the row shares
    # the other attribute); it fails while zeros_are_disclosive (default True).
    zeros = [key for key, v in cell_values(df, keys, values) if v == 0]
    if cell_stats is not None:
        zeros += [key for key, s in cell_stats.items() if s.n_contributors == 0]
    zeros = unique_keys(zeros)
    if not zeros:
        return Check("zero_cells", PASS, Text("no empty (zero) cells"))
    if not zeros_are_disclosive:
        return Check("zero_cells", PASS, Text("{n} zero cell(s); the policy does not treat zeros as disclosive",
                                              n=len(zeros)))
    return Check("zero_cells", FAIL,
                 Text("{n} cell(s) are zero: {cells}; a zero reveals that everyone in the "
                      "group shares the other attributes. Merge categories or suppress them; if they are "
                      "structural (impossible combinations), the policy can mark zeros as not disclosive",
                      n=len(zeros), cells=fmt_cells(zeros)))


def _check_negative_counts(df, keys, values) -> Check:
    neg = [key for key, v in cell_values(df, keys, values) if v < 0]
    if neg:
        return Check("negative_values", FAIL, Text("{n} count(s) are negative: {cells}; a count "
                                                   "cannot be negative, so the program or its declaration is wrong",
                                                   n=len(neg), cells=fmt_cells(neg)))
    return Check("negative_values", PASS, Text("no negative counts"))


def _check_negative_magnitude(df, keys, values, cell_stats) -> Check:
    # ACRO: "Dominance not defined when negative value are present" -> review.
    neg = [key for key, v in cell_values(df, keys, values) if v < 0]
    if cell_stats is not None:
        neg += [key for key, s in cell_stats.items() if s.has_negative]
    neg = unique_keys(neg)
    if neg:
        return Check("negative_values", NEEDS_REVIEW,
                     Text("{n} cell(s) involve negative values: {cells}; dominance rules are not "
                          "defined there, so judge whether one contributor can be inferred",
                          n=len(neg), cells=fmt_cells(neg)))
    return Check("negative_values", PASS, Text("no negative values"))


def _no_stats(rule: Text) -> Text:
    return Text("trusted code could not recompute {rule} for this table; rerun it as a declared aggregate "
                "(group-by spec) or establish by hand that no cell is disclosive", rule=rule)


def _check_nk(cell_stats, n: int, k: float) -> Check:
    """ACRO NKCheck: a cell fails when its n largest contributions are >= k of its total."""
    if cell_stats is None:
        return Check("dominance_nk", NEEDS_REVIEW, _no_stats(Text("per-cell contributions")))
    failing, skipped = _dominated_cells(cell_stats, lambda s: nk_dominated(s, n, k))
    label = (Text("the largest {n} contributors make up {k} or more of the total", n=n, k=format(k, ".0%")) if n > 1
             else Text("the largest contributor makes up {k} or more of the total", k=format(k, ".0%")))
    return _dominance_result("dominance_nk", failing, skipped, label, len(cell_stats))


def _check_p_percent(cell_stats, p: float) -> Check:
    """ACRO PPercentCheck (p-ratio): (total - top1 - top2) / top1 < p fails.

    The second largest contributor could then estimate the largest within p%. As in ACRO, a
    cell with top1 == 0 uses the unscaled remainder, so an all-zero cell fails: each
    contributor's value (zero) is revealed.
    """
    if cell_stats is None:
        return Check("dominance_p", NEEDS_REVIEW, _no_stats(Text("per-cell contributions")))
    failing, skipped = _dominated_cells(cell_stats, lambda s: p_dominated(s, p))
    label = Text("the others add up to less than {p} of the largest contributor", p=format(p, ".0%"))
    return _dominance_result("dominance_p", failing, skipped, label, len(cell_stats))


def nk_dominated(s: CellStats, n: int, k: float) -> bool:
    """ACRO NKCheck for one cell: its n largest contributions are >= k of its total."""
    top = s.top1 + (s.top2 if n == 2 else 0.0)
    # ACRO computes top/total; 0/0 is NaN and NaN >= k is False, so an all-zero cell passes
    # here (the p% rule catches it).
    return s.total != 0 and top / s.total >= k


def p_dominated(s: CellStats, p: float) -> bool:
    """ACRO PPercentCheck for one cell: (total - top1 - top2) / top1 < p."""
    rest = s.total - s.top1 - s.top2
    return (rest if s.top1 == 0 else rest / s.top1) < p


def _dominated_cells(cell_stats, dominated) -> tuple[list, list]:
    """Keys of cells the rule fails, and of cells it cannot assess (negative contributions)."""
    failing, skipped = [], []
    for key, s in cell_stats.items():
        if s.n_contributors == 0:
            continue
        if s.has_negative:
            skipped.append(key)
        elif dominated(s):
            failing.append(key)
    return failing, skipped


def _dominance_result(name, failing, skipped, label, total_cells) -> Check:
    # A definite failure outranks ACRO's blanket "review when negatives exist": safer, and
    # the reviewer still learns which cells could not be assessed.
    note = (Text(" {n} cell(s) with negative contributions could not be assessed: {cells}.", n=len(skipped),
                 cells=fmt_cells(skipped)) if skipped else "")
    if failing:
        return Check(name, FAIL, Text("{n} cell(s) are dominated ({label}): {cells}; "
                                      "suppress or merge them, or remove the dominant units.{note}",
                                      n=len(failing), label=label, cells=fmt_cells(failing), note=note))
    if skipped:
        return Check(name, NEEDS_REVIEW, Text("dominance is not defined where contributions are negative.{note} "
                                              "Judge whether one contributor can be inferred.", note=note))
    return Check(name, PASS, Text("no cell of {n} is dominated", n=total_cells))


def _untrusted_dof(declared: int | None) -> Check:
    said = Text(" (the declared model_df={declared} is not trusted)", declared=declared) if declared is not None else ""
    return Check("degrees_of_freedom", NEEDS_REVIEW,
                 Text("this model table was written by the operator's program, so its residual degrees of freedom "
                      "cannot be verified{said}: it may be records shaped as a model. Judge it by hand, or declare "
                      "the model under models so trusted code fits it and computes them", said=said))


def _check_model_size(df: pd.DataFrame) -> Check:
    if len(df) > MAX_MODEL_ROWS:
        return Check("model_size", FAIL,
                     Text("{rows} rows: a model's output has one row per parameter, and more than {max_rows} "
                          "rows look like records rather than a model; declare the model under models instead",
                          rows=len(df), max_rows=MAX_MODEL_ROWS))
    return Check("model_size", PASS, Text("{rows} rows, within {max_rows} parameters", rows=len(df),
                                          max_rows=MAX_MODEL_ROWS))


def _check_dof(model_df: int | None, min_df: int) -> Check:
    # ACRO MinimumDoFCheck: residual df < safe_dof_threshold fails; an unknown df is -1 there,
    # which fails too: a model we cannot size may be a lookup table of individuals.
    if model_df is None:
        return Check("degrees_of_freedom", FAIL,
                     Text("the model's residual degrees of freedom are unknown; the job must report them "
                          "(e.g. statsmodels df_resid) before the model can be released"))
    if model_df < min_df:
        return Check("degrees_of_freedom", FAIL,
                     Text("residual degrees of freedom {df} < {min_df}: the model is close to a lookup "
                          "table of individuals; use fewer parameters or more observations", df=model_df,
                          min_df=min_df))
    return Check("degrees_of_freedom", PASS, Text("residual degrees of freedom {df} >= {min_df}", df=model_df,
                                                  min_df=min_df))

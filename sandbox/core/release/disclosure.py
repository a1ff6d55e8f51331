"""Statistical disclosure checks for tables about to leave the domain (pure domain code).

Decision on ACRO (PyPI `acro`, AI-SDC): we reimplement its rules here instead of importing it.
- ACRO records its checks while it *computes* a table itself (its crosstab/pivot_table/
  statsmodels wrappers). Our tables arrive finished, written by untrusted programs; the
  per-cell contributor counts and largest contributions come from trusted code as `CellStats`.
- acro 1.0.2 pins pandas<=2.3.3 and pulls in statsmodels, matplotlib, rdflib, lxml; we run
  pandas 3 / numpy 2, and the release gate should not carry a plotting stack.
So the rules, their defaults and their edge cases follow ACRO 1.0.2 (`acro/sdcchecks.py`,
`acro/default.yaml`): safe_threshold 10, safe_nk_n 2, safe_nk_k 0.90, safe_pratio_p 0.10,
safe_dof_threshold 10, zeros_are_disclosive True. Each rule cites the ACRO definition it
mirrors; where we add or diverge, the comment says why. docs/disclosure-checks.md has the list.

Explanations go to the compliance reviewer. They name columns and cells by the table's own
public keys and never quote other values (no identifier values, no raw rows).
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import pandas as pd

PASS, FAIL, NEEDS_REVIEW = "pass", "fail", "needs_review"
TABLE_KINDS = ("frequency", "magnitude", "model", "other")
FILE_KINDS = ("csv", "parquet", "png", "svg", "text")

DEFAULT_THRESHOLD = 10          # ACRO safe_threshold
DEFAULT_NK = (2, 0.90)          # ACRO safe_nk_n, safe_nk_k
DEFAULT_P_PERCENT = 0.10        # ACRO safe_pratio_p
DEFAULT_MIN_DF = 10             # ACRO safe_dof_threshold
DEFAULT_MAX_ROWS = 10_000       # ours: an aggregate a person can review; larger looks like data
MAX_LISTED = 10                 # cells/columns named per explanation; the rest are counted


@dataclass(frozen=True)
class Check:
    """One rule's verdict: pass / fail / needs_review, with an explanation a person can act on."""
    name: str
    status: str
    explanation: str

    def to_dict(self) -> dict:
        return asdict(self)


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
                key_columns: Sequence[str] | None = None) -> list[Check]:
    """Run every rule that applies to a table of this kind; one Check per rule, in this order.

    All kinds: table_size, forbidden_columns, direct_identifiers, row_level.
    frequency: cell_keys (with cell_stats), min_cell_count, zero_cells, negative_values.
    magnitude: cell_keys (with cell_stats), min_cell_count, dominance_nk, dominance_p,
    negative_values. model: degrees_of_freedom. other: table_kind (always needs review).

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
    df = _flatten(table)
    keys = list(key_columns) if key_columns is not None else _infer_key_columns(df)
    missing = [c for c in keys if c not in df.columns]
    if missing:
        raise ValueError(f"key_columns not in the table: {missing}")
    values = [c for c in df.columns if c not in keys and _is_numeric(df[c])]

    checks = [_check_size(df, max_rows), _check_forbidden(df, forbidden_columns),
              _check_identifiers(df), _check_row_level(df, keys)]
    if kind == "frequency":
        if cell_stats is not None:
            checks.append(_check_cell_keys(df, keys, cell_stats))
        checks += [_check_threshold_frequency(df, keys, values, cell_stats, policy_min_group),
                   _check_zeros(df, keys, values, cell_stats, zeros_are_disclosive),
                   _check_negative_counts(df, keys, values)]
    elif kind == "magnitude":
        if cell_stats is not None:
            checks.append(_check_cell_keys(df, keys, cell_stats))
        checks += [_check_threshold_magnitude(cell_stats, policy_min_group),
                   _check_nk(cell_stats, n, k),
                   _check_p_percent(cell_stats, p_percent),
                   _check_negative_magnitude(df, keys, values, cell_stats)]
    elif kind == "model":
        checks.append(_check_dof(model_df, min_df))
    else:
        checks.append(Check("table_kind", NEEDS_REVIEW,
                            "the output is not declared as a frequency, magnitude or model table, so no "
                            "cell-level rule could be applied; judge it by hand or ask the operator to "
                            "declare it as an aggregate with its group-by"))
    return checks


def _check_size(df: pd.DataFrame, max_rows: int) -> Check:
    if len(df) > max_rows:
        return Check("table_size", FAIL, f"{len(df)} rows exceed the limit of {max_rows} for a released "
                                         "table; aggregate further (coarser groups) or split the output")
    return Check("table_size", PASS, f"{len(df)} rows, within the limit of {max_rows}")


def _check_forbidden(df: pd.DataFrame, forbidden: Collection[str]) -> Check:
    # Case-insensitive and trimmed: "Person_ID " must not slip past a policy listing person_id.
    wanted = {_norm_name(f) for f in forbidden}
    hits = [str(c) for c in df.columns if _norm_name(c) in wanted]
    if hits:
        return Check("forbidden_columns", FAIL,
                     f"column(s) {_list(hits)} are forbidden by the dataset's policy; remove them from the output")
    return Check("forbidden_columns", PASS, "no column the policy forbids")


def _check_identifiers(df: pd.DataFrame) -> Check:
    found = _identifier_findings(df)
    if found:
        parts = [f"{col} ({why})" for col, why in found.items()]
        return Check("direct_identifiers", FAIL,
                     f"column(s) look like direct identifiers: {_list(parts)}; remove them, outputs may "
                     "hold only aggregates")
    return Check("direct_identifiers", PASS, "no column looks like a direct identifier")


def _check_row_level(df: pd.DataFrame, keys: list[str]) -> Check:
    reasons = _row_level_reasons(df, key_columns=keys)
    if reasons:
        return Check("row_level", FAIL, "the table looks like records rather than aggregates ("
                     + "; ".join(reasons) + "); release counts or statistics per group instead")
    return Check("row_level", PASS, "the table looks like aggregates, not records")


def _check_cell_keys(df: pd.DataFrame, keys: list[str], cell_stats: Mapping[tuple, CellStats]) -> Check:
    # Ours, not ACRO's: the threshold is checked on the groups trusted code computed, so the
    # table must not hold rows outside them (an untrusted program could append extra cells).
    widths = {len(k) for k in cell_stats}
    if widths - {len(keys)} or (not keys and widths != {0}):
        return Check("cell_keys", NEEDS_REVIEW,
                     f"could not match the table's rows to the computed groups (key columns: "
                     f"{_list(keys) or 'none'}); check by hand that every row is one of the declared groups")
    known = {_norm_key(k) for k in cell_stats}
    extra = [k for k in _row_keys(df, keys) if _norm_key(k) not in known]
    if extra:
        return Check("cell_keys", FAIL, f"{len(extra)} row(s) are not groups the trusted side computed: "
                     f"{_cells(extra)}; the table does not match its declared group-by, so rerun it")
    return Check("cell_keys", PASS, f"every row is one of the {len(cell_stats)} computed groups")


def _check_threshold_frequency(df, keys, values, cell_stats, threshold) -> Check:
    if cell_stats is not None:
        return _threshold_from_stats(cell_stats, threshold)
    # Without recomputed stats the visible counts still fail when small (the table shows it),
    # but large visible counts prove nothing: rows are not people, and the program is untrusted.
    small = [key for key, v in _cell_values(df, keys, values) if 0 < v < threshold]
    if small:
        return Check("min_cell_count", FAIL,
                     f"{len(small)} cell(s) show counts below {threshold}: {_cells(small)}; merge "
                     "categories or suppress those cells")
    return Check("min_cell_count", NEEDS_REVIEW,
                 f"visible counts are all {threshold} or more, but trusted code could not recompute the "
                 "number of contributors per cell; confirm each cell counts at least "
                 f"{threshold} distinct people/units, or rerun the job as a declared aggregate")


def _check_threshold_magnitude(cell_stats, threshold) -> Check:
    if cell_stats is None:
        return Check("min_cell_count", NEEDS_REVIEW, _NO_STATS.format(rule="contributor counts"))
    return _threshold_from_stats(cell_stats, threshold)


def _threshold_from_stats(cell_stats: Mapping[tuple, CellStats], threshold: int) -> Check:
    # ACRO MinimumThresholdCheck: count < safe_threshold fails (exactly the threshold passes).
    # Diverges only in leaving empty cells (0 contributors) to zero_cells, which names them apart.
    small = [key for key, s in cell_stats.items() if 0 < s.n_contributors < threshold]
    if small:
        return Check("min_cell_count", FAIL,
                     f"{len(small)} cell(s) have fewer than {threshold} contributors: {_cells(small)}; "
                     "merge categories or suppress those cells")
    return Check("min_cell_count", PASS, f"all {len(cell_stats)} cells have {threshold} or more contributors "
                                         "(or none)")


def _check_zeros(df, keys, values, cell_stats, zeros_are_disclosive: bool) -> Check:
    # ACRO PresenceOfZeroCheck: a zero count is class disclosure (everyone in the row shares
    # the other attribute); it fails while zeros_are_disclosive (default True).
    zeros = [key for key, v in _cell_values(df, keys, values) if v == 0]
    if cell_stats is not None:
        zeros += [key for key, s in cell_stats.items() if s.n_contributors == 0]
    zeros = _unique(zeros)
    if not zeros:
        return Check("zero_cells", PASS, "no empty (zero) cells")
    if not zeros_are_disclosive:
        return Check("zero_cells", PASS, f"{len(zeros)} zero cell(s); the policy does not treat zeros as "
                                         "disclosive")
    return Check("zero_cells", FAIL,
                 f"{len(zeros)} cell(s) are zero: {_cells(zeros)}; a zero reveals that everyone in the "
                 "group shares the other attributes. Merge categories or suppress them; if they are "
                 "structural (impossible combinations), the policy can mark zeros as not disclosive")


def _check_negative_counts(df, keys, values) -> Check:
    neg = [key for key, v in _cell_values(df, keys, values) if v < 0]
    if neg:
        return Check("negative_values", FAIL, f"{len(neg)} count(s) are negative: {_cells(neg)}; a count "
                                              "cannot be negative, so the program or its declaration is wrong")
    return Check("negative_values", PASS, "no negative counts")


def _check_negative_magnitude(df, keys, values, cell_stats) -> Check:
    # ACRO: "Dominance not defined when negative value are present" -> review.
    neg = [key for key, v in _cell_values(df, keys, values) if v < 0]
    if cell_stats is not None:
        neg += [key for key, s in cell_stats.items() if s.has_negative]
    neg = _unique(neg)
    if neg:
        return Check("negative_values", NEEDS_REVIEW,
                     f"{len(neg)} cell(s) involve negative values: {_cells(neg)}; dominance rules are not "
                     "defined there, so judge whether one contributor can be inferred")
    return Check("negative_values", PASS, "no negative values")


_NO_STATS = ("trusted code could not recompute {rule} for this table; rerun it as a declared aggregate "
             "(group-by spec) or establish by hand that no cell is disclosive")


def _check_nk(cell_stats, n: int, k: float) -> Check:
    """ACRO NKCheck: a cell fails when its n largest contributions are >= k of its total."""
    if cell_stats is None:
        return Check("dominance_nk", NEEDS_REVIEW, _NO_STATS.format(rule="per-cell contributions"))
    failing, skipped = [], []
    for key, s in cell_stats.items():
        if s.n_contributors == 0:
            continue
        if s.has_negative:
            skipped.append(key)
            continue
        top = s.top1 + (s.top2 if n == 2 else 0.0)
        # ACRO computes top/total; 0/0 is NaN and NaN >= k is False, so an all-zero cell passes
        # here (the p% rule below catches it).
        if s.total != 0 and top / s.total >= k:
            failing.append(key)
    label = f"the largest {n} contributor{'s' if n > 1 else ''} make up {k:.0%} or more of the total"
    return _dominance_result("dominance_nk", failing, skipped, label, len(cell_stats))


def _check_p_percent(cell_stats, p: float) -> Check:
    """ACRO PPercentCheck (p-ratio): (total - top1 - top2) / top1 < p fails.

    The second largest contributor could then estimate the largest within p%. As in ACRO, a
    cell with top1 == 0 uses the unscaled remainder, so an all-zero cell fails: each
    contributor's value (zero) is revealed.
    """
    if cell_stats is None:
        return Check("dominance_p", NEEDS_REVIEW, _NO_STATS.format(rule="per-cell contributions"))
    failing, skipped = [], []
    for key, s in cell_stats.items():
        if s.n_contributors == 0:
            continue
        if s.has_negative:
            skipped.append(key)
            continue
        rest = s.total - s.top1 - s.top2
        ratio = rest if s.top1 == 0 else rest / s.top1
        if ratio < p:
            failing.append(key)
    label = f"the others add up to less than {p:.0%} of the largest contributor"
    return _dominance_result("dominance_p", failing, skipped, label, len(cell_stats))


def _dominance_result(name, failing, skipped, label, total_cells) -> Check:
    # A definite failure outranks ACRO's blanket "review when negatives exist": safer, and
    # the reviewer still learns which cells could not be assessed.
    note = (f" {len(skipped)} cell(s) with negative contributions could not be assessed: {_cells(skipped)}."
            if skipped else "")
    if failing:
        return Check(name, FAIL, f"{len(failing)} cell(s) are dominated ({label}): {_cells(failing)}; "
                                 "suppress or merge them, or remove the dominant units." + note)
    if skipped:
        return Check(name, NEEDS_REVIEW, "dominance is not defined where contributions are negative." + note
                     + " Judge whether one contributor can be inferred.")
    return Check(name, PASS, f"no cell of {total_cells} is dominated")


def _check_dof(model_df: int | None, min_df: int) -> Check:
    # ACRO MinimumDoFCheck: residual df < safe_dof_threshold fails; an unknown df is -1 there,
    # which fails too: a model we cannot size may be a lookup table of individuals.
    if model_df is None:
        return Check("degrees_of_freedom", FAIL,
                     "the model's residual degrees of freedom are unknown; the job must report them "
                     "(e.g. statsmodels df_resid) before the model can be released")
    if model_df < min_df:
        return Check("degrees_of_freedom", FAIL,
                     f"residual degrees of freedom {model_df} < {min_df}: the model is close to a lookup "
                     "table of individuals; use fewer parameters or more observations")
    return Check("degrees_of_freedom", PASS, f"residual degrees of freedom {model_df} >= {min_df}")


# --- direct identifiers ------------------------------------------------------------------

_ID18 = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_ID15 = re.compile(r"(?<![0-9A-Za-z])\d{15}(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![0-9A-Za-z])(?:\+?86[- ]?)?1[3-9]\d{9}(?![0-9A-Za-z])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_ID18_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID18_CHECK = "10X98765432"

# The most common surnames (about 85% of the population) plus common compound ones.
_SURNAMES = set(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "夏侯", "长孙")
# Place and organisation names have the same shape as personal names (张掖市, 王府井街道).
_PLACE_SUFFIXES = tuple("市县区省州镇乡村旗盟街路道巷局院所站厂店部科组队会司行业类型级室病症炎癌瘤") + ("社区",)
_HAN = re.compile(r"^[\u4e00-\u9fff]+$")

_ID_NAME_ZH = ("身份证", "姓名", "手机", "电话", "邮箱", "证件", "护照", "社保卡", "银行卡", "住址", "联系方式", "名字")
_ID_NAME_EXACT = {"id", "name", "phone", "mobile", "email", "ssn", "passport", "idcard", "tel", "telephone",
                  "cellphone", "fullname", "firstname", "lastname", "surname", "address", "idno", "idnumber"}
_ID_NAME_TOKENS = {"phone", "mobile", "email", "ssn", "passport", "idcard", "telephone", "cellphone",
                   "fullname", "firstname", "lastname", "surname"}
_PERSON_WORDS = {"person", "patient", "user", "customer", "resident", "citizen", "member", "employee",
                 "student", "applicant", "owner", "individual", "client", "holder", "contact"}
_ID_SUFFIX_WORDS = {"id", "name", "no", "number", "num"}


def detect_identifiers(df: pd.DataFrame) -> list[str]:
    """Names of columns that look like direct identifiers, in column order.

    Values: 18-digit resident ID numbers with a valid GB 11643 checksum and birth date,
    15-digit old IDs, Chinese mobile numbers 1[3-9]xxxxxxxxx, e-mail addresses, and columns
    where most values look like Chinese personal names. Names: columns named like id, name,
    身份证, 姓名, 手机, patient_id, person_name ... (a public key such as district_name is not).
    """
    return list(_identifier_findings(_flatten(df)))


def _identifier_findings(df: pd.DataFrame) -> dict[str, str]:
    found: dict[str, str] = {}
    for col in df.columns:
        why = _identifier_by_name(str(col)) or _identifier_by_values(df[col])
        if why:
            found[str(col)] = why
    return found


def _identifier_by_name(name: str) -> str | None:
    if any(word in name for word in _ID_NAME_ZH):
        return "named like a personal identifier"
    tokens = _name_tokens(name)
    joined = "".join(tokens)
    if joined in _ID_NAME_EXACT or any(t in _ID_NAME_TOKENS for t in tokens):
        return "named like a personal identifier"
    if len(tokens) >= 2 and tokens[-1] in _ID_SUFFIX_WORDS and tokens[-2] in _PERSON_WORDS:
        return "named like a personal identifier"
    return None


def _name_tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name.strip())
    return [t for t in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if t]


def _identifier_by_values(series: pd.Series) -> str | None:
    texts = [t for t in (_as_text(v) for v in series.dropna().tolist()) if t]
    if not texts:
        return None
    numeric = _is_numeric(series)
    # Any single valid resident ID or e-mail is enough: the gate must not leak one record.
    # Mobile and 15-digit patterns also match large sums, so numeric columns need a majority.
    if any(_has_valid_id18(t) for t in texts):
        return "18-digit resident ID numbers"
    if any(_EMAIL.search(t) for t in texts):
        return "e-mail addresses"
    need = max(1, math.ceil(len(texts) / 2)) if numeric else 1
    if sum(1 for t in texts if _MOBILE.search(t)) >= need:
        return "mobile phone numbers"
    if sum(1 for t in texts if _has_valid_id15(t)) >= need:
        return "15-digit resident ID numbers"
    if not numeric and sum(1 for t in texts if looks_like_chinese_name(t)) * 2 > len(texts):
        return "Chinese personal names"
    return None


def id18_checksum_ok(number: str) -> bool:
    """GB 11643-1999: weighted sum of the first 17 digits mod 11 selects the check character."""
    if not re.fullmatch(r"\d{17}[\dXx]", number):
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID18_WEIGHTS, strict=True))
    return _ID18_CHECK[total % 11] == number[17].upper()


def _valid_date(yyyymmdd: str) -> bool:
    try:
        d = _dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return 1900 <= d.year <= 2100


def _has_valid_id18(text: str) -> bool:
    return any(id18_checksum_ok(m) and _valid_date(m[6:14]) for m in _ID18.findall(text))


def _has_valid_id15(text: str) -> bool:
    # Old IDs have no checksum: 6-digit region code (first digit 1-8) and a 19YYMMDD birth date.
    return any(m[0] in "12345678" and _valid_date("19" + m[6:12]) for m in _ID15.findall(text))


def looks_like_chinese_name(text: str) -> bool:
    """Common surname (or compound surname) followed by 1-2 Han characters, not a place name."""
    t = text.strip()
    if not _HAN.match(t) or t.endswith(_PLACE_SUFFIXES):
        return False
    if t[:2] in _COMPOUND_SURNAMES:
        return 3 <= len(t) <= 4
    return t[0] in _SURNAMES and 2 <= len(t) <= 3


# --- row-level output --------------------------------------------------------------------

_AGGREGATE_NAME = re.compile(
    r"(^|[^a-z])(n|cnt|count|counts|freq|frequency|num|total|sum|mean|avg|average|median|std|sd|var|"
    r"min|max|rate|ratio|share|pct|percent|prop|proportion|coef|estimate|se|pvalue|p_value)([^a-z]|$)"
    r"|人数|频数|计数|数量|合计|总数|总计|平均|均值|中位数|占比|比例|比率|率$"
)


def looks_row_level(df: pd.DataFrame, *, min_rows: int = 20, key_columns: Sequence[str] | None = None,
                    unique_share: float = 0.9) -> bool:
    """True when a table's rows look like records rather than aggregates.

    Signals: a group (key combination) that appears on more than one row (an aggregate lists
    each group once), or, with no column named like an aggregate (count, mean, 人数 ...), many
    rows that are mostly distinct and a column nearly unique per row (a record identifier).
    Tables under `min_rows` rows are too small to judge and return False.
    """
    flat = _flatten(df)
    keys = list(key_columns) if key_columns is not None else _infer_key_columns(flat)
    return bool(_row_level_reasons(flat, key_columns=keys, min_rows=min_rows, unique_share=unique_share))


def _row_level_reasons(df: pd.DataFrame, *, key_columns: list[str], min_rows: int = 20,
                       unique_share: float = 0.9) -> list[str]:
    rows = len(df)
    if rows < min_rows or df.shape[1] == 0:
        return []
    reasons = []
    if key_columns:
        repeated = rows - len(df.drop_duplicates(subset=key_columns))
        # A few repeats can be a sloppy but aggregate table; many mean one row per record.
        if repeated > max(1, rows // 20):
            reasons.append(f"{repeated} of {rows} rows repeat a group of {_list(key_columns)}")
    named_aggregate = any(_AGGREGATE_NAME.search(str(c).lower()) for c in df.columns)
    if not named_aggregate:
        distinct_rows = len(df.drop_duplicates()) / rows
        wide = [str(c) for c in df.columns if df[c].nunique(dropna=True) >= unique_share * rows]
        if distinct_rows >= unique_share and wide:
            reasons.append(f"{rows} mostly distinct rows, no count or statistic column, and "
                           f"column(s) {_list(wide)} nearly unique per row")
    return reasons


# --- files -------------------------------------------------------------------------------

_SUFFIXES = {"csv": (".csv",), "parquet": (".parquet", ".pq"), "png": (".png",), "svg": (".svg",),
             "text": (".txt", ".md")}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_SVG_FORBIDDEN = [
    (re.compile(r"<\s*script", re.I), "a script element"),
    (re.compile(r"<[^>]*\son[a-z]+\s*=", re.I), "an event-handler attribute"),
    (re.compile(r"javascript\s*:", re.I), "a javascript: URL"),
    (re.compile(r"<\s*foreignObject", re.I), "a foreignObject element"),
    # A plain DOCTYPE (matplotlib writes one) is harmless; an internal subset or ENTITY is XXE.
    (re.compile(r"<!\s*ENTITY|<!DOCTYPE[^>]*\[", re.I), "an entity declaration"),
    (re.compile(r"@import", re.I), "a CSS @import"),
    (re.compile(r"url\(\s*['\"]?(?!#)", re.I), "a url() reference to something outside the file"),
    (re.compile(r"<\s*(iframe|embed|object|audio|video)\b", re.I), "an embedded-content element"),
]
_SVG_HREF = re.compile(r"""(?:xlink:)?href\s*=\s*(["'])(.*?)\1""", re.I | re.S)
_SVG_SAFE_HREF = re.compile(r"^(#|data:image/(png|jpeg|gif);base64,)", re.I)


def check_file(name: str, data: bytes, declared_kind: str, max_bytes: int,
               allowed_types: Collection[str] = FILE_KINDS) -> Check:
    """One Check ("file") on an output file: name, size limit, allowed type, and content that
    really is the declared type (magic bytes; CSV/text valid UTF-8; SVG free of scripts and
    external references). The explanation lists every problem found; never the content."""
    problems = []
    shown = _printable(name)
    if not name or "/" in name or "\\" in name or name.startswith(".") or shown != name or len(name) > 255:
        problems.append("the file name must be a plain name (no folders, no leading dot, no control "
                        "characters, at most 255 characters)")
    if declared_kind not in FILE_KINDS:
        problems.append(f"declared type {_printable(declared_kind)!r} is unknown (known: {', '.join(FILE_KINDS)})")
    elif declared_kind not in allowed_types:
        problems.append(f"type {declared_kind} is not allowed here (allowed: {', '.join(sorted(allowed_types))})")
    elif not name.lower().endswith(_SUFFIXES[declared_kind]):
        problems.append(f"a {declared_kind} file must be named *{' or *'.join(_SUFFIXES[declared_kind])}")
    if not data:
        problems.append("the file is empty")
    elif len(data) > max_bytes:
        problems.append(f"{len(data)} bytes exceed the limit of {max_bytes}")
    elif declared_kind in FILE_KINDS:
        problems += _content_problems(data, declared_kind)
    if problems:
        return Check("file", FAIL, f"{shown}: " + "; ".join(problems))
    return Check("file", PASS, f"{shown}: {declared_kind}, {len(data)} bytes, within limits")


def sniff_kind(data: bytes) -> str | None:
    """The file type its bytes show: png, parquet, svg, csv-or-text ("text"), or None."""
    if data.startswith(_PNG_MAGIC):
        return "png"
    if len(data) >= 12 and data.startswith(b"PAR1") and data.endswith(b"PAR1"):
        return "parquet"
    text = _utf8_text(data)
    if text is None:
        return None
    if re.match(r"\s*(<\?xml[^>]*\?>\s*)?(<!--.*?-->\s*)*(<!DOCTYPE[^>]*>\s*)?(<!--.*?-->\s*)*<svg[\s>]",
                text.lstrip("\ufeff"), re.S | re.I):
        return "svg"
    return "text"


def _content_problems(data: bytes, kind: str) -> list[str]:
    sniffed = sniff_kind(data)
    if kind in ("png", "parquet"):
        return [] if sniffed == kind else [f"the content is not {kind} (its first bytes say otherwise)"]
    if sniffed not in ("svg", "text"):
        return ["the content is not UTF-8 text without control characters"]
    text = _utf8_text(data)
    if kind == "svg":
        return ([] if sniffed == "svg" else ["the content is not an SVG image"]) + _svg_problems(text)
    if kind == "csv":
        return _csv_problems(text)
    return []


def _svg_problems(text: str) -> list[str]:
    out = [f"the SVG contains {what}" for pattern, what in _SVG_FORBIDDEN if pattern.search(text)]
    for _, target in _SVG_HREF.findall(text):
        if not _SVG_SAFE_HREF.match(target.strip()):
            out.append("the SVG links to something outside the file (href)")
            break
    return out


def _csv_problems(text: str) -> list[str]:
    try:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    except csv.Error:
        return ["the content does not parse as CSV"]
    rows = [r for r in rows if r]
    if not rows:
        return ["the CSV has no header row"]
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        return [f"CSV rows have differing numbers of fields ({', '.join(map(str, sorted(widths)))})"]
    return []


def _utf8_text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(ch) < 32 and ch not in "\t\r\n" for ch in text):
        return None
    return text


# --- helpers -----------------------------------------------------------------------------

def _flatten(table: pd.DataFrame) -> pd.DataFrame:
    """A meaningful index (named, or not a plain 0..n-1 range) becomes key columns."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError("table must be a pandas DataFrame")
    idx = table.index
    plain = isinstance(idx, pd.RangeIndex) and idx.name is None
    df = table if plain else table.reset_index()
    if isinstance(df.columns, pd.MultiIndex):
        df = df.copy()
        df.columns = [" ".join(str(p) for p in c if str(p)) for c in df.columns]
    return df


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _infer_key_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if not _is_numeric(df[c])]


def _row_keys(df: pd.DataFrame, keys: list[str]) -> list[tuple]:
    return [tuple(r) for r in df[keys].itertuples(index=False, name=None)] if keys else [() for _ in range(len(df))]


def _cell_values(df: pd.DataFrame, keys: list[str], values: list[str]) -> Iterable[tuple[tuple, float]]:
    """(cell key, value) for each finite number in the value columns; with several value
    columns the column name joins the key so the reviewer can find the cell."""
    row_keys = _row_keys(df, keys)
    for col in values:
        for key, v in zip(row_keys, df[col].tolist(), strict=True):
            if v is None or isinstance(v, bool):
                continue
            try:
                f = float(v)
            except (TypeError, ValueError):
                continue
            if math.isfinite(f):
                yield (key + (col,) if len(values) > 1 else key), f


def _norm_name(name) -> str:
    return str(name).strip().lower()


def _norm_key(key: tuple) -> tuple:
    # CSV gives "2024" where trusted code has 2024; compare as text, ints without ".0".
    return tuple(_as_text(v) for v in key)


def _as_text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _unique(keys: list[tuple]) -> list[tuple]:
    seen, out = set(), []
    for key in keys:
        norm = _norm_key(key)
        if norm not in seen:
            seen.add(norm)
            out.append(key)
    return out


def _printable(text: str, cap: int = 60) -> str:
    clean = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return clean if len(clean) <= cap else clean[: cap - 1] + "…"


def fmt_key(key: tuple) -> str:
    """A cell key as the reviewer reads it: (兰州市, F)."""
    key = key if isinstance(key, tuple) else (key,)
    return "(" + ", ".join(_printable(_as_text(v), 40) for v in key) + ")"


def _cells(keys: list[tuple]) -> str:
    shown = ", ".join(fmt_key(k) for k in keys[:MAX_LISTED])
    return shown + (f" and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else "")


def _list(names: list[str]) -> str:
    shown = ", ".join(_printable(n) for n in names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")

"""Does an output hold microdata (people's records) rather than aggregates?

Two signs, each a rule of its own: columns that look like direct identifiers (by name, by
value, or by an identifier written as the column name itself: resident ID numbers, mobile
numbers, e-mail addresses, Chinese personal names), and rows that look like records rather
than one row per group.
"""
from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Sequence

import pandas as pd

from sandbox.core.errors import Text, join_texts
from sandbox.core.release.cells import flatten, infer_key_columns, is_numeric
from sandbox.core.release.checks import FAIL, NEEDS_REVIEW, PASS, Check, as_text, fmt_names, printable

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
    return list(_identifier_findings(flatten(df)))


def check_identifiers(df: pd.DataFrame) -> Check:
    """check_table's direct_identifiers rule, on a table already flattened. A column whose
    name holds an identifier is named by its position, so the explanation does not repeat it."""
    found = _identifier_findings(df)
    if found:
        position = {str(c): i + 1 for i, c in enumerate(df.columns)}
        parts = [Text("column {n} ({why})", n=position[col], why=why) if why.startswith(_IN_NAME)
                 else Text("{col} ({why})", col=printable(col), why=why) for col, why in found.items()]
        return Check("direct_identifiers", FAIL,
                     Text("column(s) look like direct identifiers: {names}; remove them, outputs may "
                          "hold only aggregates", names=fmt_names(parts)))
    return Check("direct_identifiers", PASS, Text("no column looks like a direct identifier"))


_IN_NAME = "name holds"


def _identifier_findings(df: pd.DataFrame) -> dict[str, str]:
    found: dict[str, str] = {}
    # Column names are scanned like values: a program can write a record into a header.
    header_names = _names_in_headers([str(c) for c in df.columns])
    for col in df.columns:
        why = (_identifier_in_header(str(col)) or _identifier_by_name(str(col))
               or (Text("name holds a Chinese personal name") if str(col) in header_names else None)
               or _identifier_by_values(df[col]))
        if why:
            found[str(col)] = why
    return found


def _identifier_in_header(name: str) -> str | None:
    # One hit is enough, as for values in text columns: a header is never a count.
    # Each starts with _IN_NAME: check_identifiers names such a column by its position.
    if _has_valid_id18(name):
        return Text("name holds an 18-digit resident ID number")
    if _EMAIL.search(name):
        return Text("name holds an e-mail address")
    if _MOBILE.search(name):
        return Text("name holds a mobile phone number")
    if _has_valid_id15(name):
        return Text("name holds a 15-digit resident ID number")
    return None


def _names_in_headers(headers: list[str]) -> set[str]:
    # Personal names as headers (a table pivoted by person) count when most headers are names:
    # a single header like 金额 has a name's shape (金 is a surname).
    names = {h for h in headers if looks_like_chinese_name(h)}
    return names if len(headers) >= 3 and len(names) * 2 > len(headers) else set()


def _identifier_by_name(name: str) -> str | None:
    if any(word in name for word in _ID_NAME_ZH):
        return Text("named like a personal identifier")
    tokens = _name_tokens(name)
    joined = "".join(tokens)
    if joined in _ID_NAME_EXACT or any(t in _ID_NAME_TOKENS for t in tokens):
        return Text("named like a personal identifier")
    if len(tokens) >= 2 and tokens[-1] in _ID_SUFFIX_WORDS and tokens[-2] in _PERSON_WORDS:
        return Text("named like a personal identifier")
    return None


def _name_tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name.strip())
    return [t for t in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if t]


def _identifier_by_values(series: pd.Series) -> str | None:
    texts = [t for t in (as_text(v) for v in series.dropna().tolist()) if t]
    if not texts:
        return None
    numeric = is_numeric(series)
    # Any single valid resident ID or e-mail is enough: the gate must not leak one record.
    # Mobile and 15-digit patterns also match large sums, so numeric columns need a majority.
    if any(_has_valid_id18(t) for t in texts):
        return Text("18-digit resident ID numbers")
    if any(_EMAIL.search(t) for t in texts):
        return Text("e-mail addresses")
    need = max(1, math.ceil(len(texts) / 2)) if numeric else 1
    if sum(1 for t in texts if _MOBILE.search(t)) >= need:
        return Text("mobile phone numbers")
    if sum(1 for t in texts if _has_valid_id15(t)) >= need:
        return Text("15-digit resident ID numbers")
    if not numeric and sum(1 for t in texts if looks_like_chinese_name(t)) * 2 > len(texts):
        return Text("Chinese personal names")
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
    """True when a table's rows clearly look like records rather than aggregates.

    Signals: a group (key combination) that appears on more than one row (an aggregate lists
    each group once), or, with no column named like an aggregate (count, mean, 人数 ...), many
    mostly distinct rows and a column nearly unique per row (a record identifier). Weaker signs
    (the same shape under aggregate-like names, a key nearly unique per row beside other keys,
    a sparse key crossing) only make `check_row_level` ask for review.
    Tables under `min_rows` rows are too small to judge and return False.
    """
    flat = flatten(df)
    keys = list(key_columns) if key_columns is not None else infer_key_columns(flat)
    return bool(_row_level_reasons(flat, key_columns=keys, min_rows=min_rows, unique_share=unique_share)[0])


_SPARSE_SHARE = 0.1   # a table filling under 10% of its key crossing lists unique combinations


def _row_level_reasons(df: pd.DataFrame, *, key_columns: list[str], min_rows: int = 20,
                       unique_share: float = 0.9, keys_trusted: bool = False) -> tuple[list[str], list[str]]:
    """(reasons to fail, reasons to ask a reviewer). With `keys_trusted` (trusted code built
    one row per group) only repeated groups count."""
    rows = len(df)
    if rows < min_rows or df.shape[1] == 0:
        return [], []
    fail, review = [], []
    if key_columns:
        repeated = rows - len(df.drop_duplicates(subset=key_columns))
        # A few repeats can be a sloppy but aggregate table; many mean one row per record.
        if repeated > max(1, rows // 20):
            fail.append(Text("{repeated} of {rows} rows repeat a group of {names}", repeated=repeated, rows=rows,
                             names=fmt_names(key_columns)))
    if keys_trusted:
        return fail, review
    # With keys, a value column unique per row is normal (one statistic per group); a key or,
    # without keys, any column unique per row is a record identifier's shape.
    candidates = key_columns or list(df.columns)
    unique = [str(c) for c in candidates if df[c].nunique(dropna=True) >= unique_share * rows]
    unique_keys = [c for c in unique if c in key_columns]
    if len(key_columns) >= 2 and unique_keys:
        # Records with attributes, or nested keys (township within district): a person decides.
        review.append(Text("key column(s) {names} nearly unique per row, so the other key "
                           "columns describe each row's item", names=fmt_names(unique_keys)))
    if len(df.drop_duplicates()) / rows >= unique_share and unique:
        # Column names are the operator's: an aggregate-like name (count, 人数) no longer
        # excuses the shape, it only turns the failure into a question for the reviewer.
        names = fmt_names(unique)
        if any(_AGGREGATE_NAME.search(str(c).lower()) for c in df.columns):
            review.append(Text("{rows} mostly distinct rows and column(s) {names} nearly unique per row; if those "
                               "are not public categories (district, industry, year), the rows "
                               "are records whatever the columns are called", rows=rows, names=names))
        else:
            fail.append(Text("{rows} mostly distinct rows and column(s) {names} nearly unique per row, and no "
                             "count or statistic column", rows=rows, names=names))
    if len(key_columns) >= 2:
        crossing = math.prod(max(1, df[c].nunique(dropna=False)) for c in key_columns)
        if rows < _SPARSE_SHARE * crossing:
            review.append(Text("the {rows} rows fill only {share} of the {crossing} combinations of "
                               "{names}: unique combinations of many attributes are how records "
                               "look (unless the keys are nested, like district and township)",
                               rows=rows, share=format(rows / crossing, ".1%"), crossing=crossing,
                               names=fmt_names(key_columns)))
    return fail, review


def check_row_level(df: pd.DataFrame, keys: list[str], *, keys_trusted: bool = False) -> Check:
    """check_table's row_level rule, on a table already flattened, with its key columns.
    `keys_trusted`: the keys were declared by trusted code, not inferred from the table."""
    fail, review = _row_level_reasons(df, key_columns=keys, keys_trusted=keys_trusted)
    if fail:
        return Check("row_level", FAIL, Text("the table looks like records rather than aggregates ({reasons}); "
                                             "release counts or statistics per group instead",
                                             reasons=join_texts("; ", fail + review)))
    if review:
        return Check("row_level", NEEDS_REVIEW, Text("the table may hold records rather than aggregates ({reasons}); "
                                                     "check that every row is a group of several people or units",
                                                     reasons=join_texts("; ", review)))
    return Check("row_level", PASS, Text("the table looks like aggregates, not records"))

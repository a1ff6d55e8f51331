"""Checks on free-form reviewed-mode tables that no longer trust what the operator wrote:
column names are scanned like values, counts must be whole, aggregate-like names do not
excuse a record-shaped table, and every free-form file goes to a person."""
from __future__ import annotations

import io

import pandas as pd
import pytest

from sandbox.core.release import gate
from sandbox.core.release.checks import FAIL, NEEDS_REVIEW, PASS
from sandbox.core.release.freeform import check_integer_counts, review_check
from sandbox.core.release.microdata import detect_identifiers
from sandbox.core.release.tables import check_table
from sandbox.core.specs.reviewed import DeclaredOutput


def id18(prefix17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return prefix17 + "10X98765432"[sum(int(d) * w for d, w in zip(prefix17, weights, strict=True)) % 11]


RESIDENT_ID = id18("62010219850315123")     # region 620102, born 1985-03-15


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


# --- column names scanned like values ----------------------------------------------------

def test_an_id_number_as_a_column_name_is_a_finding_naming_the_column_without_the_number():
    table = pd.DataFrame({"district": ["城关区", "七里河区"], RESIDENT_ID: [12, 15]})
    assert detect_identifiers(table) == [RESIDENT_ID]
    check = by_name(check_table(table, kind="frequency"))["direct_identifiers"]
    assert check.status == FAIL
    assert "column 2" in check.explanation and "18-digit resident ID number" in check.explanation
    assert RESIDENT_ID not in check.explanation and RESIDENT_ID[6:14] not in check.explanation


@pytest.mark.parametrize("header, why", [
    (f"income_{RESIDENT_ID}", "18-digit resident ID"),
    ("zhang.san@example.com", "e-mail address"),
    ("13912345678", "mobile phone number"),
    ("620102850315123", "15-digit resident ID"),
])
def test_identifiers_in_headers_are_found(header, why):
    check = by_name(check_table(pd.DataFrame({"g": ["a"], header: [20]}), kind="frequency"))["direct_identifiers"]
    assert check.status == FAIL and why in check.explanation and header not in check.explanation


def test_a_table_pivoted_by_person_name_is_a_finding_but_ordinary_headers_are_not():
    pivot = pd.DataFrame({"district": ["城关区"], "张伟": [1], "王芳": [2], "李娜": [3]})
    assert detect_identifiers(pivot) == ["张伟", "王芳", "李娜"]
    # 金额 and 方差 have a name's shape (金 and 方 are surnames); a minority of such headers is fine.
    ordinary = pd.DataFrame({"地区": ["城关区"], "金额": [1.0], "方差": [2.0], "2024": [3], "企业数": [4]})
    assert detect_identifiers(ordinary) == []


# --- counts must be whole ----------------------------------------------------------------

def test_counts_with_hidden_decimals_are_a_finding():
    table = pd.DataFrame({"district": [f"区{i}" for i in range(5)],
                          "n": [10.000123, 12.0, 10.004567, 15.0, 11.0]})
    check = by_name(check_table(table, kind="frequency"))["integer_counts"]
    assert check.status == FAIL and "2 count(s) are not whole numbers: (区0), (区2)" in check.explanation
    assert "10.000123" not in check.explanation
    assert check_integer_counts(table.assign(n=[10.0, 12, 10, 15, 11]), ["district"], ["n"]).status == PASS


def test_hidden_decimals_are_found_in_a_declared_csv_file():
    text = "district,enterprises\n" + "".join(f"区{i},{10 + i}.00{i:04d}\n" for i in range(1, 30))
    checks = gate.check_declared_file(DeclaredOutput("f.csv", "csv", "frequency"), text.encode(), 1 << 20,
                                      _Policy(), [], "v1")
    assert by_name(checks)["integer_counts:f.csv"].status == FAIL


class _Policy:
    forbidden_columns = frozenset()
    min_group_size = 10


# --- row-level test not skipped for aggregate-like names ---------------------------------

def test_unique_quasi_identifier_combinations_named_count_are_not_passed():
    # The crafted output: 2,000 unique combinations of four attributes, each "counted" once.
    n = 2000
    table = pd.DataFrame({"age": [str(20 + i % 60) for i in range(n)], "sex": ["男", "女"] * (n // 2),
                          "district": [f"区{i % 97}" for i in range(n)], "occupation": [f"职业{i % 31}" for i in range(n)],
                          "count": [10] * n})
    assert len(table.drop_duplicates(["age", "sex", "district", "occupation"])) == n
    check = by_name(check_table(table, kind="frequency"))["row_level"]
    assert check.status == NEEDS_REVIEW and "combinations" in check.explanation


def test_records_renamed_like_aggregates_are_not_passed():
    n = 60
    records = pd.DataFrame({"enterprise": [f"E{i:05d}" for i in range(n)], "total": [100.0 + 7 * i for i in range(n)],
                            "mean": [float(i % 50) for i in range(n)]})
    check = by_name(check_table(records, kind="magnitude"))["row_level"]
    assert check.status == NEEDS_REVIEW and "enterprise" in check.explanation
    assert "E00001" not in check.explanation
    # The same shape without aggregate-like names fails, as before.
    plain = records.rename(columns={"total": "capital", "mean": "age"})
    assert by_name(check_table(plain, kind="magnitude"))["row_level"].status == FAIL


def test_a_key_unique_per_row_beside_other_keys_is_a_question():
    n = 40
    table = pd.DataFrame({"enterprise": [f"E{i}" for i in range(n)], "district": ["城关区", "七里河区"] * (n // 2),
                          "n": [12] * n})
    check = by_name(check_table(table, kind="frequency"))["row_level"]
    assert check.status == NEEDS_REVIEW and "enterprise" in check.explanation


def test_a_full_cross_table_with_declared_keys_still_passes():
    table = pd.DataFrame({"district": [f"区{i}" for i in range(12) for _ in range(3)],
                          "size": ["小", "中", "大"] * 12, "count": [10 + i for i in range(36)]})
    assert by_name(check_table(table, kind="frequency"))["row_level"].status == PASS
    assert by_name(check_table(table, kind="frequency", key_columns=["district", "size"]))["row_level"].status == PASS


# --- every free-form file goes to a person -------------------------------------------------

def test_the_free_form_finding_is_needs_review_and_names_the_file():
    check = review_check("model.csv", "csv")
    assert check.name == "free_form:model.csv" and check.status == NEEDS_REVIEW
    assert "model.csv" in check.explanation


def test_the_csv_reader_sees_what_the_reencoder_wrote():
    # Decimals beyond float precision were dropped by the re-encoder; what is left is checked.
    table = pd.read_csv(io.StringIO("g,n\na,10.000000000000002\n"))
    assert check_integer_counts(table, ["g"], ["n"]).status == FAIL

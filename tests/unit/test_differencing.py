"""Differencing across releases: same grouping twice, nested groupings, margins against a
two-way table; boundaries at the threshold; what is out of scope stays out of scope."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.core.release.checks import FAIL, PASS
from sandbox.core.release.differencing import ReleasedAggregate, check_differencing, find_differences

V = "sha256:aaaa"
T = 10


def agg(grouping, cells, version=V, label=""):
    return ReleasedAggregate(version, tuple(grouping), dict(cells), label=label)


# --- (a) same grouping, different populations ------------------------------------------------

@pytest.mark.parametrize("gap, status", [(0, PASS), (1, FAIL), (3, FAIL), (9, FAIL), (10, PASS), (40, PASS)])
def test_same_grouping_released_for_two_populations_fails_only_below_threshold(gap, status):
    everyone = agg(["district"], {("城关区",): 120, ("安宁区",): 80}, label="job-7")
    adults = agg(["district"], {("城关区",): 120 - gap, ("安宁区",): 60})
    check = check_differencing(adults, [everyone], T)
    assert check.status == status
    if status == FAIL:
        assert check.explanation.startswith("1 cell(s)")
        assert f"(城关区) by (district) against job-7 (same grouping): a group of {gap}" in check.explanation


def test_same_grouping_in_another_column_order_is_still_compared():
    old = agg(["district", "sex"], {("a", "F"): 50, ("a", "M"): 40})
    new = agg(["sex", "district"], {("F", "a"): 47, ("M", "a"): 40})
    findings = find_differences(new, [old], T)
    assert [(f.key, f.gap) for f in findings] == [(("F", "a"), -3.0)]


# --- (b) nested groupings ----------------------------------------------------------------

def test_coarse_total_minus_released_fine_cells_reveals_a_suppressed_cell():
    by_district = agg(["district"], {("城关区",): 125, ("安宁区",): 90}, label="job-1")
    # The two-way table suppressed (城关区, M) because it held 5 people.
    by_district_sex = agg(["district", "sex"], {("城关区", "F"): 120, ("安宁区", "F"): 50, ("安宁区", "M"): 40})
    check = check_differencing(by_district_sex, [by_district], T)
    assert check.status == FAIL
    assert "(城关区) by (district) against job-1 (coarser release): a group of 5" in check.explanation
    assert "安宁区" not in check.explanation


def test_new_coarse_release_against_an_old_fine_table_with_suppression_fails_too():
    fine = agg(["district", "sex"], {("a", "F"): 120, ("b", "F"): 50, ("b", "M"): 40}, label="job-2")
    coarse = agg(["district"], {("a",): 126, ("b",): 90})
    check = check_differencing(coarse, [fine], T)
    assert check.status == FAIL and "(a) by (district) against job-2 (finer release): a group of 6" in check.explanation


@pytest.mark.parametrize("suppressed, status", [(9, FAIL), (10, PASS), (25, PASS)])
def test_nested_remainder_boundary(suppressed, status):
    coarse = agg(["district"], {("a",): 100 + suppressed})
    fine = agg(["district", "sex"], {("a", "F"): 100})
    assert check_differencing(fine, [coarse], T).status == status


def test_complete_fine_table_consistent_with_its_margin_passes():
    coarse = agg(["district"], {("a",): 70, ("b",): 90})
    fine = agg(["district", "sex"], {("a", "F"): 30, ("a", "M"): 40, ("b", "F"): 45, ("b", "M"): 45})
    assert check_differencing(fine, [coarse], T).status == PASS


def test_grand_total_minus_released_districts_reveals_the_missing_district():
    total = agg([], {(): 307}, label="yearbook")
    districts = agg(["district"], {("a",): 100, ("b",): 200})
    check = check_differencing(districts, [total], T)
    assert check.status == FAIL and "() by (total) against yearbook" in check.explanation


def test_suppressed_cells_may_be_none_or_nan():
    coarse = agg(["district"], {("a",): 104})
    fine = agg(["district", "sex"], {("a", "F"): 100, ("a", "M"): math.nan, ("a", "X"): None})
    assert check_differencing(fine, [coarse], T).status == FAIL


def test_a_coarse_cell_with_no_released_fine_cells_gives_nothing_to_subtract():
    coarse = agg(["district"], {("a",): 5, ("b",): 200})
    fine = agg(["district", "sex"], {("b", "F"): 100, ("b", "M"): 100})
    assert check_differencing(fine, [coarse], T).status == PASS


# --- (c) one-dimensional margins against a two-way table ------------------------------------

def test_margins_by_each_variable_against_a_two_way_table():
    by_sex = agg(["sex"], {("F",): 200, ("M",): 57}, label="margin-sex")
    by_district = agg(["district"], {("a",): 150, ("b",): 107}, label="margin-district")
    # (b, M) is suppressed (7 people): both margins give it back.
    two_way = agg(["district", "sex"], {("a", "F"): 100, ("a", "M"): 50, ("b", "F"): 100})
    findings = find_differences(two_way, [by_sex, by_district], T)
    assert {(f.other, f.key, f.gap) for f in findings} == {("margin-sex", ("M",), 7.0),
                                                           ("margin-district", ("b",), 7.0)}
    check = check_differencing(two_way, [by_sex, by_district], T)
    assert check.status == FAIL and check.explanation.startswith("2 cell(s)")


def test_margins_with_a_complete_two_way_table_pass():
    by_sex = agg(["sex"], {("F",): 200, ("M",): 150})
    two_way = agg(["district", "sex"], {("a", "F"): 100, ("a", "M"): 50, ("b", "F"): 100, ("b", "M"): 100})
    assert check_differencing(two_way, [by_sex], T).status == PASS


# --- scope ---------------------------------------------------------------------------------

def test_other_dataset_versions_are_not_combined():
    old = agg(["district"], {("a",): 100}, version="sha256:old")
    new = agg(["district"], {("a",): 103}, version="sha256:new")
    check = check_differencing(new, [old], T)
    assert check.status == PASS and "0 earlier release(s)" in check.explanation


def test_non_nested_groupings_are_not_compared_documented_limitation():
    a_by_b = agg(["district", "sex"], {("a", "F"): 100})
    b_by_c = agg(["sex", "age"], {("F", "0-17"): 97})
    assert find_differences(a_by_b, [b_by_c], T) == []


def test_keys_stored_as_text_match_numeric_keys():
    old = agg(["year"], {("2024",): 100})
    new = agg(["year"], {(2024,): 96.0})
    assert check_differencing(new, [old], T).status == FAIL


def test_unlabelled_releases_are_named_by_position():
    old = [agg(["g"], {("x",): 100}, label="first"), agg(["g"], {("x",): 50})]
    check = check_differencing(agg(["g"], {("x",): 47}), old, T)
    assert "against earlier release #2 (same grouping)" in check.explanation


def test_explanation_lists_ten_cells_then_counts_the_rest():
    old = agg(["g"], {(f"c{i:02d}",): 100 for i in range(12)})
    new = agg(["g"], {(f"c{i:02d}",): 99 for i in range(12)})
    check = check_differencing(new, [old], T)
    assert check.explanation.startswith("12 cell(s)") and "and 2 more" in check.explanation


def test_cell_keys_must_match_the_grouping():
    with pytest.raises(ValueError):
        agg(["district", "sex"], {("a",): 10})
    with pytest.raises(ValueError):
        agg(["d", "d"], {("a", "b"): 10})


# --- properties ----------------------------------------------------------------------------

grids = st.dictionaries(st.tuples(st.sampled_from("abcdef"), st.sampled_from("FMX")),
                        st.integers(T, 500), min_size=1, max_size=18)


def margin(cells):
    out = {}
    for (d, _), v in cells.items():
        out[(d,)] = out.get((d,), 0) + v
    return out


@settings(max_examples=80, deadline=None)
@given(cells=grids)
def test_property_a_complete_table_never_conflicts_with_its_own_margin(cells):
    fine = agg(["district", "sex"], cells)
    assert check_differencing(fine, [agg(["district"], margin(cells))], T).status == PASS


@settings(max_examples=80, deadline=None)
@given(cells=grids, data=st.data(), small=st.integers(1, T - 1))
def test_property_suppressing_a_small_cell_under_a_published_margin_always_fails(cells, data, small):
    victim = data.draw(st.sampled_from(sorted(cells)))
    cells = {**cells, victim: small}
    published = agg(["district"], margin(cells))
    released = {k: v for k, v in cells.items() if k != victim}
    if not any(k[0] == victim[0] for k in released):
        return  # nothing else released under that margin cell: nothing to subtract
    check = check_differencing(agg(["district", "sex"], released), [published], T)
    assert check.status == FAIL and f"({victim[0]})" in check.explanation


@settings(max_examples=80, deadline=None)
@given(base=st.integers(0, 1000), gap=st.integers(-30, 30))
def test_property_same_grouping_fails_exactly_when_the_gap_is_between_zero_and_threshold(base, gap):
    old = agg(["g"], {("x",): base + max(0, -gap) + 30})
    new = agg(["g"], {("x",): base + max(0, -gap) + 30 + gap})
    assert (check_differencing(new, [old], T).status == FAIL) == (0 < abs(gap) < T)

"""Policy files: schema validation with file/line/field, level implications, hashing, diff."""
from datetime import date
from pathlib import Path

import pytest

from sandbox.core.errors import InvalidInput
from sandbox.core.manifest import parse_manifest
from sandbox.core.policy.file import PolicyError, check_against_manifest, diff_policies, parse_policy
from sandbox.core.policy.model import LEVEL_RULES, Budget, Policy, ResourceLimits

REPO = Path(__file__).resolve().parents[2]
FILE = "policies/demo.yaml"

VALID = """\
dataset: demo
classification: L2
modes: [query, program, reviewed]
release: auto
run_approval: auto
licences:
  - operator: operator_a
    expires: 2027-12-31
    purposes: [planning, research]
budget:
  epsilon_per_period: 2.0
  refresh: monthly
  lifetime_epsilon: 20.0
"""


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing `needle`, so tests don't hard-code numbers."""
    for i, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in text")


def fails(text: str, filename: str = FILE) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, filename)
    return info.value


def assert_problem(err: PolicyError, line: int, field: str, words: str):
    """Some reported problem sits at `line` on `field` and its message contains `words`."""
    for f, ln, fd, msg in err.problems:
        if ln == line and fd == field and words in msg:
            assert f"{f}:{ln}: {fd}: " in str(err)
            return
    raise AssertionError(f"no problem at {line} {field} {words!r} in:\n{err}")


# --- valid policies --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["health_visits", "enterprise_registry"])
def test_example_policies_in_repo_parse_and_match_their_manifests(name):
    text = (REPO / "policies" / f"{name}.yaml").read_text(encoding="utf-8")
    policy = parse_policy(text, f"policies/{name}.yaml")
    assert policy.dataset == name
    import yaml
    manifest = parse_manifest(yaml.safe_load((REPO / "datasets" / f"{name}.yaml").read_text(encoding="utf-8")))
    assert check_against_manifest(policy, manifest) == []
    assert policy.classification == manifest.classification


def test_health_visits_example_is_l3_dp_only_with_one_reviewer():
    p = parse_policy((REPO / "policies/health_visits.yaml").read_text(encoding="utf-8"),
                     "policies/health_visits.yaml")
    assert p.classification == "L3" and p.modes == {"query", "program"}
    assert p.release == "one_reviewer" and p.run_approval == "auto"
    assert p.licence("operator").purposes == {"public_health_planning", "medical_insurance_research"}
    assert p.licence("operator").expires == date(2027, 12, 31)
    assert p.licence("operator2") is not None
    assert (p.budget.epsilon_per_period, p.budget.refresh, p.budget.lifetime_epsilon) == (5.0, "monthly", 50.0)
    assert p.min_group_size == 10 and p.forbidden_columns == {"person_id"}


def test_enterprise_registry_example_auto_release_applies_to_query_mode_only():
    p = parse_policy((REPO / "policies/enterprise_registry.yaml").read_text(encoding="utf-8"),
                     "policies/enterprise_registry.yaml")
    assert p.classification == "L2" and p.release == "auto"
    assert p.licence("operator").purposes == {"business_environment_analysis", "credit_services"}
    assert (p.budget.epsilon_per_period, p.budget.refresh, p.budget.lifetime_epsilon) == (10.0, "monthly", 100.0)
    assert p.reviewers_required == 0
    assert p.reviewers_for("query") == 0
    assert p.reviewers_for("program") == 1
    assert p.reviewers_for("reviewed") == 1


def test_optional_keys_take_their_defaults():
    p = parse_policy(VALID, FILE)
    assert p.min_group_size == 10
    assert p.forbidden_columns == frozenset()
    assert p.limits == ResourceLimits()
    assert p.budget.delta_per_period == 0.0 and p.budget.lifetime_delta == 0.0
    assert p.licence("operator_a").revoked is False
    # No floor beyond epsilon > 0, no job quota, no dataset-wide cap: older files keep working.
    assert p.budget.min_epsilon_per_query == 0.0 and p.budget.jobs_per_period is None
    assert not p.budget.dataset_capped and "dataset_" not in p.text


def test_the_floor_quota_and_dataset_wide_caps_are_read():
    text = VALID.replace("  lifetime_epsilon: 20.0\n", "  lifetime_epsilon: 20.0\n  min_epsilon_per_query: 0.05\n"
                         "  jobs_per_period: 100\n  dataset_epsilon_per_period: 3\n  dataset_lifetime_epsilon: 30\n"
                         "  dataset_delta_per_period: 0\n")
    b = parse_policy(text, FILE).budget
    assert (b.min_epsilon_per_query, b.jobs_per_period) == (0.05, 100)
    assert (b.dataset_epsilon_per_period, b.dataset_lifetime_epsilon) == (3.0, 30.0)
    assert b.dataset_delta_per_period == 0.0 and b.dataset_lifetime_delta is None and b.dataset_capped
    assert type(b.jobs_per_period) is int


def test_example_policies_cap_the_dataset_and_set_a_floor_and_a_quota():
    for name in ("health_visits", "enterprise_registry"):
        b = parse_policy((REPO / "policies" / f"{name}.yaml").read_text(encoding="utf-8"),
                         f"policies/{name}.yaml").budget
        assert b.dataset_capped and b.min_epsilon_per_query > 0 and b.jobs_per_period >= 100
        assert b.epsilon_per_period <= b.dataset_epsilon_per_period
        assert b.lifetime_epsilon <= b.dataset_lifetime_epsilon


def test_exponent_numbers_without_a_dot_are_read_as_numbers():
    # YAML 1.1 reads 1e-6 as text; owners write it that way for delta.
    text = VALID.replace("  lifetime_epsilon: 20.0\n",
                         "  lifetime_epsilon: 20.0\n  delta_per_period: 1e-6\n  lifetime_delta: 1e-5\n")
    p = parse_policy(text, FILE)
    assert p.budget.delta_per_period == 1e-6 and p.budget.lifetime_delta == 1e-5


def test_quoted_and_unquoted_dates_are_both_accepted():
    p = parse_policy(VALID.replace("2027-12-31", "'2027-12-31'"), FILE)
    assert p.licence("operator_a").expires == date(2027, 12, 31)


def test_content_hash_is_sha256_of_canonical_text_and_ignores_line_endings():
    import hashlib
    p = parse_policy(VALID, FILE)
    assert p.content_hash == hashlib.sha256(VALID.encode()).hexdigest()
    assert parse_policy(VALID.replace("\n", "\r\n"), FILE).content_hash == p.content_hash
    assert parse_policy("# a comment\n" + VALID, FILE).content_hash != p.content_hash


def test_policy_built_in_code_gets_a_canonical_text_that_parses_back_to_it():
    p = parse_policy(VALID, FILE)
    rebuilt = Policy(dataset=p.dataset, classification=p.classification, modes=p.modes,
                     licences=p.licences, budget=p.budget, release=p.release)
    assert parse_policy(rebuilt.text, FILE) == rebuilt
    assert len(rebuilt.content_hash) == 64


def test_a_policy_changed_with_replace_does_not_keep_the_old_text_or_hash():
    from dataclasses import replace
    p = parse_policy(VALID, FILE)
    changed = replace(p, run_approval="owner")
    assert changed.content_hash != p.content_hash
    assert "run_approval: owner" in changed.text


def test_to_dict_is_plain_data():
    import json
    d = parse_policy(VALID, FILE).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["licences"][0]["expires"] == "2027-12-31"
    assert set(d) == {"dataset", "classification", "modes", "release", "run_approval", "licences",
                      "budget", "min_group_size", "forbidden_columns", "limits"}


def test_policy_error_is_an_invalid_input_with_file_line_and_field():
    err = fails(VALID.replace("2027-12-31", "2025-13-01"), "policies/health_visits.yaml")
    assert isinstance(err, InvalidInput)
    # dataset name mismatch and the date: the date is on the later line
    assert str(err).splitlines()[-1] == (
        "policies/health_visits.yaml:8: licences[0].expires: '2025-13-01' is not a date (YYYY-MM-DD)")
    d = err.to_dict()
    assert d["file"] == "policies/health_visits.yaml" and d["line"] == 1 and d["field"] == "dataset"


# --- every validation error names file, line and field ---------------------------------

BAD_CASES = [
    # (description, old, new, line needle, field, words)
    ("bad date", "2027-12-31", "2025-13-01", "2025-13-01", "licences[0].expires", "is not a date (YYYY-MM-DD)"),
    ("date as text", "2027-12-31", "next year", "next year", "licences[0].expires", "is not a date"),
    ("unknown level", "classification: L2", "classification: L5", "L5", "classification", "not one of L1, L2, L3, L4"),
    ("unknown mode", "[query, program, reviewed]", "[query, magic]", "magic", "modes[1]", "not one of"),
    ("duplicate mode", "[query, program, reviewed]", "[query, query]", "modes:", "modes[1]", "listed twice"),
    ("empty modes", "[query, program, reviewed]", "[]", "modes:", "modes", "at least one mode"),
    ("modes not a list", "[query, program, reviewed]", "query", "modes:", "modes", "must be a list"),
    ("unknown release", "release: auto", "release: whenever", "release:", "release", "not one of"),
    ("unknown run approval", "run_approval: auto", "run_approval: maybe", "run_approval:", "run_approval", "not one of"),
    ("unknown refresh", "refresh: monthly", "refresh: weekly", "refresh:", "budget.refresh", "not one of"),
    ("negative epsilon", "epsilon_per_period: 2.0", "epsilon_per_period: -1", "epsilon_per_period", "budget.epsilon_per_period", "must be > 0"),
    ("zero epsilon", "epsilon_per_period: 2.0", "epsilon_per_period: 0", "epsilon_per_period", "budget.epsilon_per_period", "must be > 0"),
    ("infinite epsilon", "epsilon_per_period: 2.0", "epsilon_per_period: .inf", "epsilon_per_period", "budget.epsilon_per_period", "finite"),
    ("huge epsilon", "epsilon_per_period: 2.0", "epsilon_per_period: 1" + "0" * 400, "epsilon_per_period", "budget.epsilon_per_period", "finite"),
    ("nan epsilon", "epsilon_per_period: 2.0", "epsilon_per_period: .nan", "epsilon_per_period", "budget.epsilon_per_period", "finite"),
    ("epsilon as text", "epsilon_per_period: 2.0", "epsilon_per_period: lots", "epsilon_per_period", "budget.epsilon_per_period", "is not a number"),
    ("epsilon quoted", "epsilon_per_period: 2.0", "epsilon_per_period: '2.0'", "epsilon_per_period", "budget.epsilon_per_period", "is not a number"),
    ("epsilon boolean", "epsilon_per_period: 2.0", "epsilon_per_period: yes", "epsilon_per_period", "budget.epsilon_per_period", "is not a number"),
    ("lifetime below period", "lifetime_epsilon: 20.0", "lifetime_epsilon: 1.0", "lifetime_epsilon", "budget.lifetime_epsilon", "must be >= epsilon_per_period"),
    ("delta of one", "  lifetime_epsilon: 20.0\n", "  lifetime_epsilon: 20.0\n  delta_per_period: 1.0\n", "delta_per_period", "budget.delta_per_period", "must be < 1"),
    ("lifetime delta below period delta", "  lifetime_epsilon: 20.0\n",
     "  lifetime_epsilon: 20.0\n  delta_per_period: 1.0e-6\n  lifetime_delta: 1.0e-7\n", "lifetime_delta", "budget.lifetime_delta", "must be >= delta_per_period"),
    ("floor negative", "  lifetime_epsilon: 20.0\n", "  lifetime_epsilon: 20.0\n  min_epsilon_per_query: -0.1\n", "min_epsilon_per_query", "budget.min_epsilon_per_query", "must be >= 0"),
    ("floor above the period", "  lifetime_epsilon: 20.0\n", "  lifetime_epsilon: 20.0\n  min_epsilon_per_query: 3\n", "min_epsilon_per_query", "budget.min_epsilon_per_query", "must be <= epsilon_per_period (2): a larger floor refuses every job"),
    ("floor as text", "  lifetime_epsilon: 20.0\n", "  lifetime_epsilon: 20.0\n  min_epsilon_per_query: tiny\n", "min_epsilon_per_query", "budget.min_epsilon_per_query", "is not a number"),
    ("quota zero", "  lifetime_epsilon: 20.0\n", "  lifetime_epsilon: 20.0\n  jobs_per_period: 0\n", "jobs_per_period", "budget.jobs_per_period", "must be >= 1"),
    ("quota fractional", "  lifetime_epsilon: 20.0\n", "  lifetime_epsilon: 20.0\n  jobs_per_period: 2.5\n", "jobs_per_period", "budget.jobs_per_period", "is not an integer"),
    ("dataset cap zero", "  lifetime_epsilon: 20.0\n", "  lifetime_epsilon: 20.0\n  dataset_epsilon_per_period: 0\n", "dataset_epsilon_per_period", "budget.dataset_epsilon_per_period", "must be > 0"),
    ("dataset cap below an operator's", "  lifetime_epsilon: 20.0\n", "  lifetime_epsilon: 20.0\n  dataset_epsilon_per_period: 1.5\n", "dataset_epsilon_per_period", "budget.dataset_epsilon_per_period", "must be >= epsilon_per_period (2)"),
    ("dataset lifetime below an operator's", "  lifetime_epsilon: 20.0\n", "  lifetime_epsilon: 20.0\n  dataset_lifetime_epsilon: 10\n", "dataset_lifetime_epsilon", "budget.dataset_lifetime_epsilon", "must be >= lifetime_epsilon (20)"),
    ("dataset lifetime below its period", "  lifetime_epsilon: 20.0\n", "  lifetime_epsilon: 20.0\n  dataset_epsilon_per_period: 30\n  dataset_lifetime_epsilon: 25\n", "dataset_lifetime_epsilon", "budget.dataset_lifetime_epsilon", "must be >= dataset_epsilon_per_period (30)"),
    ("dataset delta of one", "  lifetime_epsilon: 20.0\n", "  lifetime_epsilon: 20.0\n  dataset_lifetime_delta: 1\n", "dataset_lifetime_delta", "budget.dataset_lifetime_delta", "must be < 1"),
    ("dataset delta below an operator's", "  lifetime_epsilon: 20.0\n", "  lifetime_epsilon: 20.0\n  delta_per_period: 1e-6\n  lifetime_delta: 1e-5\n  dataset_delta_per_period: 1e-7\n", "dataset_delta_per_period", "budget.dataset_delta_per_period", "must be >= delta_per_period (1e-06)"),
    ("missing budget key", "  refresh: monthly\n", "", "budget:", "budget.refresh", "is required"),
    ("unknown budget key", "  refresh: monthly\n", "  refresh: monthly\n  rollover: true\n", "rollover", "budget.rollover", "unknown key"),
    ("unknown top-level key", "dataset: demo\n", "dataset: demo\nowner_email: x@y\n", "owner_email", "owner_email", "unknown key"),
    ("duplicate key", "release: auto\n", "release: auto\nrelease: one_reviewer\n", "release: one_reviewer", "release", "duplicate key"),
    ("missing top-level key", "run_approval: auto\n", "", "dataset:", "run_approval", "is required"),
    ("operator a boolean", "operator: operator_a", "operator: no", "operator: no", "licences[0].operator", "must be text"),
    ("operator blank", "operator: operator_a", "operator: ''", "operator:", "licences[0].operator", "characters"),
    ("empty purposes", "[planning, research]", "[]", "purposes:", "licences[0].purposes", "at least one purpose"),
    ("revoked not boolean", "purposes: [planning, research]\n", "purposes: [planning, research]\n    revoked: sometimes\n", "revoked", "licences[0].revoked", "true or false"),
    ("unknown licence key", "purposes: [planning, research]\n", "purposes: [planning, research]\n    seats: 3\n", "seats", "licences[0].seats", "unknown key"),
    ("licence missing expiry", "    expires: 2027-12-31\n", "", "- operator", "licences[0].expires", "is required"),
    ("licence not a mapping", "  - operator: operator_a\n    expires: 2027-12-31\n    purposes: [planning, research]\n", "  - operator_a\n", "- operator_a", "licences[0]", "must be a mapping"),
    ("dataset not a name", "dataset: demo", "dataset: Demo Set", "dataset:", "dataset", "lower-case"),
    ("group size zero", "run_approval: auto\n", "run_approval: auto\nmin_group_size: 0\n", "min_group_size", "min_group_size", "must be >= 1"),
    ("group size fractional", "run_approval: auto\n", "run_approval: auto\nmin_group_size: 2.5\n", "min_group_size", "min_group_size", "is not an integer"),
    ("forbidden column twice", "run_approval: auto\n", "run_approval: auto\nforbidden_columns: [a, a]\n", "forbidden_columns", "forbidden_columns[1]", "listed twice"),
    ("memory over cap", "run_approval: auto\n", "run_approval: auto\nlimits: {memory_mb: 1000000}\n", "limits", "limits.memory_mb", "must be <= 65536"),
    ("cpus zero", "run_approval: auto\n", "run_approval: auto\nlimits: {cpus: 0}\n", "limits", "limits.cpus", "must be >= 0.1"),
    ("wall time not integer", "run_approval: auto\n", "run_approval: auto\nlimits: {wall_seconds: 1.5}\n", "limits", "limits.wall_seconds", "is not an integer"),
    ("output bytes negative", "run_approval: auto\n", "run_approval: auto\nlimits: {output_bytes: -5}\n", "limits", "limits.output_bytes", "must be >= 1"),
    ("unknown limit", "run_approval: auto\n", "run_approval: auto\nlimits: {gpus: 1}\n", "limits", "limits.gpus", "unknown key"),
]


@pytest.mark.parametrize("desc,old,new,needle,field,words", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_each_validation_error_names_file_line_and_field(desc, old, new, needle, field, words):
    assert old in VALID
    text = VALID.replace(old, new, 1)
    err = fails(text)
    assert_problem(err, line_of(text, needle), field, words)


def test_duplicate_licence_for_one_operator_is_refused_at_the_second_one():
    text = VALID.replace("budget:", "  - operator: operator_a\n    expires: 2026-01-01\n"
                                    "    purposes: [planning]\nbudget:")
    err = fails(text)
    assert_problem(err, line_of(text, "expires: 2026-01-01") - 1, "licences[1].operator", "already has a licence")


def test_dataset_must_match_the_file_name():
    err = fails(VALID, "policies/health_visits.yaml")
    assert_problem(err, 1, "dataset", "does not match the file name health_visits.yaml")
    assert parse_policy(VALID, "<stdin>").dataset == "demo"


def test_all_problems_are_reported_in_file_order():
    text = VALID.replace("classification: L2", "classification: L9").replace("refresh: monthly", "refresh: hourly")
    err = fails(text)
    assert [p[2] for p in err.problems] == ["classification", "budget.refresh"]
    assert err.line == 2 and err.field == "classification"


@pytest.mark.parametrize("text,words", [
    ("dataset: [unclosed\n", "not valid YAML"),
    ("", "policy is empty"),
    ("# only a comment\n", "policy is empty"),
    ("- a list\n", "must be a mapping"),
    ("a: 1\n---\nb: 2\n", "not valid YAML"),
])
def test_unreadable_documents_are_refused_with_a_line(text, words):
    err = fails(text)
    assert words in str(err) and err.line >= 1 and err.file == FILE


def test_yaml_python_tags_are_refused_not_executed():
    text = VALID.replace("release: auto", "release: !!python/object/apply:os.system [echo hi]")
    err = fails(text)
    assert_problem(err, line_of(text, "release:"), "release", "not one of")


# --- classification implications -------------------------------------------------------

def level_text(level, modes="[query, program]", release="one_reviewer"):
    return (VALID.replace("classification: L2", f"classification: {level}")
            .replace("[query, program, reviewed]", modes).replace("release: auto", f"release: {release}"))


@pytest.mark.parametrize("level", ["L1", "L2"])
@pytest.mark.parametrize("release", ["auto", "one_reviewer", "two_reviewers"])
def test_l1_and_l2_allow_any_mode_and_any_release_rule(level, release):
    p = parse_policy(level_text(level, "[query, program, reviewed]", release), FILE)
    assert p.modes == {"query", "program", "reviewed"} and p.release == release


@pytest.mark.parametrize("level", ["L3", "L4"])
def test_l3_and_l4_refuse_reviewed_mode_naming_the_list_item(level):
    text = level_text(level, "[query, reviewed]", "two_reviewers")
    err = fails(text)
    assert_problem(err, line_of(text, "modes:"), "modes[1]", f"not allowed at classification {level}")


def test_l3_refuses_automatic_release():
    text = level_text("L3", release="auto")
    err = fails(text)
    assert_problem(err, line_of(text, "release:"), "release", "not allowed at classification L3")


@pytest.mark.parametrize("release,reviewers", [("one_reviewer", 1), ("two_reviewers", 2)])
def test_l3_accepts_one_or_two_reviewers(release, reviewers):
    p = parse_policy(level_text("L3", release=release), FILE)
    assert p.reviewers_required == reviewers
    assert all(p.reviewers_for(m) == reviewers for m in ("query", "program"))


@pytest.mark.parametrize("release", ["auto", "one_reviewer"])
def test_l4_requires_two_reviewers(release):
    text = level_text("L4", release=release)
    err = fails(text)
    assert_problem(err, line_of(text, "release:"), "release", "not allowed at classification L4")


def test_l4_with_dp_modes_and_two_reviewers_is_valid():
    assert parse_policy(level_text("L4", release="two_reviewers"), FILE).reviewers_required == 2


def test_level_rules_table_matches_the_team_decision():
    assert LEVEL_RULES["L3"] == ({"query", "program"}, {"one_reviewer", "two_reviewers"})
    assert LEVEL_RULES["L4"] == ({"query", "program"}, {"two_reviewers"})
    assert LEVEL_RULES["L1"] == LEVEL_RULES["L2"]
    assert LEVEL_RULES["L2"][0] == {"query", "program", "reviewed"}


# --- direct construction guards ----------------------------------------------------------

def test_budget_built_in_code_refuses_lifetime_below_period():
    with pytest.raises(InvalidInput):
        Budget(epsilon_per_period=2.0, refresh="monthly", lifetime_epsilon=1.0)
    with pytest.raises(InvalidInput):
        Budget(epsilon_per_period=float("nan"), refresh="monthly", lifetime_epsilon=1.0)


@pytest.mark.parametrize("field,value", [("min_epsilon_per_query", 3.0), ("min_epsilon_per_query", -1.0),
                                         ("jobs_per_period", 0), ("jobs_per_period", 2.5),
                                         ("dataset_epsilon_per_period", 1.0), ("dataset_lifetime_epsilon", 0.0),
                                         ("dataset_lifetime_delta", 1.0), ("dataset_delta_per_period", float("inf"))])
def test_budget_built_in_code_refuses_a_bad_floor_quota_or_dataset_cap(field, value):
    with pytest.raises(InvalidInput) as info:
        Budget(epsilon_per_period=2.0, refresh="monthly", lifetime_epsilon=20.0, **{field: value})
    assert info.value.field == f"budget.{field}"


def test_a_policy_with_the_new_keys_built_in_code_parses_back_to_it():
    p = parse_policy(VALID, FILE)
    b = Budget(epsilon_per_period=2.0, refresh="monthly", lifetime_epsilon=20.0, min_epsilon_per_query=0.1,
               jobs_per_period=7, dataset_epsilon_per_period=4.0, dataset_lifetime_epsilon=40.0)
    rebuilt = Policy(dataset=p.dataset, classification=p.classification, modes=p.modes, licences=p.licences,
                     budget=b, release=p.release)
    assert parse_policy(rebuilt.text, FILE) == rebuilt


# --- diff ------------------------------------------------------------------------------

def test_diff_shows_unified_diff_and_semantic_summary():
    new = VALID.replace("epsilon_per_period: 2.0", "epsilon_per_period: 3.0").replace(
        "budget:", "  - operator: operator_b\n    expires: 2026-06-30\n    purposes: [planning]\nbudget:")
    out = diff_policies(VALID, new, "policies/demo.yaml (applied)", "policies/demo.yaml")
    assert "--- policies/demo.yaml (applied)" in out and "+++ policies/demo.yaml" in out
    assert "-  epsilon_per_period: 2.0" in out and "+  epsilon_per_period: 3.0" in out
    assert "budget.epsilon_per_period: 2.0 -> 3.0" in out
    assert "licence added: operator_b" in out


def test_diff_summarises_removed_licences_set_changes_and_licence_fields():
    new = (VALID.replace("[query, program, reviewed]", "[query, program]")
           .replace("2027-12-31", "2026-12-31").replace("[planning, research]", "[planning, audit]"))
    out = diff_policies(VALID, new, "applied", "policies/demo.yaml")
    assert "modes: removed reviewed" in out
    assert "licences[operator_a].expires: 2027-12-31 -> 2026-12-31" in out
    assert "licences[operator_a].purposes: added audit; removed research" in out
    removed = diff_policies(new, new.split("licences:")[0] + "licences: []\n" + "budget:" + new.split("budget:")[1],
                            "applied", "demo.yaml")
    assert "licence removed: operator_a" in removed


def test_diff_summarises_a_dataset_wide_cap_added_and_removed():
    capped = VALID.replace("  lifetime_epsilon: 20.0\n", "  lifetime_epsilon: 20.0\n  dataset_lifetime_epsilon: 60.0\n")
    assert "budget.dataset_lifetime_epsilon: None -> 60.0" in diff_policies(VALID, capped, "a", "b")
    assert "budget.dataset_lifetime_epsilon: 60.0 -> None" in diff_policies(capped, VALID, "a", "b")


def test_diff_of_a_first_policy_and_of_comment_only_changes():
    assert "new policy for demo" in diff_policies(None, VALID, "none", "demo.yaml")
    assert "no semantic changes" in diff_policies(VALID, "# why\n" + VALID, "a", "b")
    assert diff_policies(VALID, VALID, "a", "b").endswith("Summary:\n  no changes\n")


def test_diff_refuses_an_invalid_new_policy():
    with pytest.raises(PolicyError):
        diff_policies(VALID, VALID.replace("L2", "L7"), "a", "b")


def test_check_against_manifest_flags_a_lower_grade_and_unknown_forbidden_columns():
    manifest = parse_manifest({"name": "demo", "classification": "L3", "privacy_unit": "id",
                               "max_rows_per_unit": 1,
                               "columns": [{"name": "id", "type": "int64", "kind": "identifier"}]})
    p = parse_policy(VALID.replace("run_approval: auto", "run_approval: auto\nforbidden_columns: [idd]"), FILE)
    problems = check_against_manifest(p, manifest)
    assert any("below the manifest's L3" in m for m in problems)
    assert any("'idd' is not a column" in m for m in problems)

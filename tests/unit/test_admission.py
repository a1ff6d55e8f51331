"""Admission: a pure decision that lists every reason for a denial."""
import re
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from sandbox.core import admission
from sandbox.core.admission import Decision, JobRequest
from sandbox.core.errors import Text
from sandbox.core.ledger import LedgerEntry, balance, dataset_balance
from sandbox.core.policy.file import parse_policy

REPO = Path(__file__).resolve().parents[2]
TODAY = date(2025, 3, 10)
NOW = datetime(2025, 3, 10, 9, tzinfo=timezone.utc)


def policy(name="health_visits"):
    path = f"policies/{name}.yaml"
    return parse_policy((REPO / path).read_text(encoding="utf-8"), path)


def job(**changes) -> JobRequest:
    base = JobRequest(operator="operator", dataset="health_visits", mode="query",
                      purpose="public_health_planning", epsilon=1.0)
    return replace(base, **changes)


def decide(p, j, bal, today, everyone=()):
    """admission.decide, with the dataset-wide balance of `everyone`'s entries (every
    operator's, empty by default)."""
    return admission.decide(p, j, bal, today, dataset_balance(list(everyone), p.budget, NOW))


def fresh(p):
    return balance([], p.budget, NOW)


def charged(amounts, prefix="j"):
    """Ledger entries charging jobs of the given (epsilon, when) in order."""
    entries = []
    for i, (eps, when) in enumerate(amounts):
        r = LedgerEntry.reserve(f"{prefix}{i}", eps, 0.0, when)
        entries += [r, r.charge(when)]
    return entries


def spent(p, amounts):
    """A balance after charging jobs of the given (epsilon, when) in order."""
    return balance(charged(amounts), p.budget, NOW)


def test_a_licensed_operator_with_budget_is_admitted():
    p = policy()
    d = decide(p, job(), fresh(p), TODAY)
    assert d == Decision(admitted=True, reasons=(), needs_owner_approval=False, reviewers_required=1)


def test_the_licence_is_still_valid_on_its_expiry_day():
    p = policy()
    assert decide(p, job(), fresh(p), date(2027, 12, 31)).admitted


def test_an_expired_licence_is_denied_with_its_expiry_date():
    p = policy()
    d = decide(p, job(), fresh(p), date(2028, 1, 1))
    assert not d.admitted
    assert d.reasons == ("The licence of operator 'operator' for 'health_visits' expired on 2027-12-31; "
                         "ask the data owner to renew it.",)


def test_a_revoked_licence_is_denied():
    p = policy()
    p = replace(p, licences=tuple(replace(lic, revoked=True) for lic in p.licences))
    d = decide(p, job(), fresh(p), TODAY)
    assert not d.admitted and len(d.reasons) == 1 and "has been revoked" in d.reasons[0]


def test_an_unlicensed_operator_is_denied():
    p = policy()
    d = decide(p, job(operator="stranger"), fresh(p), TODAY)
    assert d.reasons == ("Operator 'stranger' holds no licence for 'health_visits'; ask the data owner for one.",)


def test_a_purpose_outside_the_licence_is_denied_listing_the_licensed_purposes():
    p = policy()
    d = decide(p, job(purpose="marketing"), fresh(p), TODAY)
    assert d.reasons == ("Purpose 'marketing' is not licensed for operator 'operator' on 'health_visits'; "
                         "licensed purposes: medical_insurance_research, public_health_planning.",)


def test_purposes_are_per_operator():
    p = policy()
    assert decide(p, job(operator="operator2", purpose="public_health_planning"), fresh(p), TODAY).admitted
    d = decide(p, job(operator="operator2", purpose="medical_insurance_research"), fresh(p), TODAY)
    assert not d.admitted and "licensed purposes: public_health_planning." in d.reasons[0]


def test_a_mode_the_policy_does_not_allow_is_denied():
    p = policy()
    d = decide(p, job(mode="reviewed", epsilon=0.0), fresh(p), TODAY)
    assert d.reasons == ("Mode 'reviewed' is not allowed on 'health_visits'; allowed modes: program, query.",)


def test_a_job_for_another_dataset_is_denied():
    p = policy()
    d = decide(p, job(dataset="enterprise_registry"), fresh(p), TODAY)
    assert not d.admitted
    assert "is for dataset 'enterprise_registry' but this policy governs 'health_visits'" in d.reasons[0]


def test_a_cost_above_the_period_allowance_is_denied_with_cost_and_available():
    p = policy()  # 5.0 per month, 50 lifetime
    bal = spent(p, [(4.5, NOW)])
    d = decide(p, job(epsilon=1.0), bal, TODAY)
    assert d.reasons == ("Privacy cost epsilon 1 exceeds the 0.5 epsilon available in the current monthly "
                         "period; it refreshes on 2025-04-01.",)
    assert decide(p, job(epsilon=0.5), bal, TODAY).admitted


def test_a_cost_above_the_lifetime_cap_is_denied_even_in_a_fresh_period():
    p = policy()
    history = [(5.0, datetime(2024, m, 5, tzinfo=timezone.utc)) for m in range(1, 10)]  # 45 of 50
    history.append((4.8, datetime(2024, 10, 5, tzinfo=timezone.utc)))
    bal = spent(p, history)
    assert bal.period_available == 5
    d = decide(p, job(epsilon=1.0), bal, TODAY)
    assert d.reasons == ("Privacy cost epsilon 1 exceeds the 0.2 epsilon left of the lifetime cap 50, "
                         "which never refreshes.",)


def test_delta_beyond_the_budget_is_denied():
    p = policy("enterprise_registry")  # grants no delta
    d = decide(p, job(dataset="enterprise_registry", purpose="credit_services", delta=1e-6), fresh(p), TODAY)
    assert any("Privacy cost delta 1e-06 exceeds the 0 delta available" in r for r in d.reasons)


@pytest.mark.parametrize("eps,delta", [(-1.0, 0.0), (float("nan"), 0.0), (float("inf"), 0.0), (1.0, 1.0)])
def test_a_malformed_cost_is_denied_not_raised(eps, delta):
    p = policy()
    d = decide(p, job(epsilon=eps, delta=delta), fresh(p), TODAY)
    assert not d.admitted and any("privacy cost must be finite" in r for r in d.reasons)


def test_a_dp_job_must_declare_a_positive_epsilon():
    p = policy()
    d = decide(p, job(epsilon=0.0), fresh(p), TODAY)
    assert not d.admitted and "needs a privacy cost epsilon > 0" in d.reasons[0]


def test_every_reason_is_reported_at_once():
    p = policy()
    p = replace(p, licences=tuple(replace(lic, revoked=True) for lic in p.licences))
    d = decide(p, job(mode="reviewed", purpose="marketing", epsilon=60.0), fresh(p), date(2028, 1, 1))
    assert not d.admitted
    text = "\n".join(d.reasons)
    for words in ("has been revoked", "expired on 2027-12-31", "Purpose 'marketing'", "Mode 'reviewed'",
                  "exceeds the 5 epsilon available", "exceeds the 50 epsilon left of the lifetime cap",
                  "dataset-wide cap on 'health_visits'"):
        assert words in text
    assert len(d.reasons) == 7


def test_denials_quote_only_policy_request_and_budget_numbers():
    # Every number in a reason is the request's cost, a budget amount or a policy date:
    # nothing else exists for decide() to quote, and it must stay that way.
    p = policy()
    d = decide(p, job(operator="x", purpose="y", mode="z", epsilon=60.0), spent(p, [(1.0, NOW)]), TODAY,
               charged([(1.0, NOW)]) + charged([(6.5, NOW)], "other"))
    assert len(d.reasons) == 5
    quoted = set()
    for reason in d.reasons:
        quoted |= set(re.findall(r"\d+(?:[.-]\d+)*", reason))
    assert quoted == {"60", "4", "49", "50", "2025-04-01"}


def test_owner_approval_and_reviewers_come_from_the_policy():
    p = replace(policy("enterprise_registry"), run_approval="owner")
    j = job(dataset="enterprise_registry", purpose="credit_services")
    q = decide(p, j, fresh(p), TODAY)
    assert q.admitted and q.needs_owner_approval and q.reviewers_required == 0
    assert decide(p, replace(j, mode="program"), fresh(p), TODAY).reviewers_required == 1
    r = decide(p, replace(j, mode="reviewed", epsilon=0.0), fresh(p), TODAY)
    assert r.admitted and r.reviewers_required == 1


def test_decision_to_dict_is_plain_data():
    p = policy()
    assert decide(p, job(mode="bad"), fresh(p), TODAY).to_dict()["reasons"][0].startswith("Mode 'bad'")


# --- dataset-wide caps, the floor per query, the job quota -----------------------------

def test_a_dataset_wide_cap_counts_every_operators_spending_and_quotes_none_of_it():
    p = policy()  # 5.0 per operator and month; 8.0 for all operators together
    others = charged([(4.0, NOW), (3.5, NOW)], "op2-")
    d = decide(p, job(epsilon=1.0), fresh(p), TODAY, others)
    assert d.reasons == ("Privacy cost epsilon 1 does not fit in what is left of the dataset-wide cap on "
                         "'health_visits', shared by every licensed operator, in the current monthly period; "
                         "it refreshes on 2025-04-01.",)
    assert decide(p, job(epsilon=0.5), fresh(p), TODAY, others).admitted


def test_the_dataset_wide_lifetime_cap_holds_in_a_fresh_period():
    p = policy()  # 80 lifetime for all operators together
    history = [(7.9, datetime(2024, m, 5, tzinfo=timezone.utc)) for m in range(1, 11)]  # 79 of 80
    d = decide(p, job(epsilon=1.5), fresh(p), TODAY, charged(history, "op2-"))
    assert d.reasons == ("Privacy cost epsilon 1.5 does not fit in what is left of the dataset-wide lifetime cap "
                         "on 'health_visits', shared by every licensed operator, which never refreshes.",)
    assert decide(p, job(epsilon=1.0), fresh(p), TODAY, charged(history, "op2-")).admitted


def test_released_reservations_of_other_operators_do_not_count_dataset_wide():
    p = policy()
    r = LedgerEntry.reserve("op2-0", 5.0, 0.0, NOW)
    others = charged([(2.5, NOW)], "op2-x") + [r, r.release(NOW)]
    assert decide(p, job(epsilon=5.0), fresh(p), TODAY, others).admitted
    assert not decide(p, job(epsilon=5.0), fresh(p), TODAY, others + [LedgerEntry.reserve("op2-1", 1.0, 0.0, NOW)]
                      ).admitted  # an outstanding reservation counts


def test_a_policy_with_a_dataset_wide_cap_needs_the_dataset_wide_balance():
    p = policy()
    with pytest.raises(ValueError):
        admission.decide(p, job(), fresh(p), TODAY)
    uncapped = replace(p, budget=replace(p.budget, dataset_epsilon_per_period=None, dataset_lifetime_epsilon=None,
                                         dataset_delta_per_period=None, dataset_lifetime_delta=None))
    assert admission.decide(uncapped, job(), fresh(uncapped), TODAY).admitted


def test_a_dry_runs_coarse_view_admits_what_fits_the_floor_and_hides_the_remainder():
    p = policy()
    others = charged([(7.0, NOW)], "op2-")  # 1.0 left dataset-wide this month
    wide = dataset_balance(others, p.budget, NOW)
    coarse = wide.for_operator(p.budget.min_epsilon_per_query)
    assert coarse.period_spent == 0 and coarse.period_available is None
    # The true check refuses 2.0; the coarse one cannot tell, so a dry run cannot bisect the remainder.
    assert not admission.decide(p, job(epsilon=2.0), fresh(p), TODAY, wide).admitted
    assert admission.decide(p, job(epsilon=2.0), fresh(p), TODAY, coarse).admitted
    spent_out = dataset_balance(charged([(4.0, NOW), (3.99, NOW)], "op2-"), p.budget, NOW)  # 0.01 < floor 0.05
    assert spent_out.blocks(p.budget.min_epsilon_per_query) and not wide.blocks(p.budget.min_epsilon_per_query)
    d = admission.decide(p, job(epsilon=0.05), fresh(p), TODAY, spent_out.for_operator(0.05))
    assert not d.admitted and "dataset-wide cap" in d.reasons[0]


def test_a_query_below_the_floor_is_denied_naming_the_floor_and_the_smallest_cost():
    p = policy()  # floor 0.05 per query
    d = decide(p, job(epsilon=0.33, query_epsilons=(0.3, 0.01, 0.02)), fresh(p), TODAY)
    assert d.reasons == ("Each query on 'health_visits' must cost at least epsilon 0.05 (the policy's floor per "
                         "query; a program job counts as one query); 2 of this job's queries cost less, the "
                         "smallest 0.01.",)
    assert decide(p, job(epsilon=0.35, query_epsilons=(0.3, 0.05)), fresh(p), TODAY).admitted


def test_a_program_job_is_one_query_for_the_floor():
    p = policy()
    assert not decide(p, job(mode="program", epsilon=0.04), fresh(p), TODAY).admitted
    assert decide(p, job(mode="program", epsilon=0.05), fresh(p), TODAY).admitted


def test_the_floor_does_not_apply_to_reviewed_mode():
    p = policy("enterprise_registry")
    j = job(dataset="enterprise_registry", purpose="credit_services", mode="reviewed", epsilon=0.0)
    assert decide(p, j, fresh(p), TODAY).admitted


def test_the_job_quota_counts_this_periods_admitted_jobs_of_this_operator():
    p = replace(policy(), budget=replace(policy().budget, jobs_per_period=3))
    last_month = datetime(2025, 2, 20, tzinfo=timezone.utc)
    entries = charged([(0.1, NOW), (0.1, NOW), (0.1, last_month)])
    cancelled = LedgerEntry.reserve("c", 0.1, 0.0, NOW)
    entries += [cancelled, cancelled.release(NOW)]
    bal = balance(entries, p.budget, NOW)
    assert bal.period_jobs == 2 and bal.period_jobs_available == 1
    assert decide(p, job(), bal, TODAY).admitted
    full = balance(entries + [LedgerEntry.reserve("q", 0.1, 0.0, NOW)], p.budget, NOW)
    d = decide(p, job(), full, TODAY)
    assert d.reasons == ("Operator 'operator' has had 3 jobs admitted on 'health_visits', the policy's quota for "
                         "the current monthly period; it refreshes on 2025-04-01.",)


def test_new_reasons_are_texts_that_quote_only_policy_and_request_values():
    p = replace(policy(), budget=replace(policy().budget, jobs_per_period=1))
    bal = balance(charged([(1.25, NOW)]), p.budget, NOW)
    d = decide(p, job(epsilon=3.125, query_epsilons=(3.0, 0.125 / 4)), bal, TODAY,
               charged([(1.25, NOW)]) + charged([(4.5, NOW)], "op2-"))
    assert len(d.reasons) == 3 and all(type(r) is Text for r in d.reasons)
    quoted = set()
    for reason in d.reasons:
        quoted |= set(re.findall(r"\d+(?:[.-]\d+)*", reason))
    # 1: the quota; 3.125: the cost; 0.05, 0.03125, 1 (count): the floor, the smallest query, how many.
    assert quoted == {"1", "3.125", "0.05", "0.03125", "2025-04-01"}
    assert not {"4.5", "5.75", "2.25", "1.25"} & quoted  # nothing of anyone's spending

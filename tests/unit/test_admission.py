"""Admission: a pure decision that lists every reason for a denial."""
import re
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from sandbox.core.admission import Decision, JobRequest, decide
from sandbox.core.ledger import LedgerEntry, balance
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


def fresh(p):
    return balance([], p.budget, NOW)


def spent(p, amounts):
    """A balance after charging jobs of the given (epsilon, when) in order."""
    entries = []
    for i, (eps, when) in enumerate(amounts):
        r = LedgerEntry.reserve(f"j{i}", eps, 0.0, when)
        entries += [r, r.charge(when)]
    return balance(entries, p.budget, NOW)


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
                  "exceeds the 5 epsilon available", "exceeds the 50 epsilon left of the lifetime cap"):
        assert words in text
    assert len(d.reasons) == 6


def test_denials_quote_only_policy_request_and_budget_numbers():
    # Every number in a reason is the request's cost, a budget amount or a policy date:
    # nothing else exists for decide() to quote, and it must stay that way.
    p = policy()
    d = decide(p, job(operator="x", purpose="y", mode="z", epsilon=60.0), spent(p, [(1.0, NOW)]), TODAY)
    assert len(d.reasons) == 4
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

"""The dataset-wide cap, the floor per query and the job quota through the use cases (on the
in-memory fakes): admission counts every operator's spending, an operator learns only
whether the shared cap blocks them, owners and compliance see the dataset-wide usage."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sandbox import datagen
from sandbox.adapters.memory import MemoryRepository
from sandbox.adapters.queue import InProcessQueue
from sandbox.agent.backends.fake import FakeBackend
from sandbox.bootstrap import bootstrap
from sandbox.config import REPO_ROOT, load
from sandbox.core import states as st
from sandbox.core.errors import Forbidden

# health_visits: 5.0 per operator and month, 8.0 for all operators together, floor 0.05
# (operator2's licence renewed, so the test does not age).
POLICY = (REPO_ROOT / "policies" / "health_visits.yaml").read_text(encoding="utf-8").replace("2026-06-30",
                                                                                               "2099-12-31")


class Clock:
    def __init__(self):
        self.now = datetime(2027, 3, 10, 9, tzinfo=timezone.utc)

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "health_visits"
    datagen.generate(datagen.load_manifest(REPO_ROOT / "datasets" / "health_visits.yaml"), 200, out, seed=3)
    return out


def services(tmp_path, data, policy=POLICY):
    clock = Clock()
    svc = bootstrap(load({"SANDBOX_HOME": str(tmp_path / "home")}), repo=MemoryRepository(clock),
                    queue=InProcessQueue(), clock=clock, sleep=clock.advance,
                    backend_factory=lambda _classification=None: FakeBackend())
    for name, role in (("operator", st.OPERATOR), ("operator2", st.OPERATOR), ("owner", st.OWNER),
                       ("reviewer", st.COMPLIANCE)):
        svc.accounts.create_user(name, role, f"tok-{name}")
    owner = svc.accounts.user("owner")
    svc.owner.register_dataset(owner, REPO_ROOT / "datasets" / "health_visits.yaml", data)
    svc.owner.apply_policy(owner, policy, "policies/health_visits.yaml")
    return svc


def query(*epsilons) -> dict:
    return {"mode": "query", "dataset": "health_visits", "purpose": "public_health_planning",
            "queries": [{"name": f"q{i}", "statistic": "count", "epsilon": e} for i, e in enumerate(epsilons)]}


def submit(svc, who, *epsilons, dry_run=False):
    return svc.operator.submit(svc.accounts.user(who), query(*epsilons), dry_run=dry_run)


def test_the_dataset_wide_cap_counts_every_operators_reservations(tmp_path, data):
    svc = services(tmp_path, data)
    assert submit(svc, "operator", 4.0)["admitted"]
    assert submit(svc, "operator2", 3.5)["admitted"]
    refused = submit(svc, "operator2", 1.0)   # within operator2's own 5.0, not within 8.0 together
    assert not refused["admitted"]
    assert refused["reasons"] == ["Privacy cost epsilon 1 does not fit in what is left of the dataset-wide cap on "
                                  "'health_visits', shared by every licensed operator, in the current monthly "
                                  "period; it refreshes on 2027-04-01."]
    assert submit(svc, "operator2", 0.5)["admitted"]   # exactly 8.0 together


def test_an_operator_sees_only_whether_the_shared_cap_blocks_them(tmp_path, data):
    svc = services(tmp_path, data)
    op = svc.accounts.user("operator")
    assert submit(svc, "operator2", 5.0)["admitted"]
    assert submit(svc, "operator", 2.98)["admitted"]        # 0.02 left dataset-wide: below the floor
    mine = svc.views.balance(op, "health_visits")
    assert mine["dataset_cap_blocks"] is True and "dataset_wide" not in mine
    assert mine["period_available"] == pytest.approx(2.02)  # the operator's own allowance, unchanged
    owners_view = svc.views.balance(svc.accounts.user("owner"), "health_visits", "operator")
    assert owners_view["dataset_wide"]["period_reserved"] == pytest.approx(7.98)
    assert owners_view["dataset_wide"]["period_available"] == pytest.approx(0.02)


def test_a_dry_run_cannot_measure_what_other_operators_spent(tmp_path, data):
    svc = services(tmp_path, data)
    assert submit(svc, "operator2", 5.0)["admitted"]        # 3.0 left dataset-wide
    low, high = submit(svc, "operator", 2.0, dry_run=True), submit(svc, "operator", 4.0, dry_run=True)
    # The dry run judges the shared cap only as "blocks every job or not": both look alike.
    assert low["admitted"] and high["admitted"] and not high["dataset_cap_blocks"]
    assert "dataset_wide" not in high["balance_before"]
    assert not submit(svc, "operator", 4.0)["admitted"]      # the real submission is checked exactly
    assert submit(svc, "operator", 2.0)["admitted"]


def test_owners_and_compliance_see_the_dataset_wide_usage_operators_do_not(tmp_path, data):
    svc = services(tmp_path, data)
    submit(svc, "operator", 1.5)
    submit(svc, "operator2", 2.0)
    for who in ("owner", "reviewer"):
        usage = svc.views.dataset_usage(svc.accounts.user(who), "health_visits")
        assert usage["caps"]["dataset_epsilon_per_period"] == 8.0
        assert usage["period_reserved"] == 3.5 and usage["period_available"] == 4.5
    with pytest.raises(Forbidden):
        svc.views.dataset_usage(svc.accounts.user("operator"), "health_visits")
    with pytest.raises(Forbidden):
        svc.views.balance(svc.accounts.user("operator"), "health_visits", "operator2")


def test_a_query_below_the_floor_is_refused_at_submission(tmp_path, data):
    svc = services(tmp_path, data)
    out = submit(svc, "operator", 0.5, 0.01)
    assert not out["admitted"] and "must cost at least epsilon 0.05" in out["reasons"][0]
    assert out["job"]["state"] == "rejected"


def test_the_job_quota_refuses_the_next_job_of_the_period(tmp_path, data):
    svc = services(tmp_path, data, POLICY.replace("jobs_per_period: 200", "jobs_per_period: 2"))
    first = submit(svc, "operator", 0.1)["job"]["id"]
    submit(svc, "operator", 0.1)
    refused = submit(svc, "operator", 0.1)
    assert not refused["admitted"] and "has had 2 jobs admitted" in refused["reasons"][0]
    assert submit(svc, "operator2", 0.1)["admitted"]        # the quota is per operator
    svc.operator.cancel(svc.accounts.user("operator"), first)
    assert submit(svc, "operator", 0.1)["admitted"]         # a cancelled job gives its slot back


def test_a_jobs_charge_is_rounded_up_not_to_nearest(tmp_path, data):
    svc = services(tmp_path, data)
    out = submit(svc, "operator", 0.1, 0.1, 0.7)
    assert out["job"]["epsilon"] == 0.9

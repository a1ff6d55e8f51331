"""The budget ledger in the real store: concurrency and idempotence, on SQLite and PostgreSQL."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from sandbox.core import states as st
from sandbox.adapters.store.models import Job, LedgerEntry, User
from tests.conftest import OWNER, make_services

TIGHT_POLICY = """
dataset: health_visits
classification: L3
modes: [query]
release: one_reviewer
run_approval: auto
licences:
  - operator: operator
    expires: 2099-12-31
    purposes: [public_health_planning]
budget:
  epsilon_per_period: 1.0
  refresh: monthly
  lifetime_epsilon: 1.5
limits:
  wall_seconds: 60
"""


def spec(epsilon: float = 0.1) -> dict:
    return {"mode": "query", "dataset": "health_visits", "purpose": "public_health_planning",
            "queries": [{"name": "n", "statistic": "count", "epsilon": epsilon}]}


@pytest.fixture
def services(database_url, demo_datasets_dir, tmp_path):
    svc = make_services(tmp_path, demo_datasets_dir, database_url=database_url, policy=TIGHT_POLICY,
                        users=[("operator", "operator", "op-token")])
    yield svc
    svc.dispose()


def operator(svc) -> User:
    return svc.accounts.authenticate("op-token")


def test_200_concurrent_submissions_admit_exactly_what_the_budget_fits(services):
    user = operator(services)
    results, errors = [], []
    barrier = threading.Barrier(50)

    def submit_four():
        barrier.wait()
        for _ in range(4):
            try:
                results.append(services.operator.submit(user, spec(0.1))["admitted"])
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(e))

    threads = [threading.Thread(target=submit_four) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 200 and results.count(True) == 10
    bal = services.views.balance(user, "health_visits")
    assert bal["period_available"] == 0.0 and bal["period_reserved"] == pytest.approx(1.0)
    with services.store.transaction() as s:
        reserves = s.execute(select(LedgerEntry).where(LedgerEntry.kind == "reserve")).scalars().all()
        assert len(reserves) == 10
        assert s.execute(select(Job).where(Job.state == st.QUEUED)).scalars().all().__len__() == 10
    assert services.views.audit_verify()["ok"]


SHARED_POLICY = TIGHT_POLICY.replace("""    purposes: [public_health_planning]
""", """    purposes: [public_health_planning]
  - operator: operator2
    expires: 2099-12-31
    purposes: [public_health_planning]
""").replace("  lifetime_epsilon: 1.5\n", "  lifetime_epsilon: 1.5\n  dataset_epsilon_per_period: 1.5\n")


def test_concurrent_submissions_of_two_operators_admit_exactly_what_the_dataset_wide_cap_fits(
        database_url, demo_datasets_dir, tmp_path):
    # Each operator may spend 1.0 a month, both together 1.5: the dataset-wide lock must
    # serialize admissions across operators, or both would see room for the last 0.1.
    svc = make_services(tmp_path, demo_datasets_dir, database_url=database_url, policy=SHARED_POLICY,
                        users=[("operator", "operator", "op-token"), ("operator2", "operator", "op2-token")])
    try:
        users = [svc.accounts.authenticate("op-token"), svc.accounts.authenticate("op2-token")]
        results, errors = [], []
        barrier = threading.Barrier(40)

        def submit_three(user):
            barrier.wait()
            for _ in range(3):
                try:
                    results.append((user.name, svc.operator.submit(user, spec(0.1))["admitted"]))
                except Exception as e:  # noqa: BLE001 - collected and asserted below
                    errors.append(repr(e))

        threads = [threading.Thread(target=submit_three, args=(users[i % 2],)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        admitted = [name for name, ok in results if ok]
        assert len(results) == 120 and len(admitted) == 15
        assert admitted.count("operator") <= 10 and admitted.count("operator2") <= 10
        with svc.store.transaction() as s:
            assert len(s.execute(select(LedgerEntry).where(LedgerEntry.kind == "reserve")).scalars().all()) == 15
        wide = svc.views.dataset_usage(OWNER, "health_visits")
        assert wide["period_available"] == 0.0 and wide["period_reserved"] == pytest.approx(1.5)
    finally:
        svc.dispose()


def test_dry_run_reserves_nothing_and_shows_the_balance_after(services):
    user = operator(services)
    dry = services.operator.submit(user, spec(0.4), dry_run=True)
    assert dry["admitted"] and dry["balance_after"]["period_available"] == pytest.approx(0.6)
    assert services.views.balance(user, "health_visits")["period_available"] == pytest.approx(1.0)
    assert services.views.list_jobs(user) == []


def test_cancel_before_running_releases_and_a_charge_is_recorded_once(services):
    user = operator(services)
    first = services.operator.submit(user, spec(0.5))["job"]["id"]
    second = services.operator.submit(user, spec(0.5))["job"]["id"]
    assert not services.operator.submit(user, spec(0.1))["admitted"]
    services.operator.cancel(user, second)
    assert services.views.balance(user, "health_visits")["period_available"] == pytest.approx(0.5)
    # The worker claims the first job twice (a redelivered message): charged once.
    assert services.agent.claim(first) is not None
    assert services.agent.claim(first) is None
    with services.store.transaction() as s:
        kinds = sorted(e.kind for e in s.execute(select(LedgerEntry).where(LedgerEntry.job_id == first)).scalars())
    assert kinds == ["charge", "reserve"]


def test_period_refresh_and_lifetime_cap(services):
    user = operator(services)
    now = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    services.clock = lambda: now
    assert services.operator.submit(user, spec(1.0))["admitted"]
    assert not services.operator.submit(user, spec(0.1))["admitted"]       # period spent
    now = datetime(2026, 12, 1, 0, 0, 1, tzinfo=timezone.utc)
    services.clock = lambda: now
    assert services.operator.submit(user, spec(0.5))["admitted"]           # new month
    refused = services.operator.submit(user, spec(0.1))                     # lifetime 1.5 reached
    assert not refused["admitted"] and any("lifetime" in r for r in refused["reasons"])


def test_sweeper_requeues_a_job_whose_worker_vanished(services):
    user = operator(services)
    job_id = services.operator.submit(user, spec(0.1))["job"]["id"]
    assert services.agent.claim(job_id) is not None          # running, then the worker "dies"
    later = datetime.now(timezone.utc) + timedelta(seconds=60 + services.settings.lease_margin_seconds + 1)
    services.clock = lambda: later
    assert services.agent.sweep()["requeued"] == [job_id]
    assert services.agent.claim(job_id)["attempt"] == 2
    with services.store.transaction() as s:
        entries = s.execute(select(LedgerEntry).where(LedgerEntry.job_id == job_id)).scalars().all()
    assert sorted(e.kind for e in entries) == ["charge", "reserve"]


def test_an_operators_state_filter_is_what_they_see_and_applies_before_the_limit(services):
    user = operator(services)
    now = datetime.now(timezone.utc)
    old_released = services.operator.submit(user, spec(0.1))["job"]["id"]
    running = services.operator.submit(user, spec(0.1))["job"]["id"]
    assert services.agent.claim(running) is not None  # its outcome shows only after visible_after
    with services.store.transaction() as s:
        job = s.get(Job, old_released)
        job.state, job.visible_after, job.created_at = st.RELEASED, now - timedelta(hours=1), now - timedelta(days=9)
        early = s.get(Job, running)
        early.state = st.RELEASED  # released, but not yet visible to the operator
        # 500 newer jobs in another state: filtering after a 500-row limit would miss the old one.
        for i in range(500):
            s.add(Job(id=f"filler{i:04d}", operator="operator", dataset="health_visits", mode="query",
                      purpose="public_health_planning", spec={}, spec_hash="", epsilon=0.0,
                      state=st.CANCELLED, created_at=now))

    def ids(state):
        return [v["id"] for v in services.views.list_jobs(user, state)]

    assert ids("released") == [old_released]
    assert ids("in_progress") == [running]
    assert ids("cancelled") and running not in ids("cancelled")

"""Leases renewed by a live worker (issue 16): a program job whose blocks wait in the queue
behind other work outlasts the lease its claim set; the worker that holds it renews the
lease, so the sweeper never requeues it (it used to: "worker lost; lease expired", run
twice). A worker that stops renewing (killed) loses the job to the sweeper as before."""
from __future__ import annotations

from datetime import timedelta

from sandbox.adapters.memory import MemoryRepository
from sandbox.agent.leases import LeaseKeeper
from sandbox.agent.tasks import run_job_renewing
from sandbox.core import states as st
from tests.unit import test_lifecycle_fakes as fakes
from tests.unit.test_lifecycle_fakes import make, program_job, user

tiny_datasets = fakes.tiny_datasets


def claimed_program_job(tmp_path, tiny_datasets):
    svc, queue, clock, _ = make(tmp_path, tiny_datasets)
    job_id = svc.operator.submit(user(svc, "operator"), program_job())["job"]["id"]
    kind, (queued_id,) = queue.pending.popleft()
    assert (kind, queued_id) == ("job", job_id)
    keeper = LeaseKeeper(svc.repo, svc.clock, svc.settings.lease_margin_seconds, interval_seconds=3600)
    state = run_job_renewing(svc.agent, keeper, job_id)
    assert state == st.RUNNING and [k for k, _ in queue.pending] == ["block", "block"]  # blocks wait in the queue
    assert keeper.held() == {job_id}
    return svc, queue, clock, keeper, job_id


def lease(svc, job_id):
    with svc.repo.transaction() as tx:
        return tx.job(job_id).lease_expires


def test_a_live_worker_keeps_a_job_whose_blocks_wait_past_its_lease(tmp_path, tiny_datasets):
    svc, queue, clock, keeper, job_id = claimed_program_job(tmp_path, tiny_datasets)
    first_lease = lease(svc, job_id)
    try:
        # The blocks wait three leases long; the worker beats every quarter margin.
        end = first_lease + 3 * (first_lease - clock.now)
        while clock.now < end:
            clock.advance(svc.settings.lease_margin_seconds / 4)
            assert keeper.renew() == [job_id]
            assert svc.agent.sweep()["requeued"] == []
        assert lease(svc, job_id) > first_lease
        queue.drain()
    finally:
        keeper.stop()
    with svc.repo.transaction() as tx:
        job = tx.job(job_id)
        assert job.attempts == 1 and job.state == st.AWAITING_REVIEW
        reasons = [e.payload for e in tx.audit_records() if e.subject == job_id]
    assert "worker lost; lease expired" not in str(reasons)
    assert keeper.renew() == [] and keeper.held() == set()  # released once the job left running


def test_a_worker_that_stops_renewing_loses_the_job_to_the_sweeper(tmp_path, tiny_datasets):
    svc, _queue, clock, keeper, job_id = claimed_program_job(tmp_path, tiny_datasets)
    keeper.stop()  # the worker is killed: no more beats
    clock.now = lease(svc, job_id) + timedelta(seconds=1)
    assert svc.agent.sweep()["requeued"] == [job_id]
    with svc.repo.transaction() as tx:
        assert tx.job(job_id).state == st.QUEUED


def test_renewal_never_revives_an_expired_lease_nor_moves_one_back(tmp_path):
    from tests.unit.test_lifecycle_fakes import Clock
    from sandbox.core.records import Job
    clock = Clock()
    repo = MemoryRepository(clock)
    base = dict(operator="op", dataset="d", mode="query", purpose="p", spec={}, spec_hash="h", epsilon=0.1,
                state=st.RUNNING)
    with repo.transaction() as tx:
        for job_id, expires in (("live", 30), ("far", 3600), ("expired", -1)):
            job = Job(id=job_id, **base, lease_expires=clock.now + timedelta(seconds=expires))
            tx.add_job(job, _event(job_id))
    until = clock.now + timedelta(seconds=60)
    assert sorted(repo.renew_leases(["live", "far", "expired", "missing"], until)) == ["expired", "far", "live"]
    with repo.transaction() as tx:
        assert tx.job("live").lease_expires == until
        assert tx.job("far").lease_expires == clock.now + timedelta(seconds=3600)
        assert tx.job("expired").lease_expires == clock.now - timedelta(seconds=1)


def _event(job_id):
    from sandbox.core.records import Event
    return Event("test", "job.created", job_id, {})

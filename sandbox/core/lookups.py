"""Lookups that several use cases share, written against the Repository port."""
from __future__ import annotations

from sandbox.core import ledger as led
from sandbox.core.errors import Forbidden, NotFound, Text
from sandbox.core.manifest import Manifest, parse_manifest
from sandbox.core.policy.file import parse_policy
from sandbox.core.policy.model import Policy
from sandbox.core.ports import Tx
from sandbox.core.records import Dataset, Job, PolicyVersion

OPERATOR_FAILURE_MESSAGE = Text(
    "The job failed while running on the real data. For your protection and the data's, no "
    "details of a real-data run are shown to operators; reproduce the problem on the mock data "
    "(sandbox run --mock) and resubmit. Compliance has the diagnostics.")


def dataset(tx: Tx, name: str) -> Dataset:
    ds = tx.dataset(name) if isinstance(name, str) else None
    if ds is None:
        raise NotFound(f"no dataset named '{name}'")
    return ds


def manifest(tx: Tx, name: str) -> Manifest:
    return parse_manifest(dataset(tx, name).manifest)


def job(tx: Tx, job_id: str, *, for_update: bool = False) -> Job:
    found = tx.job(job_id, for_update=for_update)
    if found is None:
        raise NotFound("no such job")
    return found


def current_policy(tx: Tx, dataset_name: str) -> tuple[PolicyVersion, Policy]:
    row = tx.latest_policy(dataset_name)
    if row is None:
        raise Forbidden(Text("dataset '{dataset}' has no policy yet; its owner must apply one",
                             dataset=dataset_name))
    return row, parse_policy(row.content, f"policies/{dataset_name}.yaml")


def job_policy(tx: Tx, job: Job) -> Policy:
    # A job stays under the policy version it was admitted under.
    row = tx.policy_version(job.policy_version_id)
    return parse_policy(row.content, f"policies/{job.dataset}.yaml")


def ledger_entries(tx: Tx, dataset_name: str, operator: str | None) -> list[led.LedgerEntry]:
    """One operator's entries on the dataset; every operator's with operator=None. Entries
    that break the ledger's invariants raise LedgerCorrupt: a refusal, not a balance."""
    try:
        entries = [led.LedgerEntry(kind=e.kind, job_id=e.job_id, epsilon=e.epsilon, delta=e.delta, at=e.at)
                   for e in tx.budget_entries(dataset_name, operator)]
        led.validate_sequence(entries)
    except led.LedgerError as e:
        raise led.LedgerCorrupt(dataset_name, str(e)) from None
    return entries


def dataset_balance(tx: Tx, dataset_name: str, policy: Policy, now) -> led.DatasetBalance | None:
    """Every operator's use of the dataset against the policy's dataset-wide caps; None when
    the policy sets none. Owners and compliance may see it; operators only its `blocks` bit."""
    if not policy.budget.dataset_capped:
        return None
    return led.dataset_balance(ledger_entries(tx, dataset_name, None), policy.budget, now)

"""Dataset versions end to end on the fakes passed to bootstrap(): a hive-partitioned version
registers and its jobs run, and operators see an opaque version id, never the content hash."""
from __future__ import annotations

import json
import re
import shutil
from datetime import datetime

import polars as pl
import pytest

from sandbox import datagen
from sandbox.adapters.memory import MemoryRepository
from sandbox.adapters.queue import InProcessQueue
from sandbox.agent import ingest
from sandbox.agent.backends.fake import FakeBackend
from sandbox.bootstrap import bootstrap
from sandbox.config import REPO_ROOT, load
from sandbox.core import states as st
from sandbox.core.errors import InvalidInput
from sandbox.core.records import utcnow

MANIFEST = REPO_ROOT / "datasets" / "enterprise_registry.yaml"
QUERY = json.loads((REPO_ROOT / "jobs" / "enterprise_query.json").read_text())


class Clock:
    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now


def services(tmp_path):
    clock = Clock()
    svc = bootstrap(load({"SANDBOX_HOME": str(tmp_path / "home")}), repo=MemoryRepository(clock),
                    queue=(queue := InProcessQueue()), clock=clock, backend_factory=lambda _c=None: FakeBackend())
    for name, role in (("operator", st.OPERATOR), ("owner", st.OWNER), ("reviewer", st.COMPLIANCE)):
        svc.accounts.create_user(name, role, f"tok-{name}")
    return svc, queue, clock


def released(svc, queue, clock, job_id) -> dict:
    """Run the queued job and return what its operator downloads, once its outcome shows."""
    assert queue.drain() == 1
    assert svc.views.get_job(svc.accounts.user("reviewer"), job_id)["state"] == st.RELEASED
    op = svc.accounts.user("operator")
    clock.now = max(clock.now, datetime.fromisoformat(svc.views.get_job(op, job_id)["outcome_visible_after"]))
    return svc.views.release(op, job_id)


def register(svc, data_dir):
    owner = svc.accounts.user("owner")
    reg = svc.owner.register_dataset(owner, MANIFEST, data_dir)
    text = (REPO_ROOT / "policies" / "enterprise_registry.yaml").read_text(encoding="utf-8")
    svc.owner.apply_policy(owner, re.sub(r"wall_seconds: \d+", "wall_seconds: 5", text),
                           "policies/enterprise_registry.yaml")
    return reg


def flat(tmp_path, name="flat", seed=3):
    return datagen.generate(datagen.load_manifest(MANIFEST), 400, tmp_path / name, seed=seed).path


def hive_partitioned(tmp_path):
    """The demo data laid out as entity_type=<value>/part-0.parquet, the column only in the folder names."""
    df = pl.read_parquet(ingest.parquet_files(flat(tmp_path)))
    out = tmp_path / "hive"
    for (value,), part in df.group_by("entity_type", maintain_order=True):
        (out / f"entity_type={value}").mkdir(parents=True)
        part.drop("entity_type").write_parquet(out / f"entity_type={value}" / "part-0.parquet")
    return out


def test_a_hive_partitioned_version_registers_and_a_query_job_runs_on_its_partition_column(tmp_path):
    svc, queue, clock = services(tmp_path)
    data = hive_partitioned(tmp_path)
    assert register(svc, data)["bound_verified"]
    op = svc.accounts.user("operator")
    job_id = svc.operator.submit(op, QUERY)["job"]["id"]  # the mean is grouped by entity_type, a folder key
    tables = json.loads(released(svc, queue, clock, job_id)["files"]["result.json"])["tables"]
    by_type = {row[0]: row[1] for row in tables[1]["rows"]}
    categories = next(c for c in datagen.load_manifest(MANIFEST).columns if c.name == "entity_type").categories
    assert set(by_type) == set(categories) and all(0 <= v <= 5000 for v in by_type.values())


def test_a_version_with_an_underscore_parquet_file_is_refused_naming_it(tmp_path):
    svc, _, _ = services(tmp_path)
    data = flat(tmp_path)
    shutil.copy(ingest.parquet_files(data)[0], data / "_late.parquet")
    with pytest.raises(InvalidInput, match="_late.parquet"):
        register(svc, data)


def test_operators_see_an_opaque_version_id_kept_for_the_same_content(tmp_path):
    svc, queue, clock = services(tmp_path)
    data = flat(tmp_path)
    reg = register(svc, data)
    content_hash = ingest.dataset_version_hash(data)
    assert reg["content_hash"] == content_hash  # the owner's answer
    version = reg["version"]
    assert re.fullmatch(r"[0-9a-f]{32}", version) and version != content_hash
    shown = svc.views.get_dataset("enterprise_registry")
    assert shown["version"] == version and content_hash not in json.dumps(shown)
    assert [d["version"] for d in svc.views.list_datasets()] == [version]

    op = svc.accounts.user("operator")
    job_id = svc.operator.submit(op, QUERY)["job"]["id"]
    assert released(svc, queue, clock, job_id)["certificate"]["certificate"]["dataset_version"] == version
    assert svc.views.get_job(svc.accounts.user("reviewer"), job_id)["dataset_version"] == version

    assert register(svc, data)["version"] == version       # same content: same id
    other = flat(tmp_path, "other", seed=4)
    assert register(svc, other)["version"] not in (version, ingest.dataset_version_hash(other))

"""Per-column classification on real runs (issue 14, bubblewrap box): a reviewed-mode program
whose box would see a hidden column (in its DataFrame, or by opening the Parquet files under
/data itself) fails; the box gets a copy of the version without the hidden and the
query-only columns, so the program runs and its file goes to review. The operator's code
names only the columns it is allowed; it checks that nothing else is there."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from sandbox.bootstrap import bootstrap
from sandbox.config import load
from sandbox.core import states as st
from tests.conftest import make_env, need_backend

MANIFEST = {
    "name": "visits", "title": "Visits", "classification": "L2", "privacy_unit": "person", "max_rows_per_unit": 3,
    "columns": [
        {"name": "person", "type": "string", "kind": "identifier", "access": "hidden"},
        {"name": "region", "type": "string", "kind": "categorical", "categories": ["north", "south"]},
        {"name": "cost", "type": "float64", "kind": "numeric", "bounds": [0, 100], "modes": ["query"]},
        {"name": "age", "type": "int64", "kind": "numeric", "bounds": [0, 100]},
    ],
}
POLICY = """\
dataset: visits
classification: L2
modes: [query, program, reviewed]
release: one_reviewer
run_approval: auto
licences:
  - operator: operator
    expires: 2027-12-31
    purposes: [planning]
budget:
  epsilon_per_period: 10.0
  refresh: monthly
  lifetime_epsilon: 100.0
  min_epsilon_per_query: 0.01
  jobs_per_period: 100
  dataset_epsilon_per_period: 20.0
  dataset_lifetime_epsilon: 200.0
min_group_size: 10
limits:
  wall_seconds: 60
"""
# Names only what it may use; fails when the box shows it anything else.
CODE = """\
import glob
import pyarrow.parquet as pq

ALLOWED = {"region", "age"}


def analyse(df, out_dir):
    seen = set(df.columns)
    for path in glob.glob("/data/**/*.parquet", recursive=True):
        seen |= set(pq.read_schema(path).names)
    if not seen <= ALLOWED:
        raise SystemExit("the box shows more columns than allowed: %d" % len(seen - ALLOWED))
    with open(out_dir + "/notes.txt", "w") as f:
        f.write("rows are grouped by region and age only\\n")
"""


@pytest.fixture
def services(tmp_path):
    need_backend("bwrap")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "demo", "bwrap")
    env["SANDBOX_INGEST_ROOTS"] = str(incoming)
    svc = bootstrap(load(env), enqueue=lambda _job_id: None)
    for name, role in (("owner", st.OWNER), ("operator", st.OPERATOR), ("rev", st.COMPLIANCE)):
        svc.accounts.create_user(name, role, f"tok-{name}")
    n = 60
    pq.write_table(pa.table({"person": [f"p{i // 2}" for i in range(n)], "region": ["north", "south"] * (n // 2),
                             "cost": [float(i) for i in range(n)], "age": pa.array(range(n), pa.int64())}),
                   incoming / "visits.parquet")
    owner = svc.accounts.user("owner")
    svc.owner.register_version(owner, yaml.safe_dump(MANIFEST), str(incoming / "visits.parquet"))
    svc.owner.apply_policy(owner, POLICY, "policies/visits.yaml")
    yield svc
    svc.dispose()


@pytest.mark.bwrap
def test_a_reviewed_program_box_sees_no_restricted_column(services):
    op = services.accounts.user("operator")
    spec = {"mode": "reviewed", "dataset": "visits", "purpose": "planning", "entrypoint": "analyse",
            "outputs": [{"name": "notes.txt", "type": "text"}], "timeout_seconds": 60}
    job_id = services.operator.submit(op, {"spec": spec, "code": CODE})["job"]["id"]
    assert services.agent.execute(job_id) == "awaiting_review"

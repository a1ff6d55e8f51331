"""Program mode for real: the dataset is split into blocks on the host, each block runs
the operator's Python in its own box (bubblewrap and Docker), and trusted code
validates, clamps and releases through OpenDP.

Docker tests skip loudly without a daemon/image and fail instead in CI
(SANDBOX_REQUIRE_DOCKER=1), like the rest of the suite (tests/conftest.py need_backend).
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import polars as pl
import pytest
from scipy import stats

from sandbox import datagen
from sandbox.agent import aggregation as saa
from sandbox.agent.blocks import assign_blocks, new_block_seed
from sandbox.config import REPO_ROOT, load
from sandbox.core.schedule import Timing
from sandbox.core.specs.program import parse_program_spec
from sandbox.agent.backends import Limits
from tests.conftest import need_backend

ROWS = 5_000
BACKENDS = [pytest.param("docker", marks=pytest.mark.docker), pytest.param("bwrap", marks=pytest.mark.bwrap)]
LIMITS = Limits(memory_mb=1024, cpus=1.0)


@pytest.fixture(scope="module")
def manifest():
    return datagen.load_manifest(REPO_ROOT / "datasets" / "health_visits.yaml")


@pytest.fixture(scope="module")
def dataset(manifest, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("program") / "health_visits"
    datagen.generate(manifest, ROWS, out, seed=7)
    out.chmod(0o755)
    for p in out.glob("*.parquet"):
        p.chmod(0o644)
    return out


@pytest.fixture(scope="module")
def raw(dataset) -> pl.DataFrame:
    return pl.read_parquet(sorted(dataset.glob("*.parquet")))


def _backend(kind: str):
    need_backend(kind)
    if kind == "docker":
        from sandbox.agent.backends.docker import DockerBackend
        return DockerBackend(load().docker_image)
    from sandbox.agent.backends.bwrap import BwrapBackend
    return BwrapBackend()


def _spec(manifest, code: str, outputs: list[dict], **changes):
    data = {"mode": "program", "dataset": "health_visits", "purpose": "public_health_planning",
            "outputs": outputs, "epsilon": 1.0, "blocks": 4, **changes}
    return parse_program_spec(data, manifest, code=code)


def _run_all(backend, spec, dirs, work: Path, **kwargs) -> list[saa.BlockOutcome]:
    return [saa.run_block(backend, spec, d, work / f"block-{i}", saa.block_limits(spec, LIMITS), label=f"b{i}",
                          **kwargs)
            for i, d in enumerate(dirs)]


@pytest.mark.parametrize("kind", BACKENDS)
def test_hostile_program_gets_only_a_clamped_noised_aggregate(kind, manifest, dataset, raw, tmp_path):
    backend = _backend(kind)
    code = (REPO_ROOT / "jobs" / "program_hostile.py").read_text(encoding="utf-8")
    target = int(code.split("TARGET_PERSON_ID = ")[1].split()[0])
    true_cost = raw.filter(pl.col("person_id") == target)["cost"].sum()
    assert true_cost > 100, "the target must exist and cost more than the declared upper bound"
    spec = _spec(manifest, code, [{"name": "target_cost", "lower": 0, "upper": 100}], blocks=6, default=[0])
    dirs = assign_blocks(dataset, "person_id", spec.k, new_block_seed(), tmp_path / "blocks")
    outcomes = _run_all(backend, spec, dirs, tmp_path / "work")

    # One block returned the raw cost (> 100; the output area itself is gone after the run:
    # a per-run tmpfs), and trusted code clamped it before anything else saw it.
    assert [o.reason for o in outcomes] == [None] * spec.k
    assert sorted(o.vector[0] for o in outcomes) == [0.0] * 5 + [100.0]

    vectors = [o.vector for o in outcomes]
    released = [saa.aggregate(vectors, spec)["tables"][0] for _ in range(1000)]
    scale = released[0]["noise_scale"][0]
    assert scale == pytest.approx(100 / 6, rel=1e-9)
    draws = [t["rows"][0][1] for t in released]
    assert stats.kstest(draws, stats.laplace(loc=100 / 6, scale=scale).cdf).pvalue > 1e-3
    assert all(set(t) >= {"epsilon", "mechanism", "noise_scale", "k"} for t in released[:1])


VIOLATIONS = [
    # (body of analyse or module code, expected reason, expected vector)
    ("def analyse(df):\n    return [3.0, 4.0]\n", None, [3.0, 4.0]),
    ("import numpy as np\ndef analyse(df):\n    return np.array([3.0, 40.0])\n", None, [3.0, 10.0]),
    ("import pandas as pd\ndef analyse(df):\n    return pd.Series([-5, 2])\n", None, [0.0, 2.0]),
    ("def analyse(df):\n    return [1.0]\n", "wrong_length", None),
    ("def analyse(df):\n    return [1.0, 2.0, 3.0]\n", "wrong_length", None),
    ("def analyse(df):\n    return [float('nan'), 1.0]\n", "non_finite", None),
    ("import numpy as np\ndef analyse(df):\n    return [1.0, np.inf]\n", "non_finite", None),
    ("def analyse(df):\n    return ['1', 2.0]\n", "non_numeric", None),
    ("def analyse(df):\n    return {'a': 1.0, 'b': 2.0}\n", "non_numeric", None),
    ("def analyse(df):\n    return [True, 2.0]\n", "non_numeric", None),
    ("def analyse(df):\n    raise RuntimeError('secret ' + str(df['cost'].iloc[0]))\n", "error", None),
    ("import os\ndef analyse(df):\n    os._exit(3)\n", "error", None),
    ("1 / 0\ndef analyse(df):\n    return [1.0, 1.0]\n", "error", None),
    ("def analyse(df):\n    return bytearray(1 << 36)\n", "error", None),
    # Planting vector.json does not help: the launcher replaces it with the return value.
    ("import json\ndef analyse(df):\n    open('/out/vector.json', 'w').write(json.dumps("
     "{'status': 'ok', 'vector': [9.0, 9.0]}))\n    return [5.0, 5.0]\n", None, [5.0, 5.0]),
]
DEFAULT = [1.0, 2.0]
OUTPUTS = [{"name": "a", "lower": 0, "upper": 10}, {"name": "b", "lower": 0, "upper": 10}]


@pytest.mark.parametrize("kind", BACKENDS)
def test_contract_violations_give_the_default_and_are_counted(kind, manifest, dataset, tmp_path):
    backend = _backend(kind)
    dirs = assign_blocks(dataset, "person_id", 4, new_block_seed(), tmp_path / "blocks")
    reasons, stderr = [], []
    for i, (code, reason, vector) in enumerate(VIOLATIONS):
        spec = _spec(manifest, code, OUTPUTS, default=DEFAULT)
        outcome = saa.run_block(backend, spec, dirs[0], tmp_path / f"w{i}", saa.block_limits(spec, LIMITS))
        assert (outcome.reason, outcome.vector) == (reason, vector or DEFAULT), code
        assert outcome.run.ok, outcome.run.stderr[-2000:]      # a failing block is a normal outcome
        reasons.append(outcome.reason)
        stderr.append(outcome.run.stderr)

    timeout_spec = _spec(manifest, "import time\ndef analyse(df):\n    time.sleep(600)\n", OUTPUTS,
                         default=DEFAULT, block_timeout_seconds=1)
    outcome = saa.run_block(backend, timeout_spec, dirs[0], tmp_path / "wt",
                            saa.block_limits(timeout_spec, LIMITS, timing=Timing(child_start_cpu_seconds=5)),
                            timing=Timing(child_start_cpu_seconds=5))
    assert (outcome.reason, outcome.vector) == ("timeout", DEFAULT)
    reasons.append(outcome.reason)

    summary_spec = _spec(manifest, VIOLATIONS[0][0], OUTPUTS, blocks=len(reasons))
    summary = saa.compliance_summary(reasons, summary_spec)
    assert summary == {"blocks": len(reasons), "defaults_used": 12,
                       "reasons": {"wrong_length": 2, "non_numeric": 3, "non_finite": 2, "timeout": 1, "error": 4}}
    # The traceback (which here quotes a raw value) reaches the compliance log only.
    assert b"RuntimeError: secret" in stderr[10]


@pytest.mark.parametrize("kind", BACKENDS)
def test_each_box_sees_only_its_own_block_and_blocks_cover_the_data(kind, manifest, dataset, raw, tmp_path):
    backend = _backend(kind)
    dirs = assign_blocks(dataset, "person_id", 4, new_block_seed(), tmp_path / "blocks")
    others = [str(p) for p in (dataset, *dirs)]
    code = textwrap.dedent(f"""
        import glob, os
        OTHERS = {others!r}
        def analyse(df):
            visible = any(os.path.exists(p) for p in OTHERS)
            return [float(len(df)), float(df["person_id"].nunique()), float(visible),
                    float(len(glob.glob("/data/*.parquet")) > 0)]
    """)
    outputs = [{"name": "rows", "lower": 0, "upper": 10_000}, {"name": "units", "lower": 0, "upper": 10_000},
               {"name": "sees_other_data", "lower": 0, "upper": 1}, {"name": "has_block", "lower": 0, "upper": 1}]
    spec = _spec(manifest, code, outputs)
    outcomes = _run_all(backend, spec, dirs, tmp_path / "work")
    assert [o.reason for o in outcomes] == [None] * 4
    assert sum(o.vector[0] for o in outcomes) == raw.height
    assert sum(o.vector[1] for o in outcomes) == raw["person_id"].n_unique()   # no person in two blocks
    assert [o.vector[2:] for o in outcomes] == [[0.0, 1.0]] * 4


@pytest.mark.parametrize("kind", BACKENDS)
def test_the_worked_example_releases_every_declared_output(kind, manifest, dataset, tmp_path):
    backend = _backend(kind)
    example = json.loads((REPO_ROOT / "jobs" / "program_mean_cost.json").read_text(encoding="utf-8"))
    code = (REPO_ROOT / "jobs" / example["program"]).read_text(encoding="utf-8")
    spec = parse_program_spec(dict(example, blocks=4), manifest, code=code)
    dirs = assign_blocks(dataset, "person_id", spec.k, new_block_seed(), tmp_path / "blocks")
    outcomes = _run_all(backend, spec, dirs, tmp_path / "work")
    assert [o.reason for o in outcomes] == [None] * 4
    # Honest block estimates sit well inside the declared ranges (nothing clamped).
    for o in outcomes:
        assert 300 < o.vector[0] < 2000 and -50 < o.vector[1] < 100 and 0 < o.vector[2] < 1
    table = saa.aggregate([o.vector for o in outcomes], spec)["tables"][0]
    assert [r[0] for r in table["rows"]] == [o["name"] for o in example["outputs"]]
    assert table["k"] == 4 and table["epsilon"] == 1.0

"""Trusted aggregation for program mode: untrusted block vectors are validated and
clamped, the release is OpenDP noise of the documented scale whatever the program
returned, and failures are counted for compliance only."""
from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from sandbox.agent import aggregation as saa
from sandbox.core import schedule
from sandbox.privacy.aggregate import mean_measurement, median_measurement
from sandbox.core.manifest import parse_manifest
from sandbox.core.specs.program import parse_program_spec
from sandbox.core.specs.program_accounting import expected_error

REPO = Path(__file__).resolve().parents[2]
CODE = "def analyse(df):\n    return [0.0, 0.0]\n"


@pytest.fixture(scope="module")
def manifest():
    return parse_manifest(yaml.safe_load((REPO / "datasets" / "health_visits.yaml").read_text(encoding="utf-8")))


def _spec(manifest, outputs=None, **changes):
    data = {"mode": "program", "dataset": "health_visits", "purpose": "public_health_planning",
            "outputs": outputs or [{"name": "cost", "lower": 0, "upper": 100},
                                   {"name": "share", "lower": -1, "upper": 1}],
            "default": None, "epsilon": 1.0, "blocks": 10, **changes}
    if data["default"] is None:
        del data["default"]
    return parse_program_spec(data, manifest, code=CODE)


def _doc(**doc) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


# ------------------------------------------------------------------ validate_vector

@pytest.mark.parametrize("raw,reason", [
    (None, "missing"),
    (b"", "not_json"),
    (b"[1, 2", "not_json"),
    (b"\xff\xfe", "not_json"),
    (b"[1.0, 2.0]", "not_json"),                                    # a bare list is not the launcher's format
    (b"[" * 100_000, "not_json"),
    (b" " * (saa.MAX_VECTOR_BYTES + 1), "not_json"),
    (_doc(status="weird", vector=[1, 2]), "not_json"),
    (_doc(status="timeout"), "timeout"),
    (_doc(status="error"), "error"),
    (_doc(status="not_json"), "not_json"),
    (_doc(status="ok", vector=[1.0]), "wrong_length"),
    (_doc(status="ok", vector=[1.0, 2.0, 3.0]), "wrong_length"),
    (_doc(status="ok", vector=[]), "wrong_length"),
    (_doc(status="ok", vector=None), "non_numeric"),
    (_doc(status="ok", vector=1.0), "non_numeric"),
    (_doc(status="ok", vector={"cost": 1}), "non_numeric"),
    (_doc(status="ok", vector=["1.0", 2.0]), "non_numeric"),
    (_doc(status="ok", vector=[True, 2.0]), "non_numeric"),
    (_doc(status="ok", vector=[None, 2.0]), "non_numeric"),
    (_doc(status="ok", vector=[[1.0], 2.0]), "non_numeric"),
    (_doc(status="ok", vector=[float("nan"), 2.0]), "non_finite"),
    (_doc(status="ok", vector=[1.0, float("-inf")]), "non_finite"),
    (b'{"status": "ok", "vector": [1e400, 0]}', "non_finite"),
    (b'{"status": "ok", "vector": [1' + b"0" * 400 + b', 0]}', "non_finite"),
])
def test_contract_violations_give_the_default_and_a_reason(manifest, raw, reason):
    spec = _spec(manifest)
    assert saa.validate_vector(raw, spec) == ([50.0, 0.0], reason)


def test_a_valid_vector_passes_unchanged_including_out_of_range_values(manifest):
    spec = _spec(manifest)
    assert saa.validate_vector(_doc(status="ok", vector=[1e9, -3]), spec) == ([1e9, -3.0], None)


def test_box_level_timeouts_and_failures_override_the_file(manifest):
    spec = _spec(manifest, default=[1.0, 0.5])
    ok = _doc(status="ok", vector=[3.0, 0.1])
    assert saa.validate_vector(ok, spec, timed_out=True) == ([1.0, 0.5], "timeout")
    assert saa.validate_vector(ok, spec, failed=True) == ([1.0, 0.5], "error")


def test_clamp_forces_every_entry_into_its_range(manifest):
    spec = _spec(manifest)
    assert saa.clamp([1e9, -7.0], spec) == [100.0, -1.0]
    assert saa.clamp([-0.0, 0.25], spec) == [0.0, 0.25]
    assert math.copysign(1, saa.clamp([-0.0, 0.0], spec)[0]) == 1.0
    assert saa.clamp([float("nan"), 2.0], spec) == [50.0, 1.0]
    assert saa.clamp([1.0], spec) == [50.0, 0.0]


def test_compliance_summary_counts_reasons_and_nothing_per_block(manifest):
    spec = _spec(manifest, blocks=6)
    summary = saa.compliance_summary([None, "timeout", None, "non_finite", "timeout", None], spec)
    assert summary == {"blocks": 6, "defaults_used": 3, "reasons": {"non_finite": 1, "timeout": 2}}
    with pytest.raises(ValueError):
        saa.compliance_summary([None] * 5, spec)
    with pytest.raises(ValueError):
        saa.compliance_summary([None] * 5 + ["bribed"], spec)


# ------------------------------------------------------------------ aggregate

def test_a_hostile_blocks_raw_value_is_clamped_then_noised_as_laplace(manifest):
    """Block 0 returns a person's raw cost (1e9); the release must be distributed as
    Laplace(mean of the clamped vectors, (U - L) / (k * eps_j)), whatever was returned."""
    spec = _spec(manifest, outputs=[{"name": "target_cost", "lower": 0, "upper": 100}], blocks=10)
    vectors = [[1e9]] + [[0.0]] * 9
    draws, scales = [], set()
    for _ in range(2000):
        table = saa.aggregate(vectors, spec)["tables"][0]
        draws.append(table["rows"][0][1])
        scales.add(table["noise_scale"][0])
    (scale,) = scales
    assert scale == pytest.approx(100 / (10 * 1.0), rel=1e-9)
    result = stats.kstest(draws, stats.laplace(loc=10.0, scale=scale).cdf)
    assert result.pvalue > 1e-3, result
    # and it is not centred on anything that reveals the raw value
    assert abs(np.median(draws) - 10.0) < 2.0


def test_the_distribution_test_would_catch_a_wrong_scale_or_a_missing_clamp(manifest):
    spec = _spec(manifest, outputs=[{"name": "x", "lower": 0, "upper": 100}], blocks=10)
    draws = [saa.aggregate([[1e9]] + [[0.0]] * 9, spec)["tables"][0]["rows"][0][1] for _ in range(1000)]
    assert stats.kstest(draws, stats.laplace(loc=10.0, scale=5.0).cdf).pvalue < 1e-6
    assert stats.kstest(draws, stats.laplace(loc=1e8, scale=10.0).cdf).pvalue < 1e-6


def test_each_output_gets_its_share_of_epsilon_checked_by_opendp(manifest):
    spec = _spec(manifest, epsilon=0.9, blocks=37)
    eps_j = spec.epsilon_per_output
    assert Fraction(eps_j) * 2 <= Fraction(0.9)
    table = saa.aggregate([[5.0, 0.5]] * 37, spec)["tables"][0]
    assert [r[0] for r in table["rows"]] == ["cost", "share"]
    assert table["epsilon"] == 0.9 and table["k"] == 37 and table["mechanism"] == "laplace"
    planned = expected_error(spec)["outputs"]
    for part, plan, (lo, hi) in zip(table["parts"], planned, [(0, 100), (-1, 1)]):
        meas, scale, sens = mean_measurement(lo, hi, 37, eps_j)
        assert meas.map(2) <= eps_j
        assert part["noise_scale"] == scale == pytest.approx(plan["noise_scale"], rel=1e-9)
        assert sens == pytest.approx((hi - lo) / 37, rel=1e-9) and sens >= (hi - lo) / 37


def test_a_median_is_selected_by_opendp_within_its_documented_rank_error(manifest):
    spec = _spec(manifest, outputs=[{"name": "m", "lower": 0, "upper": 1000, "aggregate": "median"}],
                 blocks=200, epsilon=1.0)
    values = [[i * 3 + 0.5] for i in range(200)]
    meas, scale = median_measurement(0.0, 1000.0, 200, 1.0, spec.default[0])
    assert meas.map(2) <= 1.0 and scale == pytest.approx(2.0)
    sorted_vals = np.array(sorted(v[0] for v in values))
    draws = [saa.aggregate(values, spec)["tables"][0]["rows"][0][1] for _ in range(300)]
    rank_error = np.abs(np.searchsorted(sorted_vals, draws) - 100)
    bound = expected_error(spec)["outputs"][0]["rank_error_95"]
    assert np.mean(rank_error <= bound) >= 0.95
    assert all(0 <= d <= 1000 for d in draws)


def test_a_median_of_mostly_defaults_finds_the_default(manifest):
    # Failing blocks all return the default; it is a candidate, so it wins clearly.
    spec = _spec(manifest, outputs=[{"name": "m", "lower": 0, "upper": 10, "aggregate": "median"}],
                 default=[3.14159], blocks=100, epsilon=2.0)
    draws = [saa.aggregate([[3.14159]] * 100, spec)["tables"][0]["rows"][0][1] for _ in range(50)]
    assert np.mean(np.array(draws) == 3.14159) > 0.9


def test_aggregate_needs_exactly_k_vectors(manifest):
    spec = _spec(manifest, blocks=5)
    with pytest.raises(ValueError):
        saa.aggregate([[1.0, 0.0]] * 4, spec)


def test_the_release_holds_no_block_values_or_failure_counts(manifest):
    spec = _spec(manifest, blocks=4)
    vectors = [[12.345678, 0.111111], [23.456789, 0.222222], [34.567891, 0.333333], [45.678912, 0.444444]]
    text = json.dumps(saa.aggregate(vectors, spec))
    assert not any(repr(x) in text for v in vectors for x in v)
    assert "defaults_used" not in text and "reasons" not in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-finite {c} in the release"))


def test_block_job_carries_no_seed_or_block_identity(manifest, tmp_path):
    spec = _spec(manifest)
    from sandbox.agent.boxes import write_job_dir
    from sandbox.core.schedule import Timing
    write_job_dir(tmp_path / "job", saa.block_job(spec, memory_mb=512), spec.code)
    job = json.loads((tmp_path / "job" / "job.json").read_text())
    cpu = spec.block_timeout_seconds + Timing().child_start_cpu_seconds
    assert job == {"kind": "program_block", "program": "/job/program.py", "entrypoint": "analyse",
                   "data_dir": "/data", "out_dir": "/out", "memory_mb": 512,
                   "cpu_seconds": cpu, "wall_seconds": round(Timing().block_wall_factor * cpu + 0.5, 2)}
    assert (tmp_path / "job" / "program.py").read_text() == CODE


@pytest.mark.parametrize("timing", [schedule.Timing(), schedule.GVISOR])
def test_a_blocks_box_outlasts_its_launchers_wall_clock_backstop(manifest, timing):
    # The budget is CPU time; the wall clock is a backstop above it, the box's own wall clock
    # leaves the launcher a margin to report "timeout", and the block's worker slot covers
    # starting the box, its wall clock and the backend's bookkeeping after it.
    from sandbox.agent.backends import Limits
    spec = _spec(manifest)
    job = saa.block_job(spec, memory_mb=512, timing=timing)
    limits = saa.block_limits(spec, Limits(), timing=timing)
    assert job["wall_seconds"] > job["cpu_seconds"] == spec.block_timeout_seconds + timing.child_start_cpu_seconds
    assert limits.wall_seconds >= job["wall_seconds"] + timing.margin_seconds
    assert schedule.block_slot_seconds(spec.block_timeout_seconds, timing) == pytest.approx(
        timing.box_start_seconds + limits.wall_seconds + timing.margin_seconds)

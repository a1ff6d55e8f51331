"""Program-mode contracts: validation naming the field, code checked without running
it, k chosen from public information only, and the dry-run accounting."""
from __future__ import annotations

import ast
import copy
import json
import math
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sandbox.core.errors import InvalidInput
from sandbox.core.manifest import parse_manifest
from sandbox.core.specs import program_accounting as acc
from sandbox.core.specs.program import parse_program_spec
from sandbox.core.amounts import exact
from sandbox.core.specs.program_accounting import MAX_K, MIN_K, choose_k, expected_error, split_epsilon
from sandbox.core.specs.source import MAX_CODE_BYTES, check_code

REPO = Path(__file__).resolve().parents[2]
CODE = "def analyse(df):\n    return [1.0, 2.0, 3.0]\n"


def _manifest(**changes):
    data = yaml.safe_load((REPO / "datasets" / "health_visits.yaml").read_text(encoding="utf-8"))
    data.update(changes)
    return parse_manifest(data)


@pytest.fixture(scope="module")
def manifest():
    return _manifest()


@pytest.fixture()
def example():
    return json.loads((REPO / "jobs" / "program_mean_cost.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def example_code():
    return (REPO / "jobs" / "program_mean_cost.py").read_text(encoding="utf-8")


def test_example_job_parses_and_round_trips(manifest, example, example_code):
    spec = parse_program_spec(example, manifest, code=example_code)
    assert (spec.k, spec.epsilon, spec.entrypoint, spec.n_outputs) == (100, 1.0, "analyse", 3)
    assert [o.name for o in spec.outputs] == ["mean_cost", "cost_per_year_of_age", "share_visits_over_1000"]
    assert spec.default == (1000.0, 0.0, 0.1)
    again = parse_program_spec(json.loads(spec.canonical_json()), manifest, code=example_code)
    assert again == spec and again.content_hash == spec.content_hash


def test_content_hash_covers_the_code_and_the_contract(manifest, example, example_code):
    base = parse_program_spec(example, manifest, code=example_code)
    other_code = parse_program_spec(example, manifest, code=example_code + "\n# changed\n")
    other_eps = parse_program_spec(dict(example, epsilon=0.5), manifest, code=example_code)
    assert len({base.content_hash, other_code.content_hash, other_eps.content_hash}) == 3
    # a client cannot pin a different code hash than the code it sends
    forged = dict(base.to_dict(), code_sha256="0" * 64)
    assert parse_program_spec(forged, manifest, code=example_code).content_hash == base.content_hash


def test_defaults_are_the_midpoints_when_omitted(manifest, example):
    del example["default"]
    spec = parse_program_spec(example, manifest, code=CODE)
    assert spec.default == (1500.0, 25.0, 0.5)


def test_aggregate_per_output_overrides_the_default_aggregate(manifest, example):
    example["outputs"][1]["aggregate"] = "median"
    spec = parse_program_spec(example, manifest, code=CODE)
    assert [o.aggregate for o in spec.outputs] == ["mean", "median", "mean"]


def _set(path, value):
    def change(d):
        target = d
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return change


BAD = [
    (_set(["mode"], "query"), "mode"),
    (_set(["dataset"], "enterprise_registry"), "dataset"),
    (_set(["purpose"], "  "), "purpose"),
    (_set(["purpose"], "a\nb"), "purpose"),
    (_set(["epsilon"], KeyError), "epsilon"),
    (_set(["epsilon"], 0), "epsilon"),
    (_set(["epsilon"], 11), "epsilon"),
    (_set(["epsilon"], float("nan")), "epsilon"),
    (_set(["epsilon"], "1"), "epsilon"),
    (_set(["epsilon"], True), "epsilon"),
    (_set(["outputs"], []), "outputs"),
    (_set(["outputs"], [{"name": f"o{i}", "lower": 0, "upper": 1} for i in range(51)]), "outputs"),
    (_set(["outputs", 0, "name"], "no spaces"), "outputs[0].name"),
    (_set(["outputs", 1, "name"], "mean_cost"), "outputs[1].name"),
    (_set(["outputs", 0, "lower"], KeyError), "outputs[0].lower"),
    (_set(["outputs", 0, "lower"], float("-inf")), "outputs[0].lower"),
    (_set(["outputs", 0, "upper"], 1e300), "outputs[0].upper"),
    (_set(["outputs", 0, "upper"], 0), "outputs[0].upper"),
    (_set(["outputs", 0, "upper"], "3000"), "outputs[0].upper"),
    (_set(["outputs", 0, "aggregate"], "sum"), "outputs[0].aggregate"),
    (_set(["outputs", 0, "colour"], "red"), "outputs[0].colour"),
    (_set(["default"], [1000, 0]), "default"),
    (_set(["default", 2], 2.0), "default[2]"),
    (_set(["default", 0], float("nan")), "default[0]"),
    (_set(["aggregate"], "max"), "aggregate"),
    (_set(["blocks"], 1), "blocks"),
    (_set(["blocks"], 1001), "blocks"),
    (_set(["blocks"], 10.0), "blocks"),
    (_set(["blocks"], "many"), "blocks"),
    (_set(["block_timeout_seconds"], 0), "block_timeout_seconds"),
    (_set(["block_timeout_seconds"], 601), "block_timeout_seconds"),
    (_set(["entrypoint"], "__init__"), "entrypoint"),
    (_set(["entrypoint"], "os.system"), "entrypoint"),
    (_set(["program"], "../../etc/passwd"), "program"),
    (_set(["queries"], []), "queries"),
]


@pytest.mark.parametrize("change,field", BAD)
def test_bad_contracts_are_refused_naming_the_field(manifest, example, change, field):
    spec = copy.deepcopy(example)
    change(spec)
    with pytest.raises(InvalidInput) as e:
        parse_program_spec(spec, manifest, code=CODE)
    assert e.value.field == field
    assert field.split("[")[0].split(".")[0] in str(e.value)


def test_an_oversized_contract_is_refused_before_anything_else(manifest, example):
    with pytest.raises(InvalidInput) as e:
        parse_program_spec(dict(example, purpose="x" * 100_000), manifest, code=CODE)
    assert e.value.field == "spec"


@pytest.mark.parametrize("code,words", [
    ("def analyse(df)\n    return [1]\n", "line 1"),
    ("x = 1\n", "def analyse(df)"),
    ("async def analyse(df):\n    return [1]\n", "def analyse(df)"),
    ("analyse = lambda df: [1]\n", "def analyse(df)"),
    ("class A:\n    def analyse(self, df):\n        return [1]\n", "def analyse(df)"),
    ("def analyse():\n    return [1]\n", "first argument"),
    ("def analyse(df, other):\n    return [1]\n", "one argument"),
    ("def analyse(df, *, key):\n    return [1]\n", "one argument"),
    ("return 1\ndef analyse(df):\n    return [1]\n", "line 1"),
    ("def analyse(df):\n    return [1]\n\x00", "NUL"),
    ("", "empty"),
    ("#" * (MAX_CODE_BYTES + 1), "limit"),
    (b"def analyse(df): return [1]", "UTF-8"),
])
def test_bad_code_is_refused_with_what_to_fix(code, words):
    with pytest.raises(InvalidInput) as e:
        check_code(code)
    assert e.value.field == "code"
    assert words in str(e.value)


def test_good_entrypoint_shapes_are_accepted():
    check_code("import pandas as pd\n\ndef analyse(df, ddof=1, *, scale=2.0):\n    return [df.shape[0]]\n")
    check_code("def run(df):\n    return [1]\n", "run")
    check_code("def analyse(*frames):\n    return [1]\n")


def test_code_is_never_executed_on_the_host(manifest, example, tmp_path):
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')\nraise SystemExit(3)\ndef analyse(df):\n    return [1, 2, 3]\n"
    parse_program_spec(example, manifest, code=code)
    assert not marker.exists()


@pytest.mark.parametrize("module", ["program", "program_accounting", "source"])
def test_the_domain_module_imports_only_the_standard_library(module):
    path = REPO / "sandbox" / "core" / "specs" / f"{module}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and not node.module.startswith("sandbox.core."):
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


# ------------------------------------------------------------------ choosing k

def test_auto_k_comes_from_the_public_manifest(example):
    del example["blocks"]
    small = _manifest(default_rows=50_000)        # 10,000 units at most 5 rows each
    assert parse_program_spec(example, small, code=CODE).k == 100
    assert parse_program_spec(example, _manifest(), code=CODE).k == MAX_K
    assert parse_program_spec(example, small, code=CODE, auto_k=40).k == 40
    # the resolved k is stored, so a later manifest change cannot move it
    spec = parse_program_spec(example, small, code=CODE)
    assert parse_program_spec(spec.to_dict(), _manifest(), code=CODE).k == 100


def test_choose_k_takes_no_data_only_a_public_estimate():
    assert choose_k(None) == acc.DEFAULT_AUTO_K
    assert choose_k(0) == MIN_K
    assert choose_k(10**9) == MAX_K
    assert choose_k(12_345, policy_k=7) == 7
    with pytest.raises(ValueError):
        choose_k(100, policy_k=1)


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9))
def test_choose_k_is_bounded_and_monotone(a, b):
    ka, kb = choose_k(a), choose_k(b)
    assert MIN_K <= ka <= MAX_K
    assert (ka <= kb) if a <= b else (ka >= kb)


# ------------------------------------------------------------------ accounting

@given(st.floats(min_value=1e-6, max_value=10), st.integers(min_value=1, max_value=50))
def test_epsilon_split_never_overspends(eps, m):
    e = split_epsilon(eps, m)
    assert Fraction(e) * m <= Fraction(eps)
    assert exact(e) * m <= exact(eps)  # as the ledger reads the charge, too
    assert e == pytest.approx(eps / m, rel=1e-12)


def test_an_epsilon_split_fits_the_charge_as_the_ledger_reads_it():
    # 0.1 is charged as exactly 1/10, a little below the binary 0.1: the split must fit that.
    # Fitting the binary value alone gave 0.011111111111111112, and 9 of those read as more.
    for eps, m in ((0.1, 9), (0.1, 13), (3.64, 3)):
        e = split_epsilon(eps, m)
        assert m * exact(e) <= exact(eps) and m * Fraction(e) <= Fraction(eps)


def test_expected_error_of_a_mean_is_range_over_k_times_epsilon_per_output(manifest, example):
    spec = parse_program_spec(example, manifest, code=CODE)
    view = expected_error(spec)
    assert view["k"] == 100 and view["epsilon_per_output"] == pytest.approx(1 / 3)
    for out, (lo, hi) in zip(view["outputs"], [(0, 3000), (-50, 100), (0, 1)]):
        assert out["mechanism"] == "laplace"
        assert out["sensitivity"] == pytest.approx((hi - lo) / 100)
        assert out["noise_scale"] == pytest.approx((hi - lo) / (100 * (1 / 3)))
        assert out["expected_abs_error"] == out["noise_scale"]
        assert out["error_95"] == pytest.approx(out["noise_scale"] * math.log(20))


def test_more_blocks_wider_ranges_and_less_epsilon_trade_accuracy_as_documented(manifest, example):
    def scale(**changes):
        return expected_error(parse_program_spec(dict(example, **changes), manifest, code=CODE))["outputs"][0][
            "noise_scale"]
    base = scale()
    assert scale(blocks=200) == pytest.approx(base / 2)
    assert scale(epsilon=0.5) == pytest.approx(base * 2)
    wide = copy.deepcopy(example["outputs"])
    wide[0]["upper"] = 6000
    assert scale(outputs=wide) == pytest.approx(base * 2)


def test_expected_error_of_a_median_reports_its_rank_error(manifest, example):
    example["aggregate"] = "median"
    spec = parse_program_spec(dict(example, epsilon=3.0), manifest, code=CODE)
    out = expected_error(spec)["outputs"][0]
    assert out["mechanism"] == "exponential" and out["expected_abs_error"] is None
    assert out["noise_scale"] == pytest.approx(2.0)        # 2 / (3 / 3)
    assert out["rank_error_95"] == pytest.approx(2.0 * (math.log(1001) + math.log(20)) / 2)
    lo, hi = out["quantile_band_95"]
    assert lo == pytest.approx(0.5 - out["rank_error_95"] / 100) and hi == pytest.approx(1 - lo)


def test_median_candidates_are_public_and_include_the_default():
    grid = acc.median_candidates(0.0, 10.0, include=(3.14159,))
    assert grid[0] == 0.0 and grid[-1] == 10.0 and 3.14159 in grid
    assert all(a < b for a, b in zip(grid, grid[1:]))

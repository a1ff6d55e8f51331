"""Hostile jobs against every isolation backend: nothing gets out but the release.

Each hostile program (tests/security/hostile.py) ran as a real program-mode job through
submission (mock check included), execution on the backend, review and release. For each,
these tests assert containment (from inside: the program's own attack flags, read from the
in-domain block results; from outside: listeners, hashes, processes, containers) and what
each role sees: the operator gets the coarse state at the fixed time and the DP release, and
nothing else; compliance gets the diagnostics; the charge is what was declared.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from sandbox.core.schedule import block_slot_seconds
from sandbox.adapters.store.repository import _aware
from tests.security.conftest import (EPSILON, K, SLEEP_SECONDS, TIMING_WALL_SECONDS, WALL_SECONDS, Campaign,
                                     programs_for)
from tests.security.hostile import BY_NAME, PROGRAMS

OPERATOR_KEYS = {"id", "dataset", "mode", "purpose", "operator", "epsilon", "delta", "spec_hash", "spec",
                 "policy_hash", "created_at", "message", "state", "outcome_visible_after"}
RUN_WORDS = ("stderr", "stdout", "traceback", "Traceback", "wall_seconds", "exit_code", "defaults_used",
             "reasons", "oom", "timed_out", "rows_scanned", "updated_at", "attempts")

# Empty since runsc runs with --oci-seccomp (scripts/start-docker.sh); a gap found later goes here.
ATTACK_XFAIL: dict = {}
# claim() reads the clock for visible_after and again for the audit event.
CLOCK_READS_APART = timedelta(seconds=1)
ATTACKS = [(p.name, a) for p in PROGRAMS if p.reports for a in p.attacks]


def _visible_delay(ev, campaign) -> float:
    """The data-independent delay the services promise: for a program, the split and the
    time its k blocks could take one after another, from the settings' start-up costs."""
    from sandbox.core.schedule import outcome_delay_seconds
    wall = TIMING_WALL_SECONDS if ev.program.timing_policy else WALL_SECONDS
    from tests.security.conftest import K
    timing = campaign.services.parts.settings.timing_for("L3")
    return outcome_delay_seconds("program", {"blocks": K, "block_timeout_seconds": ev.program.block_timeout}, wall,
                                 timing=timing)


def _evidence(campaign: Campaign, name: str):
    if name not in campaign.evidence:
        pytest.skip(f"{name}: same Docker code path under runc and gVisor, so run on docker and bwrap only")
    return campaign.evidence[name]


@pytest.fixture
def known_weakness(request, campaign):
    """Marks the attack cases a known gap lets through as strict xfails (before the call, so
    pytest honours them): the day the gap is closed they XPASS and the mark must go."""
    program, attack = request.node.callspec.params["program"], request.node.callspec.params["attack"]
    reason = ATTACK_XFAIL.get((campaign.backend, program, attack)) or ATTACK_XFAIL.get(("*", program, attack))
    if reason:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=reason))


def _operator_text(ev) -> str:
    return json.dumps([ev.operator_before, ev.operator_after, ev.operator_listed, ev.operator_release],
                      default=str, ensure_ascii=False)


# ------------------------------------------------------------------ each attack, from inside
@pytest.mark.parametrize("program,attack", ATTACKS, ids=[f"{p}:{a}" for p, a in ATTACKS])
def test_the_attack_is_stopped_by_the_box(campaign, program, attack, known_weakness):
    ev = _evidence(campaign, program)
    # Every block ran the program to the end, so its flags are what it found, not the default.
    assert [b["reason"] for b in ev.blocks] == [None] * K, [b["stderr"][-800:] for b in ev.blocks]
    assert [f[attack] for f in ev.flags()] == [0.0] * K


# ------------------------------------------------------------------ from outside
def test_nothing_reaches_listeners_on_the_host(campaign):
    assert campaign.received == []


def test_datasets_are_unchanged(campaign):
    assert campaign.dataset_hash_after == campaign.dataset_hash_before


def test_the_host_hostname_is_unchanged(campaign):
    assert campaign.hostnames[0] == campaign.hostnames[1]


def test_no_container_process_or_work_area_is_left(campaign):
    assert campaign.leftover_containers == ""
    assert campaign.leftover_processes == ""      # fork bomb children, planted daemons, swappers
    assert campaign.leftover_work_areas == []     # block copies of raw data, job and out areas


def test_every_hostile_job_ran_all_its_blocks(campaign):
    for name, ev in campaign.evidence.items():
        assert ev.state == "awaiting_review", name   # no block failure fails or stalls a program job
        assert [b["block"] for b in ev.blocks] == list(range(K)), name


@pytest.mark.program("fork_bomb")
# ------------------------------------------------------------------ resource attacks
def test_a_fork_bomb_stops_at_the_process_limit_and_leaves_nothing(campaign):
    ev = _evidence(campaign, "fork_bomb")
    assert [b["reason"] for b in ev.blocks] == [None] * K
    forks = sorted(f["forks_over_pid_limit"] for f in ev.flags())
    assert forks[0] == 0.0                        # the block without the target did not fork
    assert 0.0 < forks[1] <= 0.5                  # the other forked, and never had more than the limit alive
    assert campaign.leftover_processes == ""


@pytest.mark.parametrize("program,reason", [("memory_bomb", "error"), ("cpu_spin_past_the_limit", "timeout"),
                                            ("sleep_past_the_limit", "timeout")])
def test_a_resource_attack_costs_only_its_own_block(campaign, program, reason):
    ev = _evidence(campaign, program)
    assert sorted(b["reason"] or "" for b in ev.blocks) == ["", reason]
    blown = next(b for b in ev.blocks if b["reason"])
    assert blown["vector"] == [0.5]               # the contract's default, nothing from the run
    assert blown["wall_seconds"] < block_slot_seconds(ev.program.block_timeout,
                                                      campaign.services.parts.settings.timing_for("L3"))
    # A spinning block ends at its CPU budget; a sleeping one, using no CPU, at the wall-clock backstop.
    stopped_by = {"cpu_spin_past_the_limit": "CPU budget", "sleep_past_the_limit": "wall-clock backstop"}
    if program in stopped_by:
        assert "block stopped: " + stopped_by[program] in blown["stderr"]


@pytest.mark.program("huge_stdout_and_stderr")
def test_huge_output_is_capped_for_compliance(campaign):
    ev = _evidence(campaign, "huge_stdout_and_stderr")
    # Output beyond the per-file limit ends the block (RLIMIT_FSIZE on the launcher's log).
    assert [b["reason"] for b in ev.blocks] == ["error"] * K
    for b in ev.blocks:
        assert 0 < len(b["stderr"]) <= 4000 and campaign.constants["MARK"] in b["stderr"]
    assert ev.operator_release is not None and campaign.constants["MARK"] not in _operator_text(ev)


@pytest.mark.program("disk_fill")
def test_disk_fill_stops_at_the_tmpfs_and_file_limits(campaign):
    ev = _evidence(campaign, "disk_fill")
    assert [b["reason"] for b in ev.blocks] == [None] * K
    assert all(f == {"tmp_over_limit": 0.0, "shm_over_limit": 0.0, "out_file_over_limit": 0.0}
               for f in ev.flags())


@pytest.mark.program("output_swapped_after_the_launcher")
# ------------------------------------------------------------------ outputs
def test_swapping_the_vector_for_a_link_to_raw_data_exports_nothing(campaign):
    ev = _evidence(campaign, "output_swapped_after_the_launcher")
    for b in ev.blocks:
        assert b["reason"] in (None, "missing", "not_json")
        assert b["vector"] in ([0.0], [1.0], [0.5])  # clamped flag or the default; never file contents
    assert "PAR1" not in _operator_text(ev)


@pytest.mark.program("raw_rows_in_an_exception")
# ------------------------------------------------------------------ side channels: errors and logs
def test_raw_rows_in_an_exception_stay_in_the_domain(campaign):
    ev = _evidence(campaign, "raw_rows_in_an_exception")
    mark = campaign.constants["MARK"]
    assert [b["reason"] for b in ev.blocks] == ["error"] * K
    assert all(mark + " raw rows" in b["stderr"] for b in ev.blocks)   # kept in-domain, capped
    assert mark not in _operator_text(ev) and "person_id" not in json.dumps(ev.operator_release)


@pytest.mark.program("raw_rows_in_an_exception")
def test_compliance_sees_the_real_runs_errors_only_after_the_decision(campaign):
    ev = _evidence(campaign, "raw_rows_in_an_exception")
    mark = campaign.constants["MARK"] + " raw rows"
    # The reviewer decides on the code, the spec and the DP output (program mode is DP);
    # the block errors are diagnostics that open once the job is decided.
    assert mark not in json.dumps(ev.compliance, ensure_ascii=False)
    assert mark in json.dumps(ev.diagnostics, ensure_ascii=False)


def test_reviewers_decide_without_any_block_outcome(campaign):
    for name, ev in campaign.evidence.items():
        assert not {"blocks", "run_logs", "updated_at"} & set(ev.compliance), name
        assert set(ev.compliance["compliance"]) <= {"runner_image", "failed"}, name


def test_compliance_sees_block_outcome_counts_of_every_job_after_the_decision(campaign):
    for name, ev in campaign.evidence.items():
        summary = ev.diagnostics["compliance"]["blocks"]
        assert summary["blocks"] == K, name
        if ev.program.reasons:
            assert summary["reasons"] == ev.program.reasons, name
        elif ev.program.reports:
            assert summary == {"blocks": K, "defaults_used": 0, "reasons": {}}, name
        assert "def analyse" in ev.compliance["code"]


def test_operator_views_hold_nothing_of_the_run(campaign):
    for name, ev in campaign.evidence.items():
        for view in (ev.operator_before, ev.operator_after, *ev.operator_listed):
            assert set(view) == OPERATOR_KEYS, name
            assert view["message"] == "", name
        text = _operator_text(ev)
        for secret in (campaign.constants["MARK"], campaign.constants["CANARY"], *RUN_WORDS):
            assert secret not in text, (name, secret)
        assert f"{campaign.target_cost:.2f}" not in text


def test_the_operator_gets_only_the_dp_release(campaign):
    for name, ev in campaign.evidence.items():
        release = ev.operator_release
        assert set(release["files"]) == {"result.json", "program_output.csv"}, name
        table = json.loads(release["files"]["result.json"])["tables"][0]
        assert [r[0] for r in table["rows"]] == list(ev.program.attacks), name
        assert set(table) == {"name", "columns", "rows", "epsilon", "mechanism", "noise_scale", "sensitivity",
                              "expected_abs_error", "k", "composition", "parts"}, name
        assert "wall" not in json.dumps(release["certificate"]), name


# ------------------------------------------------------------------ side channels: timing
def _claimed(ev) -> datetime:
    return _aware(datetime.fromisoformat(ev.claimed_at))


def test_every_outcome_shows_at_claim_plus_the_policy_wall_time(campaign):
    for name, ev in campaign.evidence.items():
        wall = _visible_delay(ev, campaign)
        assert abs(_aware(ev.visible_after) - _claimed(ev) - timedelta(seconds=wall)) < CLOCK_READS_APART, name
        assert ev.operator_before["state"] == "in_progress", name
        assert ev.operator_after["state"] == "in_progress", name   # awaiting review, like any job


@pytest.mark.program("runtime_depends_on_a_secret_row")
def test_a_runtime_that_depends_on_a_secret_row_is_invisible_to_the_operator(campaign):
    slow = _evidence(campaign, "runtime_depends_on_a_secret_row")
    fast = campaign.evidence["runtime_control_without_the_secret_row"]
    # In the domain, the runs did differ: one block slept while the target was in it.
    assert max(b["wall_seconds"] for b in slow.blocks) >= SLEEP_SECONDS
    assert max(b["wall_seconds"] for b in fast.blocks) < SLEEP_SECONDS
    per_job = {"id", "spec", "spec_hash", "created_at", "outcome_visible_after"}
    for a, b in zip([slow.operator_before, slow.operator_after, *slow.operator_listed],
                    [fast.operator_before, fast.operator_after, *fast.operator_listed]):
        assert {k: v for k, v in a.items() if k not in per_job} == {k: v for k, v in b.items() if k not in per_job}
    for ev in (slow, fast):
        visible_in = _aware(ev.visible_after) - _claimed(ev)
        assert abs(visible_in - timedelta(seconds=_visible_delay(ev, campaign))) < CLOCK_READS_APART
        assert ev.ledger == [("reserve", "reserve", EPSILON), ("charge", "resolve", EPSILON)]
    assert _visible_delay(slow, campaign) == _visible_delay(fast, campaign)


@pytest.mark.program("runtime_depends_on_a_secret_row")
def test_a_program_job_is_decided_before_its_outcome_becomes_visible(campaign):
    # Otherwise an operator polling at visible_after sees in_progress for the slow job only.
    slow = _evidence(campaign, "runtime_depends_on_a_secret_row")
    assert _aware(datetime.fromisoformat(slow.finished_at)) <= _aware(slow.visible_after)


# ------------------------------------------------------------------ side channels: budget
def test_every_job_is_charged_exactly_its_declared_epsilon(campaign):
    for name, ev in campaign.evidence.items():
        assert ev.ledger == [("reserve", "reserve", EPSILON), ("charge", "resolve", EPSILON)], name
    balance = campaign.services.views.balance(campaign.operator, "health_visits")
    assert balance["lifetime_spent"] == pytest.approx(EPSILON * len(campaign.evidence))
    assert balance["lifetime_reserved"] == pytest.approx(0.0)


@pytest.mark.program("spend_budget_only_if_a_row_exists")
def test_killing_the_run_when_a_row_exists_does_not_refund_it(campaign):
    ev = _evidence(campaign, "spend_budget_only_if_a_row_exists")
    assert sorted(b["reason"] or "" for b in ev.blocks) == ["", "error"]
    assert ev.ledger == [("reserve", "reserve", EPSILON), ("charge", "resolve", EPSILON)]


@pytest.mark.program("mock_aware_target_leak")
# ------------------------------------------------------------------ mock data
def test_a_mock_aware_leak_passes_submission_but_is_clamped_and_noised(campaign):
    ev = _evidence(campaign, "mock_aware_target_leak")
    assert campaign.target_cost > 1.0
    # The target's block returned the raw cost; trusted code clamped it to the declared range.
    assert sorted(b["vector"][0] for b in ev.blocks) == [0.0, 1.0]
    table = json.loads(ev.operator_release["files"]["result.json"])["tables"][0]
    assert table["noise_scale"][0] == pytest.approx(1.0 / K / EPSILON, rel=1e-6)
    assert f"{campaign.target_cost}" not in json.dumps(ev.operator_release)


def test_a_program_that_fails_on_mock_data_is_refused_before_any_charge(campaign):
    refusal = campaign.mock_refusal
    assert refusal["error"] is not None and "mock data" in refusal["error"]
    assert refusal["balance_after"] == refusal["balance_before"]
    assert refusal["jobs"] == sum(p.timing_policy for p in programs_for(campaign.backend))


def test_the_suite_covers_enough_hostile_programs():
    assert len(PROGRAMS) >= 25 and set(BY_NAME) >= {
        "net_tcp_udp_to_host", "net_dns_exfiltration", "read_shadow_and_root_secrets",
        "read_host_environment", "read_other_datasets_store_and_keys", "write_to_the_dataset",
        "net_raw_ipv6_and_host_sockets", "fork_bomb", "memory_bomb", "disk_fill", "cpu_spin_past_the_limit",
        "sleep_past_the_limit", "huge_stdout_and_stderr", "output_links_devices_and_escapes",
        "setuid_and_capabilities", "ptrace_the_host", "mount_chroot_bpf_modules", "plant_for_the_next_job",
        "raw_rows_in_an_exception", "runtime_depends_on_a_secret_row", "spend_budget_only_if_a_row_exists"}


def test_every_hostile_program_is_a_well_formed_submission():
    from sandbox.core.specs.source import check_code
    from tests.security.hostile import source
    for p in PROGRAMS:
        check_code(source(p, {"MARK": "m"}))      # syntax, size, no NUL, def analyse(df)

"""The review decision rule (core.release.decision): approving needs a sign-off on every
needs_review finding; per-file decisions (Airlock's approve / request changes / reject) make
the job decision; the operator only ever gets a reason from the fixed list."""
from __future__ import annotations

import pytest

from sandbox.core.errors import Conflict, InvalidInput
from sandbox.core.records import Output, Review
from sandbox.core.release import decision as d
from sandbox.core.release.reasons import REASONS


def out(name, *checks):
    return Output(job_id="j", name=name, sha256="0" * 64, size=1, content="",
                  checks=[{"name": n, "status": s, "explanation": "x"} for n, s in checks])


OUTPUTS = [out("t.csv", ("file:t.csv", "pass"), ("dominance_p:t.csv", "needs_review")),
           out("notes.txt", ("file:notes.txt", "pass"), ("content:notes.txt", "needs_review")),
           out("m.csv", ("file:m.csv", "pass"))]
ALL_SIGNED = {("t.csv", "dominance_p:t.csv"): "", ("notes.txt", "content:notes.txt"): "looked at every line"}


def files(**decisions):
    return d.parse_files({n.replace("_", "."): v if isinstance(v, dict) else {"decision": v}
                          for n, v in decisions.items()})


def test_findings_are_the_needs_review_checks_of_each_output():
    assert d.findings(OUTPUTS) == [("t.csv", "dominance_p:t.csv"), ("notes.txt", "content:notes.txt")]


def test_approval_is_refused_while_a_finding_lacks_a_sign_off():
    with pytest.raises(Conflict, match="content:notes.txt"):
        d.decide(OUTPUTS, "approve", "", {}, {("t.csv", "dominance_p:t.csv"): ""})
    with pytest.raises(Conflict, match="sign off"):
        d.decide(OUTPUTS, "approve", "", {}, {})
    verdict = d.decide(OUTPUTS, "approve", "", {}, ALL_SIGNED)
    assert verdict.decision == "approve" and verdict.reason == ""
    assert set(verdict.files) == {"t.csv", "notes.txt", "m.csv"}
    assert {"output": "notes.txt", "check": "content:notes.txt", "note": "looked at every line"} in \
        verdict.signoffs_record()


def test_only_findings_can_be_signed_off():
    with pytest.raises(InvalidInput, match="not a finding"):
        d.decide(OUTPUTS, "approve", "", {}, {**ALL_SIGNED, ("m.csv", "file:m.csv"): ""})


def test_a_file_with_a_failed_check_cannot_be_approved_and_a_failed_run_not_at_all():
    failing = [out("t.csv", ("min_cell_count:t.csv", "fail"))]
    with pytest.raises(Conflict, match="checks failed"):
        d.decide(failing, "approve", "", {}, {})
    with pytest.raises(Conflict, match="run failed"):
        d.decide([], "approve", "", {}, {}, run_failed=True)
    assert d.decide([], "reject", "run_failed", {}, {}, run_failed=True).reason == "run_failed"


def test_all_files_approved_approves_the_job():
    v = d.decide(OUTPUTS, None, "", files(t_csv="approve", notes_txt="approve", m_csv="approve"), ALL_SIGNED)
    assert v.decision == "approve"


def test_a_rejected_file_rejects_the_job_with_its_reason_from_the_list():
    v = d.decide(OUTPUTS, None, "", files(t_csv={"decision": "reject", "reason": "too_detailed", "note": "free"},
                                         notes_txt="approve", m_csv="request_changes"),
                 {("notes.txt", "content:notes.txt"): ""})
    assert (v.decision, v.reason) == ("reject", "too_detailed")
    # The job-wide reason the reviewer chose wins; either way it is a code from the list.
    v = d.decide(OUTPUTS, None, "disclosure_risk", files(t_csv={"decision": "reject", "reason": "too_detailed"},
                                                        notes_txt={"decision": "reject", "reason": "outside_purpose"},
                                                        m_csv="approve"), {})
    assert (v.decision, v.reason) == ("reject", "disclosure_risk") and v.reason in REASONS


def test_requested_changes_reject_the_job_with_the_fixed_changes_requested_reason():
    v = d.decide(OUTPUTS, None, "", files(t_csv="request_changes", notes_txt="approve", m_csv="approve"),
                 {("notes.txt", "content:notes.txt"): ""})
    assert (v.decision, v.reason) == ("reject", d.CHANGES_REQUESTED) and d.CHANGES_REQUESTED in REASONS
    # A file whose changes are requested needs no sign-off; an approved one still does.
    with pytest.raises(Conflict, match="content:notes.txt"):
        d.decide(OUTPUTS, None, "", files(t_csv="request_changes", notes_txt="approve", m_csv="approve"), {})


def test_every_file_needs_a_decision_and_they_must_agree_with_a_stated_job_decision():
    with pytest.raises(InvalidInput, match="m.csv"):
        d.decide(OUTPUTS, None, "", files(t_csv="approve", notes_txt="approve"), ALL_SIGNED)
    with pytest.raises(InvalidInput, match="no output named"):
        d.decide(OUTPUTS, None, "", files(t_csv="approve", notes_txt="approve", m_csv="approve", x_csv="approve"),
                 ALL_SIGNED)
    with pytest.raises(InvalidInput, match="amount to 'reject'"):
        d.decide(OUTPUTS, "approve", "", files(t_csv="request_changes", notes_txt="approve", m_csv="approve"),
                 ALL_SIGNED)


@pytest.mark.parametrize("raw", [{"t.csv": {"decision": "maybe"}}, {"t.csv": {"decision": "reject"}},
                                 {"t.csv": {"decision": "reject", "reason": "the cells are too small"}},
                                 {"t.csv": "approve"}, ["t.csv"]])
def test_bad_file_decisions_are_refused_naming_what_to_fix(raw):
    with pytest.raises(InvalidInput):
        d.parse_files(raw)


@pytest.mark.parametrize("raw", [{"output": "t.csv"}, [{"output": "t.csv"}], [{"output": 1, "check": "c"}],
                                 [{"output": "t.csv", "check": "c", "note": 3}],
                                 [{"output": "t.csv", "check": "c", "note": "x" * 5000}]])
def test_bad_sign_offs_are_refused(raw):
    with pytest.raises(InvalidInput):
        d.parse_signoffs(raw)


def test_a_job_wide_rejection_needs_a_reason_code():
    with pytest.raises(InvalidInput, match="reason"):
        d.decide(OUTPUTS, "reject", "", {}, {})
    with pytest.raises(InvalidInput):
        d.decide(OUTPUTS, "reject", "cells too small", {}, {})
    with pytest.raises(InvalidInput):
        d.decide(OUTPUTS, None, "", {}, {})


def test_valid_approvals_count_only_votes_that_signed_off_every_finding():
    signed = [{"output": o, "check": c, "note": ""} for o, c in ALL_SIGNED]
    votes = [Review("j", "a", "approve", signoffs=signed), Review("j", "b", "approve", signoffs=signed[:1]),
             Review("j", "c", "reject", reason="too_detailed", signoffs=signed)]
    assert d.valid_approvals(votes, OUTPUTS) == 1
    # Where nothing needs review (a DP query), an approval needs no sign-off.
    assert d.valid_approvals([Review("j", "a", "approve")], [out("result.json", ("shape:t", "pass"))]) == 1

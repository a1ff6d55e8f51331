"""The fixed list of reasons a compliance reviewer gives when rejecting a release.

The reason of a rejection is the only part of a reviewer's judgement that reaches the operator.
A reviewer has seen real-run output, so free text could carry any value from it; a choice from
this list carries at most log2(len(REASONS)) bits, chosen by a person under a rule. What the
reviewer wants to add goes in a note that only compliance reads (the vote, the audit log).
The order is the order reviewers are offered them.
"""
from __future__ import annotations

from sandbox.core.errors import InvalidInput, Text

REASONS: dict[str, Text] = {
    "disclosure_risk": Text(
        "The output could disclose information about individual people or organisations (small cells, "
        "dominant contributors, identifiers or row-level data)."),
    "differencing_risk": Text(
        "Together with earlier releases, the output could disclose information about individuals "
        "(differencing)."),
    "outside_purpose": Text("The output goes beyond the purpose stated for the job and allowed by the licence."),
    "too_detailed": Text(
        "The output is more detailed than the stated purpose needs (groupings too fine, too many cells "
        "or statistics); make it coarser and resubmit."),
    "code_not_acceptable": Text(
        "The code is not acceptable for a run on the real data (for example it tries to reach the network "
        "or the host, or to encode data in its output)."),
    "run_failed": Text(
        "The run did not produce an output that can be released. Reproduce the job on the mock data "
        "(sandbox run --mock), fix it and resubmit."),
    "policy_or_licence": Text("The job does not comply with the dataset's policy or the terms of the licence."),
    # What a job is rejected with when a reviewer asked for changes to a file and rejected none.
    "changes_requested": Text(
        "The reviewer asks for changes to one or more outputs before they can be released; revise the "
        "job (coarser groupings, fewer or different outputs) and resubmit."),
}


def reason_text(code: str) -> Text:
    """The operator-facing text of a reason code; InvalidInput names the valid codes."""
    if not isinstance(code, str) or code not in REASONS:
        raise InvalidInput(Text("unknown rejection reason '{code}'; choose one of: {codes}",
                                code=str(code or ""), codes=", ".join(REASONS)), "reason")
    return REASONS[code]

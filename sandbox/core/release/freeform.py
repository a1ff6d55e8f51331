"""Rules for free-form files: what the operator's own program wrote, re-encoded by trusted
code (sandbox.agent.reencode) but otherwise unverified. Such a file always goes to a person,
and a frequency table in it must hold whole counts (decimals can carry hidden values).
"""
from __future__ import annotations

import pandas as pd

from sandbox.core.errors import Text
from sandbox.core.release.cells import cell_values
from sandbox.core.release.checks import FAIL, NEEDS_REVIEW, PASS, Check, fmt_cells


def review_check(name: str, file_type: str) -> Check:
    """The finding every free-form file carries, so no such file passes on machine checks alone."""
    return Check(f"free_form:{name}", NEEDS_REVIEW,
                 Text("{name} ({type}) was written by the operator's program: trusted code re-encoded it but "
                      "did not compute it, so a reviewer must judge its content", name=name, type=file_type))


def check_integer_counts(df: pd.DataFrame, keys: list[str], values: list[str]) -> Check:
    """A frequency table's counts are whole numbers; 10.000123 is a value hidden in a count."""
    odd = [key for key, v in cell_values(df, keys, values) if not float(v).is_integer()]
    if odd:
        return Check("integer_counts", FAIL,
                     Text("{n} count(s) are not whole numbers: {cells}; a frequency table holds "
                          "counts only (decimals can carry other values), so write whole counts and release "
                          "shares or means as a separate table", n=len(odd), cells=fmt_cells(odd)))
    return Check("integer_counts", PASS, Text("every count is a whole number"))

"""What each release-gate check means, for the review page: one help text per check name (the
part before ':'; the check's own explanation says the specifics). Every name the gate can emit
has one, in English here and in Chinese in the catalog (tests/ui/test_check_help.py)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

CHECK_HELP = {
    # Query and program modes (DP): the shape of what the runner wrote.
    "result_format": _l("The runner's output is one well-formed JSON document of tables."),
    "declared_tables": _l("Exactly the tables the spec declared, one each: nothing extra can leave."),
    "shape": _l("Each table has the cells the spec and the public manifest imply, public keys only, finite "
                "numbers, and the declared noise mechanism and scale."),
    "declared_outputs": _l("Exactly the outputs the program's contract declared, in order: nothing extra can leave."),
    "finite_values": _l("Every released value is a finite number (no NaN or infinity that could carry a signal)."),
    "dp_aggregate": _l("The value is released by sample-and-aggregate with noise from OpenDP, within the "
                       "contract's bounds."),
    # Every table.
    "table_size": _l("The table is below the size limit for a release."),
    "forbidden_columns": _l("No column the policy forbids (e.g. the person key) appears in the output."),
    "direct_identifiers": _l("No column looks like a direct identifier (ID numbers, names, phone numbers)."),
    "row_level": _l("The output is aggregated, not one row per person or record."),
    # Reviewed mode: files.
    "present": _l("A file the spec declared was written by the program."),
    "file": _l("The file has the declared type and stays within the size limit."),
    "reencode": _l("Trusted code decoded the file and wrote it again from what it visibly holds, dropping "
                   "metadata and hidden bytes."),
    "free_form": _l("The operator's code wrote this file, trusted code did not compute it: a reviewer must "
                    "judge all of its content for values about individuals."),
    "content": _l("A picture or text that no machine rule reads: a reviewer must look at all of it for values "
                  "about individuals."),
    "table": _l("The file can be read as a table of the declared type."),
    # Reviewed mode: statistical disclosure rules (ACRO's), with statistics from trusted code.
    "table_kind": _l("A table of kind 'other' fits no disclosure rule: a reviewer judges every cell."),
    "cell_keys": _l("Every row is one of the groups trusted code computed from the data; other rows are refused."),
    "min_cell_count": _l("Each cell has at least the threshold number of contributors (ACRO: 10), counted by "
                         "trusted code."),
    "zero_cells": _l("Empty (zero) cells show that nobody in a group has a trait; they are disclosive where "
                     "the policy says so."),
    "negative_values": _l("Counts are never negative; negative contributions make dominance undefined, so such "
                          "cells need a reviewer."),
    "integer_counts": _l("A frequency table holds whole counts only: decimals could carry other values."),
    "dominance_nk": _l("N-k rule: in no cell do the largest n contributors (ACRO: 2) hold more than the share k "
                       "(ACRO: 0.9) of the total."),
    "dominance_p": _l("p percent rule: the second largest contributor cannot estimate any contributor's value "
                      "to within p percent (ACRO: p = 10)."),
    "degrees_of_freedom": _l("The model's residual degrees of freedom, computed by trusted code, reach the "
                             "minimum, so the model does not reproduce the records."),
    "model_size": _l("A model's output has one row per parameter; many more rows look like records."),
    # Reviewed mode: tables and models computed by trusted code from the declared computation.
    "computed": _l("Trusted code computed this table or fitted this model from the raw data, in a box without "
                   "the operator's code, together with its per-cell statistics."),
    "values_same": _l("No cell holds one value for every row, which would reveal each contributor's value."),
    "cell_statistics": _l("The per-cell statistics trusted code computed with this output (contributing units, "
                          "rows, largest contributions), for the reviewer; they are never released."),
    "suppression": _l("Cells that failed a rule were left empty (primary suppression, as in ACRO): check that "
                      "other cells and earlier totals do not let them be recomputed."),
    "rounding": _l("Every value was rounded to the declared base (as in ACRO): check that the rounding hides "
                   "the small cells."),
    "regressor_levels": _l("Each level of a categorical regressor has at least the threshold number of units, so "
                           "no coefficient stands for a few units' own values."),
    "fit_warnings": _l("The model library warned while fitting: judge whether the estimates are meaningful."),
    "differencing": _l("Combined with every earlier release of the same dataset version, no cell isolates a "
                       "group smaller than the threshold."),
}


def check_help(name: str) -> str:
    """The help of a check, in the page's language ('' for a name without one)."""
    text = CHECK_HELP.get(str(name).split(":", 1)[0])
    return str(text) if text is not None else ""

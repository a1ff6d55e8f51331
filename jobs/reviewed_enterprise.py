"""Reviewed-mode example (non-DP): exact tables and a model that compliance reviews before release.

The tables and the model are declared in reviewed_enterprise.json and computed by trusted
code, with the per-cell statistics the disclosure checks use. This program writes only a
free-form note: analyse(df, out) gets the whole dataset and the output folder; only files
declared under "outputs" are collected, and each always goes to a reviewer.
"""
import os


def analyse(df, out):
    with open(os.path.join(out, "notes.txt"), "w", encoding="utf-8") as f:
        f.write("Active enterprises (存续/在业) by district; employees by entity type; "
                "registered capital against headcount and entity type (OLS).\n")

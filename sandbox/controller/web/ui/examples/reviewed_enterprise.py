"""Reviewed-mode example (non-DP): exact tables that compliance reviews before release.

analyse(df, out) gets the whole dataset and the output folder; only files declared in
reviewed_enterprise.json are collected, and each goes through the disclosure checks.
"""
import os


def analyse(df, out):
    active = df[df["status"].isin(["存续", "在业"])]
    counts = active.groupby("district").size().reset_index(name="enterprises")
    counts.to_csv(os.path.join(out, "active_by_district.csv"), index=False)
    by_type = active.groupby("entity_type")["employees"].agg(["count", "sum"]).reset_index()
    by_type.columns = ["entity_type", "enterprises", "employees"]
    by_type.to_csv(os.path.join(out, "employees_by_type.csv"), index=False)
    with open(os.path.join(out, "notes.txt"), "w", encoding="utf-8") as f:
        f.write("Active enterprises (存续/在业) by district; employees by entity type.\n")

"""The benchmark's definition: the four queries (JSON, SQL and the plain engines' SQL), the
engines and their labels. Shared by the measuring code (run.py) and its report (report.py)."""
from __future__ import annotations

EPSILON = 1.0

QUERIES = {
    "Q1": ("total count", {"name": "q1", "statistic": "count", "epsilon": EPSILON}),
    "Q2": ("count by district", {"name": "q2", "statistic": "count", "group_by": ["district"], "epsilon": EPSILON}),
    "Q3": ("mean cost by district", {"name": "q3", "statistic": "mean", "column": "cost", "group_by": ["district"],
                                     "epsilon": EPSILON}),
    "Q4": ("sum cost by district x sex", {"name": "q4", "statistic": "sum", "column": "cost",
                                          "group_by": ["district", "sex"], "epsilon": EPSILON}),
}
# The same four queries as SQL jobs (sandbox/core/specs/sql.py): the sandbox_sql engine times
# the SQL path, compile included, against the JSON path (sandbox_verified).
SQL_QUERIES = {
    "Q1": "SELECT COUNT(*) AS q1 FROM health_visits",
    "Q2": "SELECT district, COUNT(*) AS q2 FROM health_visits GROUP BY district",
    "Q3": "SELECT district, AVG(cost) AS q3 FROM health_visits GROUP BY district",
    "Q4": "SELECT district, sex, SUM(cost) AS q4 FROM health_visits GROUP BY district, sex",
}
# Plain baselines compute the same (non-private) statistic, clamped like the DP ones.
DUCKDB_SQL = {
    "Q1": "SELECT count(*) FROM read_parquet({files})",
    "Q2": "SELECT district, count(*) FROM read_parquet({files}) GROUP BY district",
    "Q3": "SELECT district, avg(least(greatest(cost, 0), 10000)) FROM read_parquet({files}) GROUP BY district",
    "Q4": "SELECT district, sex, sum(least(greatest(cost, 0), 10000)) FROM read_parquet({files}) "
          "GROUP BY district, sex",
}

ENGINES = ("duckdb", "polars", "sandbox_verified", "sandbox_unverified", "sandbox_sql", "opendp_context", "tumult")
ENGINE_LABEL = {
    "duckdb": "plain DuckDB",
    "polars": "plain Polars",
    "sandbox_verified": "sandbox runner, bound verified at registration (production path)",
    "sandbox_unverified": "sandbox runner, bound enforced per query (unverified path)",
    "sandbox_sql": "sandbox runner given the query as SQL (sqlglot compile + the verified path)",
    "opendp_context": "OpenDP 0.16 Context, identifier + truncate_per_group(5)",
    "tumult": "Tumult Analytics 0.21 on Spark 3.5 (local), AddRowsWithID + MaxRowsPerID(5)",
}


def human_rows(n: int) -> str:
    for div, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= div and n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)

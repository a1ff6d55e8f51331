"""OpenAPI 3.1 document for /api/v1 (kept next to the views it describes)."""
from __future__ import annotations

from sandbox.core.release.reasons import REASONS


def _with_version(op):
    """The policy version number in the path (an integer, unlike the string ids _op knows)."""
    op["parameters"].append({"name": "version", "in": "path", "required": True, "schema": {"type": "integer"}})
    return op


def _op(summary, roles, params=(), body=None, responses=None):
    op = {"summary": summary, "description": f"Roles: {roles}.",
          "security": [{"bearer": []}] if roles != "public" else [],
          "responses": responses or {"200": {"description": "OK"}, "400": {"$ref": "#/components/responses/Invalid"},
                                     "401": {"description": "missing or invalid token"},
                                     "403": {"description": "role not allowed"},
                                     "404": {"description": "not found"}}}
    if params:
        op["parameters"] = [{"name": p, "in": "path" if p.endswith("_id") or p in ("name", "dataset") else "query",
                             "required": p.endswith("_id") or p in ("name", "dataset"),
                             "schema": {"type": "string"}} for p in params]
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


QUERY_SPEC = {
    "type": "object",
    "required": ["mode", "dataset", "purpose", "queries"],
    "properties": {
        "mode": {"const": "query"},
        "dataset": {"type": "string"},
        "purpose": {"type": "string"},
        "queries": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "statistic", "epsilon"],
            "properties": {
                "name": {"type": "string"},
                "statistic": {"enum": ["count", "sum", "mean", "histogram", "quantile"]},
                "column": {"type": "string"},
                "group_by": {"type": "array", "items": {"type": "string"}},
                "bins": {"type": "array", "items": {"type": "number"}},
                "q": {"type": "number"},
                "epsilon": {"type": "number", "exclusiveMinimum": 0},
            }}},
    },
}


# A query job given as SQL (sandbox/core/specs/sql.py, docs/jobs.md): compiled by the server to
# the same query list as QuerySpec, so one plan, one cost preview, one runner and one gate.
SQL_QUERY_SPEC = {
    "type": "object",
    "required": ["mode", "dataset", "purpose", "sql"],
    "description": (
        "A query job in SQL. Each statement is SELECT <categorical GROUP BY columns>, <aggregates> FROM <dataset> "
        "[WHERE <column> <op> <literal> AND ...] [GROUP BY <categorical columns>]; aggregates: COUNT(*), "
        "SUM(col), AVG(col), MEDIAN(col), PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY col), and a histogram as "
        "WIDTH_BUCKET(col, low, high, n) (or WIDTH_BUCKET(col, ARRAY[edges])) selected and grouped next to "
        "COUNT(*). Each aggregate is one released table (named by its AS alias) with the value and its 95% "
        "interval. Epsilon per statement: the job's `epsilon` (a number for one statement, else a list, one per "
        "statement) or BigQuery's SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS(epsilon => e) in the statement; a "
        "statement's epsilon is split evenly between its aggregates. Joins, subqueries, SELECT *, ORDER BY, "
        "LIMIT, HAVING, other functions and grouping by non-categorical columns are refused with a 400 naming "
        "the part to change."),
    "properties": {
        "mode": {"const": "query"},
        "dataset": {"type": "string"},
        "purpose": {"type": "string"},
        "sql": {"oneOf": [{"type": "string", "description": "one statement, or several separated by ';'"},
                          {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 10}]},
        "epsilon": {"oneOf": [{"type": "number", "exclusiveMinimum": 0},
                              {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0},
                               "description": "one epsilon per statement"}],
                    "description": "optional when every statement gives OPTIONS(epsilon => ...)"},
    },
    "examples": [
        {"mode": "query", "dataset": "health_visits", "purpose": "public_health_planning",
         "sql": ["SELECT district, COUNT(*) AS visits, AVG(cost) AS mean_cost FROM health_visits GROUP BY district",
                 "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS(epsilon => 0.2) MEDIAN(cost) AS median_cost "
                 "FROM health_visits WHERE age >= 18"],
         "epsilon": [0.6, 0.2]},
    ],
}


def spec() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Public-data sandbox API", "version": "1",
                 "description": "数据可用不可见: operators analyse public data they never see."},
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Invalid": {"description": "bad input; 'message' says what to fix",
                                      "content": {"application/json": {"schema": {
                                          "type": "object", "properties": {"error": {"type": "string"},
                                                                           "message": {"type": "string"},
                                                                           "field": {"type": "string"}}}}}}},
            "schemas": {"QuerySpec": QUERY_SPEC, "SqlQuerySpec": SQL_QUERY_SPEC},
        },
        "paths": {
            "/me": {"get": _op("Who am I", "any")},
            "/datasets": {"get": _op("List datasets (public metadata)", "any"),
                          "post": _op("Register a dataset version from a server-side path or URI under the allowed "
                                      "roots, or from an upload; 400 carries the owner's report when refused",
                                      "owner (the dataset's owner account)", body={
                                          "type": "object", "required": ["manifest"],
                                          "properties": {"manifest": {"type": "string"},
                                                         "data": {"type": "string"}, "upload": {"type": "string"},
                                                         "enforce": {"type": "boolean"},
                                                         "progress": {"type": "string"}}})},
            "/registration-progress/{progress_id}": {"get": _op(
                "How far the owner's registration sent with this progress token has got (stage, fraction)",
                "owner", ["progress_id"])},
            "/datasets/{name}/versions": {"get": _op("Registered versions with their reports", "owner, compliance",
                                                     ["name"])},
            "/datasets/{name}/report": {"get": _op("Registration report of a version (default: current)",
                                                   "owner, compliance", ["name", "version"])},
            "/datasets/{name}/retire": {"post": _op("Retire a version (default: current): no new jobs", "owner",
                                                    ["name"], body={"type": "object", "properties": {
                                                        "version": {"type": "string"}}})},
            "/uploads": {"post": _op("Start a chunked upload of one Parquet file or of a folder's files", "owner")},
            "/uploads/{upload_id}": {
                "get": _op("Bytes received so far of ?path= (resume from there)", "owner", ["upload_id", "path"]),
                "put": _op("Append a chunk (application/octet-stream) at ?offset= of the file at ?path= (a "
                           "relative path in a folder upload; default: the one file)", "owner",
                           ["upload_id", "offset", "path"]),
                "delete": _op("Remove an upload", "owner", ["upload_id"]),
            },
            "/datasets/{name}": {"get": _op("Dataset schema and public metadata", "any", ["name"])},
            "/datasets/{name}/mock": {"get": _op("Mock data generated from the manifest alone", "any",
                                                 ["name", "format", "rows"])},
            "/datasets/{name}/policy": {"get": _op("Current policy of a dataset", "any", ["name"])},
            "/policies": {"post": _op(
                "Apply a policy version (or propose it, where the policy in force asks for a second approval); "
                "409 when the policy in force is not base_version (0 = none yet)", "owner", body={
                    "type": "object", "required": ["content", "reason"],
                    "properties": {"content": {"type": "string"}, "filename": {"type": "string"},
                                   "reason": {"type": "string"}, "base_version": {"type": "integer"}}})},
            "/datasets/{name}/policy/versions": {"get": _op(
                "Every version of the policy (applied, proposed, declined) with reason, diff and summary",
                "owner (the dataset's owner account), compliance", ["name"])},
            "/datasets/{name}/policy/versions/{version}/decision": {"post": _with_version(_op(
                "Approve or decline a proposed policy version (not its proposer)", "compliance", ["name"], body={
                    "type": "object", "required": ["decision", "reason"],
                    "properties": {"decision": {"enum": ["approve", "decline"]}, "reason": {"type": "string"}}}))},
            "/budget/{dataset}": {"get": _op("Privacy-budget balance", "operator (own), owner, compliance",
                                             ["dataset", "operator"])},
            "/jobs": {
                "get": _op("List jobs (operators: their own)", "any", ["state"]),
                "post": _op("Submit a query job, as a list of statistics (QuerySpec) or as SQL statements "
                            "(SqlQuerySpec: `sql`, `epsilon` per statement or OPTIONS(epsilon => ...)); "
                            "?dry_run=1 shows cost, balance and each table's 95% interval without reserving; each "
                            "query's `utility` puts that interval next to a typical cell, assumed from the public "
                            "manifest (default_rows), never from the data",
                            "operator", ["dry_run"], body={"oneOf": [{"$ref": "#/components/schemas/QuerySpec"},
                                                                     {"$ref": "#/components/schemas/SqlQuerySpec"}]}),
            },
            "/jobs/{job_id}": {"get": _op("Job status", "any", ["job_id"])},
            "/jobs/{job_id}/cancel": {"post": _op("Cancel a job that has not started", "operator", ["job_id"])},
            "/jobs/{job_id}/run-approval": {"post": _op("Owner approves or refuses a run", "owner", ["job_id"], body={
                "type": "object", "properties": {"decision": {"enum": ["approve", "reject"]},
                                                 "reason": {"type": "string"}}})},
            "/reviews": {"get": _op("Review queue", "compliance")},
            "/reviews/{job_id}": {
                "get": _op("Review page data: checks, outputs preview, code and spec; in DP modes nothing of the "
                           "real run but the DP output", "compliance", ["job_id"]),
                "post": _op("One reviewer's vote: a decision per output file (approve, request_changes, reject "
                            "with a reason code) or one decision for every file, and a sign-off on each "
                            "needs_review finding of every approved file. The job decision follows from the files "
                            "(all approved: approve; any rejected: reject; else reject with changes_requested); "
                            "the operator reads only the fixed text of its reason. Notes are compliance only.",
                            "compliance", ["job_id"], body={
                                "type": "object",
                                "properties": {"decision": {"enum": ["approve", "reject"],
                                                            "description": "required unless files are given"},
                                               "reason": {"enum": list(REASONS),
                                                          "description": "required to reject; see /review-reasons"},
                                               "note": {"type": "string", "maxLength": 4000,
                                                        "description": "compliance only, never the operator"},
                                               "files": {"type": "object", "description": "output name -> decision",
                                                         "additionalProperties": {
                                                             "type": "object", "required": ["decision"],
                                                             "properties": {
                                                                 "decision": {"enum": ["approve", "request_changes",
                                                                                       "reject"]},
                                                                 "reason": {"enum": list(REASONS),
                                                                            "description": "required to reject"},
                                                                 "note": {"type": "string", "maxLength": 4000}}}},
                                               "signoffs": {"type": "array", "description": (
                                                   "one per needs_review finding of an approved file (GET "
                                                   "/reviews/{job_id} lists them as findings)"),
                                                   "items": {"type": "object", "required": ["output", "check"],
                                                             "properties": {
                                                                 "output": {"type": "string"},
                                                                 "check": {"type": "string"},
                                                                 "note": {"type": "string", "maxLength": 4000}}}}}}),
            },
            "/reviews/{job_id}/diagnostics": {"get": _op(
                "Run logs and per-block outcomes of the real runs, to investigate; for DP jobs only once decided",
                "compliance", ["job_id"])},
            "/review-reasons": {"get": _op("The fixed list of rejection reasons: code and the operator's text",
                                           "compliance")},
            "/jobs/{job_id}/release": {"get": _op("Released files and signed certificate", "any", ["job_id"])},
            "/jobs/{job_id}/release.zip": {"get": _op("Released files and certificate as a zip", "any", ["job_id"])},
            "/public-key": {"get": _op("Public key that verifies release certificates", "public")},
            "/public-keys": {"get": _op("Every public key ever used to sign, by key id (key rotation)", "public")},
            "/audit/verify": {"get": _op("Verify the hash-chained audit log", "compliance, owner")},
            "/consumption/{dataset}": {"get": _op("Budget consumption per operator and period, and dataset-wide",
                                                  "owner, compliance", ["dataset"])},
            "/metering": {"get": _op("Metering per operator, dataset and month (?format=csv)", "owner, compliance",
                                     ["format"])},
            "/audit/head": {"get": _op("Current head of the audit chain, for anchoring elsewhere", "compliance, owner")},
            "/admin/sweep": {"post": _op("Recover lost jobs now", "owner, compliance")},
            "/notices": {"get": _op("The caller's inbox: notices visible now, newest first, and the unread count "
                                    "(?unread=1: unread only). A job's outcome appears no earlier than the "
                                    "job's outcome_visible_after", "operator, owner, compliance", ["unread"])},
            "/notices/{notice_id}/read": {"post": _op("Mark one notice read", "operator, owner, compliance",
                                                      ["notice_id"])},
            "/notices/read": {"post": _op("Mark every visible notice read", "operator, owner, compliance")},
            "/openapi.json": {"get": _op("This document", "public")},
        },
    }

"""A small Python client for the sandbox API (CLI and notebooks).

    from sandbox.client import Sandbox
    sb = Sandbox("http://127.0.0.1:5000", token)
    job = sb.submit(spec)["job"]; sb.wait(job["id"]); sb.download(job["id"], "out/")
"""
from __future__ import annotations

import time
from pathlib import Path

import requests

from sandbox.core import states as st
from sandbox.core.release.bundle import release_files
from sandbox.core.states import TERMINAL


class ApiError(Exception):
    def __init__(self, status: int, body: dict):
        self.status = status
        self.body = body
        super().__init__(f"HTTP {status}: {body.get('message') or body.get('error') or body}")




def released_frames(release: dict, spec: dict):
    """The DataFrame(s) of a released query job: the tables of one SQL statement (or of a
    JSON job) joined on their group keys. A table's value column is named after it."""
    import json

    import pandas as pd

    tables = json.loads(release["files"]["result.json"])["tables"]
    frames: dict[tuple, pd.DataFrame] = {}
    for t in tables:
        df = pd.DataFrame(t["rows"], columns=t["columns"])
        keys = [c for c in t["columns"] if c in t["group_by"] or c in ("bin_lower", "bin_upper")]
        value = [c for c in t["columns"] if c not in keys][0]
        df = df.rename(columns={c: t["name"] + c[len(value):] for c in t["columns"] if c.startswith(value)})
        key = tuple(keys)
        frames[key] = df if key not in frames else frames[key].merge(df, on=keys, how="outer") if keys \
            else pd.concat([frames[key], df], axis=1)
    out = list(frames.values())
    return out[0] if len(out) == 1 else out


class Sandbox:
    def __init__(self, url: str, token: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def _req(self, method: str, path: str, **kw):
        r = self.session.request(method, f"{self.url}/api/v1{path}", timeout=self.timeout, **kw)
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {"message": r.text[:500]}
            raise ApiError(r.status_code, body)
        return r

    def me(self) -> dict:
        return self._req("GET", "/me").json()

    def datasets(self) -> list[dict]:
        return self._req("GET", "/datasets").json()["datasets"]

    def dataset(self, name: str) -> dict:
        return self._req("GET", f"/datasets/{name}").json()

    def mock(self, name: str, fmt: str = "csv", rows: int = 1000) -> bytes:
        return self._req("GET", f"/datasets/{name}/mock", params={"format": fmt, "rows": rows}).content

    def run_mock(self, spec: dict, code: str | None = None, rows: int = 2000) -> dict:
        """Run a job on mock data locally, through the same runner, box and checks as a
        real run, and return everything (outputs, stdout, errors). Needs an isolation
        backend on this machine (Docker or bubblewrap)."""
        from sandbox.config import load
        from sandbox.core.manifest import parse_public_manifest
        from sandbox.agent.backends.select import get_backend
        from sandbox.agent.mockrun import run_on_mock
        manifest = parse_public_manifest(self.dataset(spec["dataset"]))
        return run_on_mock(spec, manifest, get_backend(load()), rows=rows, code=code)

    def submit_program(self, spec: dict, code: str, dry_run: bool = False) -> dict:
        """Submit a program or reviewed job: the contract plus the Python source."""
        return self.submit({"spec": spec, "code": code}, dry_run=dry_run)

    def submit(self, spec: dict | str, dry_run: bool = False) -> dict:
        params = {"dry_run": "1"} if dry_run else {}
        if isinstance(spec, str):
            return self._req("POST", "/jobs", params=params, data=spec.encode(),
                             headers={"Content-Type": "text/plain"}).json()
        return self._req("POST", "/jobs", params=params, json=spec).json()

    def sql(self, dataset: str, sql: str | list[str], epsilon: float | list[float] | None = None,
            purpose: str = "exploratory analysis", timeout: float = 600):
        """Run SQL aggregate statements as a query job and return the released table as a
        pandas DataFrame: the group keys, each aggregate's value and its 95% interval
        (`<name>_lower`, `<name>_upper`; see docs/jobs.md). Tables with the same group keys
        are joined in one DataFrame; statements grouped differently give a list of them. Refusals raise ApiError (HTTP 400 names what to fix); a job
        that does not end released raises RuntimeError with its state."""
        job_spec = {"mode": "query", "dataset": dataset, "purpose": purpose, "sql": sql}
        if epsilon is not None:
            job_spec["epsilon"] = epsilon
        result = self.submit(job_spec)
        if not result.get("admitted"):
            raise RuntimeError(f"refused at admission: {'; '.join(result.get('reasons') or [])}")
        job = self.wait(result["job"]["id"], timeout=timeout)
        if job["state"] != st.RELEASED:
            raise RuntimeError(f"job {job['id']} is {job['state']}, not released: {job.get('message') or ''}")
        return released_frames(self.release(job["id"]), job.get("spec") or job_spec)

    def jobs(self, state: str | None = None) -> list[dict]:
        return self._req("GET", "/jobs", params={"state": state} if state else {}).json()["jobs"]

    def job(self, job_id: str) -> dict:
        return self._req("GET", f"/jobs/{job_id}").json()

    def cancel(self, job_id: str) -> dict:
        return self._req("POST", f"/jobs/{job_id}/cancel").json()

    def wait(self, job_id: str, until: set[str] | None = None, timeout: float = 600, poll: float = 0.5) -> dict:
        until = until or (TERMINAL | {st.AWAITING_REVIEW})
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in until or time.monotonic() > deadline:
                return job
            time.sleep(poll)

    def budget(self, dataset: str, operator: str | None = None) -> dict:
        return self._req("GET", f"/budget/{dataset}", params={"operator": operator} if operator else {}).json()

    def release(self, job_id: str) -> dict:
        return self._req("GET", f"/jobs/{job_id}/release").json()

    def download(self, job_id: str, out_dir: str | Path) -> list[Path]:
        """Write the released files, certificate.json and release_public_key.pem into
        out_dir, as the bytes the certificate's sha256 values were computed over."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, data in release_files(self.release(job_id)).items():
            p = out / Path(name).name  # a file name only: never write outside out_dir
            p.write_bytes(data)
            written.append(p)
        return written

    # compliance
    def review_queue(self) -> list[dict]:
        return self._req("GET", "/reviews").json()["jobs"]

    def review_detail(self, job_id: str) -> dict:
        return self._req("GET", f"/reviews/{job_id}").json()

    def review(self, job_id: str, decision: str | None, reason: str = "", note: str = "",
               files: dict | None = None, signoffs: list | None = None) -> dict:
        """`reason`: a code of review_reasons() (required to reject); `note`: compliance only.
        `files`: {name: {decision, reason, note}}; `signoffs`: [{output, check, note}]."""
        body = {"decision": decision, "reason": reason, "note": note}
        if files is not None:
            body["files"] = files
        if signoffs is not None:
            body["signoffs"] = signoffs
        return self._req("POST", f"/reviews/{job_id}", json=body).json()

    def review_diagnostics(self, job_id: str) -> dict:
        return self._req("GET", f"/reviews/{job_id}/diagnostics").json()

    def review_reasons(self) -> list[dict]:
        return self._req("GET", "/review-reasons").json()["reasons"]

    def audit_verify(self) -> dict:
        return self._req("GET", "/audit/verify").json()

    def audit_head(self) -> dict:
        return self._req("GET", "/audit/head").json()

    def consumption(self, dataset: str) -> dict:
        return self._req("GET", f"/consumption/{dataset}").json()

    def metering(self, fmt: str = "json"):
        r = self._req("GET", "/metering", params={"format": fmt})
        return r.text if fmt == "csv" else r.json()["metering"]

    # owner
    def run_approval(self, job_id: str, decision: str, reason: str = "") -> dict:
        return self._req("POST", f"/jobs/{job_id}/run-approval", json={"decision": decision, "reason": reason}).json()

    def policy(self, dataset: str) -> dict:
        return self._req("GET", f"/datasets/{dataset}/policy").json()

    def apply_policy(self, content: str, filename: str = "<upload>", reason: str = "",
                     base_version: int | None = None) -> dict:
        """Apply (or propose) a policy version; the server refuses an empty reason (400) and a
        base_version that is no longer the version in force (409)."""
        body = {"content": content, "filename": filename, "reason": reason}
        if base_version is not None:
            body["base_version"] = base_version
        return self._req("POST", "/policies", json=body).json()

    def policy_versions(self, dataset: str) -> list[dict]:
        return self._req("GET", f"/datasets/{dataset}/policy/versions").json()["versions"]

    def decide_policy(self, dataset: str, version: int, decision: str, reason: str) -> dict:
        """Compliance's second approval of a proposed version: decision "approve" or "decline"."""
        return self._req("POST", f"/datasets/{dataset}/policy/versions/{version}/decision",
                         json={"decision": decision, "reason": reason}).json()

    def public_key(self) -> str:
        return self._req("GET", "/public-key").text

    # every role: the inbox (站内信)
    def notices(self, unread: bool = False) -> dict:
        """{"notices": [...], "unread": n}: notices visible now, newest first."""
        return self._req("GET", "/notices", params={"unread": "1"} if unread else {}).json()

    def read_notice(self, notice_id: str) -> dict:
        return self._req("POST", f"/notices/{notice_id}/read").json()

    def read_all_notices(self) -> int:
        return self._req("POST", "/notices/read").json()["marked_read"]

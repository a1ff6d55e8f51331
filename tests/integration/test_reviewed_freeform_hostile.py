"""Free-form reviewed-mode files from a hostile program, on a real run (bwrap): raw rows
hidden in Parquet metadata and after a PNG's IEND chunk never reach the store, an ID number
written as a column name and counts with hidden decimals are findings, an SVG with a script
is refused, and nothing can be approved on machine checks alone."""
from __future__ import annotations

import base64
import io
import json

import pyarrow.parquet as pq
import pytest

from sandbox.config import REPO_ROOT
from sandbox.core.errors import Conflict
from tests.conftest import make_services, need_backend
from tests.unit.test_freeform import RESIDENT_ID

POLICY = (REPO_ROOT / "policies" / "enterprise_registry.yaml").read_text(encoding="utf-8")

HOSTILE = '''import os, struct, zlib
import pyarrow as pa
import pyarrow.parquet as pq


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def analyse(df, out):
    raw = "RAWROWS\\n" + df.head(3000).to_csv(index=False)
    counts = df.groupby("district").size().reset_index(name="enterprises")
    table = pa.Table.from_pandas(counts, preserve_index=False).replace_schema_metadata({"rows": raw})
    with pq.ParquetWriter(os.path.join(out, "by_district.parquet"), table.schema) as writer:
        writer.write_table(table)
        writer.add_key_value_metadata({"footer_rows": raw})
    pixels = b"".join(b"\\x00" + b"\\xff\\x00\\x00" * 2 for _ in range(2))
    png = (b"\\x89PNG\\r\\n\\x1a\\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
           + _chunk(b"IDAT", zlib.compress(pixels)) + _chunk(b"IEND", b""))
    with open(os.path.join(out, "figure.png"), "wb") as f:
        f.write(png + raw.encode())
    counts.rename(columns={"enterprises": "%(id)s"}).to_csv(os.path.join(out, "id_header.csv"), index=False)
    secret = (df.groupby("district")["employees"].sum() %% 999 + 1).to_numpy() / 1e6
    counts.assign(enterprises=counts["enterprises"] + secret).to_csv(os.path.join(out, "hidden.csv"), index=False)
    with open(os.path.join(out, "chart.svg"), "w") as f:
        f.write('<svg xmlns="http://www.w3.org/2000/svg"><script>fetch("/x")</script></svg>')
''' % {"id": RESIDENT_ID}

OUTPUTS = [{"name": "by_district.parquet", "type": "parquet", "table_kind": "frequency"},
           {"name": "figure.png", "type": "png"},
           {"name": "id_header.csv", "type": "csv", "table_kind": "frequency"},
           {"name": "hidden.csv", "type": "csv", "table_kind": "frequency"},
           {"name": "chart.svg", "type": "svg"}]


@pytest.fixture
def services(demo_datasets_dir, tmp_path):
    need_backend("bwrap")
    svc = make_services(tmp_path, demo_datasets_dir, dataset="enterprise_registry", policy=POLICY,
                        users=[("operator", "operator", "operator-token"), ("rev", "compliance", "rev-token")])
    yield svc
    svc.dispose()


def checks_of(detail, name) -> dict:
    output = next(o for o in detail["outputs"] if o["name"] == name)
    return {c["name"].split(":")[0]: c for c in output["checks"]}


def stored(detail, name) -> bytes:
    output = next(o for o in detail["outputs"] if o["name"] == name)
    return base64.b64decode(output["content"]) if output["encoding"] == "base64" else output["content"].encode()


@pytest.mark.bwrap
def test_hostile_free_form_files_are_reencoded_flagged_and_block_approval(services):
    op, rev = services.accounts.authenticate("operator-token"), services.accounts.authenticate("rev-token")
    spec = {"mode": "reviewed", "dataset": "enterprise_registry", "purpose": "business_environment_analysis",
            "program": "hostile.py", "entrypoint": "analyse", "outputs": OUTPUTS, "timeout_seconds": 120}
    job_id = services.operator.submit(op, {"spec": spec, "code": HOSTILE})["job"]["id"]
    assert services.agent.execute(job_id) == "awaiting_review"
    detail = services.compliance.review_detail(rev, job_id)

    # The refused SVG is stored empty with its failing check; the others as trusted code re-wrote them.
    assert sorted(o["name"] for o in detail["outputs"]) == ["by_district.parquet", "chart.svg", "figure.png",
                                                           "hidden.csv", "id_header.csv"]
    svg = next(o for o in detail["outputs"] if o["name"] == "chart.svg")
    assert svg["content"] == "" and svg["size"] == 0
    assert checks_of(detail, "chart.svg")["reencode"]["status"] == "fail"
    assert all(b"RAWROWS" not in stored(detail, o["name"]) for o in detail["outputs"])
    parquet = pq.ParquetFile(io.BytesIO(stored(detail, "by_district.parquet")))
    assert parquet.metadata.metadata is None and parquet.schema_arrow.metadata is None
    assert parquet.read().column_names == ["district", "enterprises"]
    png = stored(detail, "figure.png")
    assert png.endswith(b"IEND\xaeB`\x82") and png.count(b"IEND") == 1

    for name in ("by_district.parquet", "figure.png"):
        checks = checks_of(detail, name)
        assert checks["reencode"]["status"] == "pass" and checks["free_form"]["status"] == "needs_review"
    ident = checks_of(detail, "id_header.csv")["direct_identifiers"]
    assert ident["status"] == "fail" and "column 2" in ident["explanation"]
    assert RESIDENT_ID not in json.dumps([o["checks"] for o in detail["outputs"]])
    assert checks_of(detail, "hidden.csv")["integer_counts"]["status"] == "fail"
    with services.parts.repo.transaction() as tx:  # and its check is audited
        (gate_event,) = [a for a in tx.audit_records() if a.action == "gate.checks" and a.subject == job_id]
    job_checks = {c["name"]: c for c in gate_event.payload["checks"]}
    assert job_checks["reencode:chart.svg"]["status"] == "fail"
    assert "present:chart.svg" not in job_checks   # refused, not reported as missing

    # Every free-form file carries a finding; with failures nobody can approve.
    assert all({"needs_review", "fail"} & {c["status"] for c in o["checks"]} for o in detail["outputs"])
    with pytest.raises(Conflict):
        services.compliance.review(rev, job_id, "approve")

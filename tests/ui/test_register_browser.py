"""An owner registers a real public dataset through the web page, by clicking (issue 14):
palmerpenguins (the CSV the PyPI package ships inside itself, written here as a
hive-partitioned Parquet folder, island=<name>/part-0.parquet) goes up file by file through
the folder picker and the chunked upload API; the page shows the report's progress, then the
report, and the version is registered (the catalog shows it, without the hidden column)."""
from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from tests.integration.test_owner_real_data import penguins_parquet
from tests.ui.test_browser import follow, sign_in

pytestmark = pytest.mark.bwrap

MANIFEST = {
    "name": "penguins_web", "title": "Palmer penguins", "classification": "L2", "owner": "palmer_station_lter",
    "privacy_unit": "penguin_id", "max_rows_per_unit": 1,
    "columns": [
        {"name": "penguin_id", "type": "string", "kind": "identifier", "access": "hidden"},
        {"name": "species", "type": "string", "kind": "categorical", "categories": ["Adelie", "Chinstrap", "Gentoo"]},
        {"name": "island", "type": "string", "kind": "categorical", "categories": ["Biscoe", "Dream", "Torgersen"]},
        {"name": "bill_length_mm", "type": "float64", "kind": "numeric", "bounds": [30, 60]},
        {"name": "bill_depth_mm", "type": "float64", "kind": "numeric", "bounds": [13, 22]},
        {"name": "flipper_length_mm", "type": "int64", "kind": "numeric", "bounds": [170, 235]},
        {"name": "body_mass_g", "type": "int64", "kind": "numeric", "bounds": [2500, 6500], "modes": ["query"]},
        {"name": "sex", "type": "string", "kind": "categorical", "categories": ["female", "male"]},
        {"name": "year", "type": "int64", "kind": "numeric", "bounds": [2007, 2009]},
    ],
}


def hive_folder(tmp: Path) -> Path:
    """The penguins as island=<name>/part-0.parquet (the island column lives in the folder names)."""
    table = pq.read_table(penguins_parquet(tmp))
    root = tmp / "penguins"
    for island in ("Biscoe", "Dream", "Torgersen"):
        part = root / f"island={island}"
        part.mkdir(parents=True)
        pq.write_table(table.filter(pc.equal(table["island"], island)).drop_columns(["island"]),
                       part / "part-0.parquet")
    return root


def test_an_owner_uploads_a_penguins_folder_and_reads_the_report(page, sandbox_app, tmp_path):
    h = sandbox_app
    folder = hive_folder(tmp_path)
    sign_in(page, h, "owner")
    follow(page, "#nav-register")
    page.set_input_files("#data-folder", str(folder))
    page.fill("#manifest", yaml.safe_dump(MANIFEST, sort_keys=False))
    polls, chunks = [], []
    page.on("request", lambda r: polls.append(r.url) if "/registration-progress/" in r.url else None)
    page.on("request", lambda r: chunks.append(r.url) if r.method == "PUT" and "/ui/uploads/" in r.url else None)
    page.click("#register-submit")
    # While the server computes the report the page says so and polls its progress (then the
    # answer replaces the page).
    page.wait_for_selector("#register-ok, #register-error", timeout=60_000)
    assert polls and all(len(u.rsplit("/", 1)[1]) == 32 for u in polls)
    # One file after the other, each at its path below the chosen folder.
    assert {u.split("path=")[1].split("&")[0] for u in chunks} == {
        f"island%3D{i}%2Fpart-0.parquet" for i in ("Biscoe", "Dream", "Torgersen")}
    assert page.locator("#register-error").count() == 0, page.inner_text("#register-error")
    assert "penguins_web" in page.inner_text("#register-ok")
    assert page.inner_text("#report-rows") == "344" and page.inner_text("#report-units") == "344"
    assert page.inner_text("#report-bound_verified") == "True"
    assert "island" in page.inner_text("#registration-report")  # the partition column, from the folder names
    # The version is registered: the catalog lists it, without the column the owner hid.
    page.goto(f"{h.url}/ui/datasets/penguins_web")
    schema = page.inner_text("#schema")
    assert "species" in schema and "island" in schema and "penguin_id" not in schema
    assert "L2" in page.inner_text("body") and "query" in page.inner_text("#modes-body_mass_g")

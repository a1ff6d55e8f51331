"""sandbox.agent.reencode: free-form reviewed-mode files are re-written by trusted code, so
what a program hid outside the visible content (metadata, trailing bytes, invisible
characters) never reaches the checks, the reviewer or the release."""
from __future__ import annotations

import io
import struct
import zlib

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, PngImagePlugin

from sandbox.agent.reencode import MAX_PIXELS, MAX_TEXT_BYTES, reencode
from sandbox.core.release.checks import FAIL, NEEDS_REVIEW, PASS
from sandbox.core.specs.reviewed import DeclaredOutput

LIMIT = 10 << 20
SECRET = "RAWROW"
RAW_ROWS = "".join(f"{SECRET},{i},110105194912310021,13912345678\n" for i in range(3000))


def run(name: str, kind: str, data: bytes, limit: int = LIMIT):
    return reencode(DeclaredOutput(name, kind, "frequency" if kind in ("csv", "parquet") else None), data, limit)


def statuses(checks) -> dict:
    return {c.name.split(":")[0]: c.status for c in checks}


def refused(checks, *words: str) -> str:
    (check,) = checks
    assert check.status == FAIL and check.name.startswith("reencode:")
    assert SECRET not in check.explanation
    for word in words:
        assert word in check.explanation, check.explanation
    return check.explanation


# --- parquet -------------------------------------------------------------------------------

def parquet_bytes(table: pa.Table, footer: dict | None = None) -> bytes:
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, table.schema) as writer:
        writer.write_table(table)
        if footer:
            writer.add_key_value_metadata(footer)
    return buf.getvalue()


def test_raw_rows_hidden_in_parquet_footer_schema_and_field_metadata_are_gone():
    field = pa.field("enterprises", pa.int64(), metadata={"f": RAW_ROWS})
    table = pa.table({"district": ["城关区", "七里河区"], "enterprises": [120, 95]},
                     schema=pa.schema([pa.field("district", pa.string()), field], metadata={"s": RAW_ROWS}))
    data = parquet_bytes(table, footer={"rows": RAW_ROWS})
    assert data.count(SECRET.encode()) >= 3000  # the crafted file does carry them

    out, checks = run("t.parquet", "parquet", data)

    assert statuses(checks) == {"reencode": PASS, "free_form": NEEDS_REVIEW}
    assert SECRET.encode() not in out and b"110105194912310021" not in out
    meta = pq.ParquetFile(io.BytesIO(out))
    assert meta.metadata.metadata is None                      # no footer key-value pairs at all
    assert meta.schema_arrow.metadata is None and all(f.metadata is None for f in meta.schema_arrow)
    assert pd.read_parquet(io.BytesIO(out)).to_dict("list") == {"district": ["城关区", "七里河区"],
                                                                "enterprises": [120, 95]}


def test_parquet_nested_types_are_refused_without_naming_their_fields():
    table = pa.table({"g": ["a"], "s": pa.array([{SECRET: 1}])})
    out, checks = run("t.parquet", "parquet", parquet_bytes(table))
    assert out is None
    refused(checks, "t.parquet", "column 2", "nested type (struct)")
    _, checks = run("t.parquet", "parquet", parquet_bytes(pa.table({"l": pa.array([[1, 2]])})))
    refused(checks, "nested type (list)")


def test_parquet_binary_columns_are_refused():
    _, checks = run("t.parquet", "parquet", parquet_bytes(pa.table({"b": pa.array([b"x"], pa.binary())})))
    refused(checks, "column 1", "unsupported type (binary)")


def test_parquet_dictionary_decimal_and_zone_are_flattened():
    import decimal
    table = pa.table({"g": pa.array(["a", "b", "a"]).dictionary_encode(),
                      "v": pa.array([decimal.Decimal("10.0001234567890123456789")] * 3, pa.decimal128(30, 22)),
                      "t": pa.array([0, 1, 2], pa.timestamp("s", tz="Asia/" + SECRET))})
    with pytest.raises(Exception):
        table.to_pandas()  # not a real zone: it is a place to hide text
    out, checks = run("t.parquet", "parquet", parquet_bytes(table))
    assert statuses(checks)["reencode"] == PASS
    schema = pq.read_schema(io.BytesIO(out))
    assert [str(t) for t in schema.types] == ["string", "double", "timestamp[ms]"]  # Parquet has no seconds unit
    assert SECRET.encode() not in out


def test_parquet_cells_and_names_are_bounded():
    _, checks = run("t.parquet", "parquet", parquet_bytes(pa.table({"g": [RAW_ROWS]})))
    refused(checks, "column 1", "longer than")
    _, checks = run("t.parquet", "parquet", parquet_bytes(pa.table({RAW_ROWS[:500]: [1]})))
    refused(checks, "column 1", "needs a name")


def test_parquet_bombs_are_refused_before_reading(monkeypatch):
    import sandbox.agent.reencode as reencode_module
    monkeypatch.setattr(reencode_module, "MAX_UNCOMPRESSED", 1000)
    _, checks = run("t.parquet", "parquet", parquet_bytes(pa.table({"n": list(range(10_000))})))
    refused(checks, "decodes to more than 1000 bytes")


def test_not_parquet_is_refused_with_public_facts_only():
    _, checks = run("t.parquet", "parquet", b"PAR1" + RAW_ROWS.encode()[:5000] + b"PAR1")
    assert refused(checks) == "t.parquet cannot be read as a parquet file"


# --- png -----------------------------------------------------------------------------------

def png_bytes(size=(30, 20), mode="RGB", **save) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (200, 30, 30) if mode == "RGB" else 1).save(buf, format="PNG", **save)
    return buf.getvalue()


def test_raw_rows_after_a_png_iend_chunk_and_in_its_text_chunks_are_gone():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", RAW_ROWS[:20_000])
    info.add_itxt("Description", SECRET, zip=True)
    data = png_bytes(pnginfo=info, dpi=(72, 72)) + RAW_ROWS.encode()
    assert SECRET.encode() in data.split(b"IEND")[1]

    out, checks = run("fig.png", "png", data)

    assert statuses(checks) == {"reencode": PASS, "free_form": NEEDS_REVIEW}
    assert out.endswith(b"IEND\xaeB`\x82") and out.count(b"IEND") == 1
    assert SECRET.encode() not in out and b"tEXt" not in out and b"iTXt" not in out and b"pHYs" not in out
    with Image.open(io.BytesIO(out)) as clean, Image.open(io.BytesIO(data)) as original:
        assert clean.size == original.size and clean.tobytes() == original.convert("RGB").tobytes()
        assert clean.info == {}


def test_a_palette_png_becomes_plain_pixels():
    # Unused palette entries are another hiding place; the re-encoded image has none.
    im = Image.new("P", (4, 4), 0)
    im.putpalette(list(range(256)) * 3)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    out, _ = run("fig.png", "png", buf.getvalue())
    with Image.open(io.BytesIO(out)) as clean:
        assert clean.mode == "RGB" and b"PLTE" not in out


def test_bad_png_is_refused():
    _, checks = run("fig.png", "png", b"\x89PNG\r\n\x1a\n" + RAW_ROWS.encode()[:1000])
    assert refused(checks) == "fig.png cannot be read as a png file"
    _, checks = run("fig.png", "png", png_bytes()[:60])  # truncated in its data
    refused(checks, "fig.png")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_decompression_bombs_are_refused():
    # A header claiming 60000x60000 pixels: Pillow's own bomb guard, reported as our limit.
    ihdr = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1000)) \
        + _png_chunk(b"IEND", b"")
    _, checks = run("fig.png", "png", bomb)
    refused(checks, f"more than {MAX_PIXELS} pixels")
    # Under Pillow's limit but over ours: a 1-bit 5000x5000 image compresses to a few kB.
    small = png_bytes(size=(5000, 5000), mode="1")
    assert len(small) < 50_000
    _, checks = run("fig.png", "png", small)
    refused(checks, "5000x5000 pixels exceed the limit")


def test_png_declared_but_other_image_format_is_refused():
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="GIF")
    _, checks = run("fig.png", "png", buf.getvalue())
    refused(checks, "cannot be read as a png")


# --- csv -----------------------------------------------------------------------------------

def test_csv_is_parsed_and_rewritten():
    data = "\ufeffdistrict,n\r\n城关区,12\r\n\r\n\"七里河区\",10.0001234567890123456789\r\n-3.5e1,-4\r\n".encode()
    out, checks = run("t.csv", "csv", data)
    assert statuses(checks) == {"reencode": PASS, "free_form": NEEDS_REVIEW}
    # Digits beyond float precision are invisible to every reader; they are not kept.
    assert out.decode() == "district,n\n城关区,12\n七里河区,10.000123456789012\n-35.0,-4\n"


@pytest.mark.parametrize("data, words", [
    (b"a,b\n1,2\n3\n", ("differing numbers of fields (1, 2)",)),
    (b"a,b\n1,=HYPERLINK(\"x\")\n", ("column 2", "formulas")),
    (b"a,b\n1,@SUM(A1)\n", ("column 2", "formulas")),
    ("a,b\n1,x\u200by\n".encode(), ("invisible",)),
    ("a,b\n1,\xe4\n".encode("latin-1"), ("not UTF-8",)),
    (b"a,a\n1,2\n", ("same name",)),
    (b"\n\n", ("no header row",)),
    (("a,b\n1," + "x" * 2000 + "\n").encode(), ("column 2", "longer than 1000")),
])
def test_bad_csv_is_refused(data, words):
    out, checks = run("t.csv", "csv", data)
    assert out is None
    refused(checks, "t.csv", *words)


# --- text and svg --------------------------------------------------------------------------

def test_text_is_utf8_without_invisible_characters_and_trailing_blanks():
    out, checks = run("notes.txt", "text", "结论 \t\r\nsecond line\n".encode())
    assert out == "结论\nsecond line\n".encode() and statuses(checks)["free_form"] == NEEDS_REVIEW
    for bad, words in [("x\xe9".encode("latin-1"), "not UTF-8"), ("a\u200bb".encode(), "invisible"),
                       ("a\x1bb".encode(), "control"), ("a\u202eb".encode(), "invisible"),
                       (b"x" * (MAX_TEXT_BYTES + 1), "exceed the limit")]:
        out, checks = run("notes.txt", "text", bad)
        assert out is None
        refused(checks, "notes.txt", words)


def test_svg_is_refused_in_favour_of_png():
    script = b'<svg xmlns="http://www.w3.org/2000/svg"><script>fetch("x")</script></svg>'
    plain = b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>'
    for data in (script, plain):
        out, checks = run("chart.svg", "svg", data)
        assert out is None
        refused(checks, "chart.svg", "declare the figure as a png")


def test_size_limit_and_missing_file():
    _, checks = run("t.csv", "csv", b"a\n1\n", limit=3)
    refused(checks, "4 bytes exceed the limit of 3")
    assert reencode(DeclaredOutput("t.csv", "csv", "frequency"), None, LIMIT) == (None, [])

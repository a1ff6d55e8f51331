"""Re-encode a free-form reviewed-mode file before anything checks, stores or shows it.
TRUSTED host code reading UNTRUSTED bytes, next to raw data.

A program can hide raw data where a reviewer does not look: after a PNG's IEND chunk, in
text chunks, in Parquet footer or schema metadata, in invisible characters. Each file is
decoded with a well-kept library and written again from what it visibly holds, so only that
reaches the checks, the reviewer and the release:
- png: decoded by Pillow within size and pixel limits (decompression bombs), re-written as
  plain RGB/RGBA pixels: metadata, text/ICC/EXIF chunks, palettes, animation frames and
  trailing bytes are gone.
- parquet: read by pyarrow within row/column/size limits, re-written from its flat table
  with no key-value metadata (footer, schema or field); nested, binary and other types a
  reviewer cannot read are refused, dictionaries decoded, decimals made float, time zones
  dropped (a zone name is free text), NaN payloads canonical.
- csv: parsed and re-written; one width for every row, UTF-8 without invisible characters,
  cells bounded, and cells a spreadsheet would run as a formula (=, +, -, @ not starting a
  number) refused rather than escaped, so the operator gets exactly what was reviewed.
  Decimal numbers are re-written in shortest round-trip form, dropping digits beyond
  float precision (which no reader shows but the text still carries).
- text: UTF-8 only, within a size limit, no control or invisible formatting characters,
  line ends normalised and trailing blanks (a hiding place) dropped.
- svg: refused; declare a png. An SVG is markup: beyond scripts, links and comments that a
  whitelist could strip, its coordinates carry digits nobody sees, and rasterising it would
  need a renderer the sandbox does not ship.
Refusals name only public facts (file name, type, limit, column position), never content.
"""
from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
import warnings

from sandbox.core.errors import Text
from sandbox.core.release.checks import FAIL, PASS, Check
from sandbox.core.release.freeform import review_check
from sandbox.core.specs.reviewed import DeclaredOutput

MAX_SIDE = 10_000                # pixels per image side
MAX_PIXELS = 16_000_000          # pixels per image: a 4000x4000 figure
MAX_TABLE_ROWS = 100_000         # the table_size rule caps released tables far lower
MAX_COLUMNS = 500
MAX_UNCOMPRESSED = 256 * 2**20   # bytes a Parquet file may decode to
MAX_NAME_CHARS = 128             # per column name
MAX_CELL_CHARS = 1_000           # per table cell: longer text belongs in a text output
MAX_TEXT_BYTES = 256 * 2**10     # a text output a reviewer can read in full
_FORMULA_START = ("=", "+", "-", "@")
_DECIMAL = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+|\.\d+[eE][+-]?\d+)")


class Refused(ValueError):
    """A re-encoding refusal whose message holds public facts only."""


def reencode(declared: DeclaredOutput, data: bytes | None, max_bytes: int) -> tuple[bytes | None, list[Check]]:
    """The file as trusted code re-wrote it (None when missing or refused) and the checks:
    on success the re-encoding (pass) and the review every free-form file needs; on refusal
    one failing check saying why."""
    if data is None:
        return None, []
    name, kind = declared.name, declared.type
    check = f"reencode:{name}"
    if len(data) > max_bytes:
        return None, [Check(check, FAIL, Text("{name}: {size} bytes exceed the limit of {max_bytes}", name=name,
                                              size=len(data), max_bytes=max_bytes))]
    try:
        clean, dropped = _ENCODERS[kind](data)
    except Refused as e:
        why = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)   # a Text: translated in turn
        return None, [Check(check, FAIL, Text("{name} ({kind}) refused: {why}", name=name, kind=kind, why=why))]
    except Exception:  # noqa: BLE001 - library messages may quote the content; say what was expected
        return None, [Check(check, FAIL, Text("{name} cannot be read as a {kind} file", name=name, kind=kind))]
    if len(clean) > max_bytes:
        return None, [Check(check, FAIL, Text("{name}: re-encoded, {size} bytes exceed the limit of {max_bytes}",
                                              name=name, size=len(clean), max_bytes=max_bytes))]
    return clean, [Check(check, PASS, Text("{name}: re-encoded by trusted code as {kind} ({dropped}), {size} bytes",
                                           name=name, kind=kind, dropped=dropped, size=len(clean))),
                   review_check(name, kind)]


# --- png ---------------------------------------------------------------------------------

def _png(data: bytes) -> tuple[bytes, str]:
    from PIL import Image
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
                width, height = im.size
                if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
                    raise Refused(Text("{width}x{height} pixels exceed the limit of {side} per side and "
                                       "{pixels} in all", width=width, height=height, side=MAX_SIDE,
                                       pixels=MAX_PIXELS))
                if getattr(im, "n_frames", 1) > 1:
                    raise Refused(Text("an animated PNG; write a still image"))
                mode = "RGBA" if "A" in im.mode or "transparency" in im.info else "RGB"
                pixels = im.convert(mode).tobytes()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise Refused(Text("the image declares more than {pixels} pixels", pixels=MAX_PIXELS)) from None
    # A fresh image from pixels alone: nothing of the original file's info travels with it.
    clean = Image.frombytes(mode, (width, height), pixels)
    out = io.BytesIO()
    clean.save(out, format="PNG")
    return out.getvalue(), Text("pixels only; metadata, text chunks and trailing bytes dropped")


# --- parquet -----------------------------------------------------------------------------

def _parquet(data: bytes) -> tuple[bytes, str]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    pf = pq.ParquetFile(pa.BufferReader(data))
    meta = pf.metadata
    if meta.num_rows > MAX_TABLE_ROWS or meta.num_columns > MAX_COLUMNS:
        raise Refused(Text("{rows} rows x {columns} columns exceed the limit of {max_rows} rows and {max_columns} "
                           "columns", rows=meta.num_rows, columns=meta.num_columns, max_rows=MAX_TABLE_ROWS,
                           max_columns=MAX_COLUMNS))
    if _declared_size(meta) > MAX_UNCOMPRESSED:
        raise Refused(Text("the table decodes to more than {size} bytes", size=MAX_UNCOMPRESSED))
    table = pf.read(use_pandas_metadata=False)
    names = _column_names([f.name for f in table.schema])
    fields, columns = [], []
    for position, (name, field, column) in enumerate(zip(names, table.schema, table.columns, strict=True), 1):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        column = _flat_column(column, position)
        fields.append(pa.field(name, column.type))  # no field metadata
        columns.append(column)
    clean = pa.Table.from_arrays(columns, schema=pa.schema(fields))  # no schema metadata
    out = pa.BufferOutputStream()
    # store_schema=False: not even pyarrow's own ARROW:schema entry; the footer holds no key-value pairs.
    pq.write_table(clean, out, store_schema=False)
    return out.getvalue().to_pybytes(), Text("table only; footer, schema and column metadata dropped")


def _declared_size(meta) -> int:
    # Both sizes the footer states; the writer chose them, so this bounds honest files and
    # lazy bombs. Page headers can still lie: the agent's memory limit is the last guard.
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    chunks = sum(g.column(j).total_uncompressed_size for g in groups for j in range(g.num_columns))
    return max(sum(g.total_byte_size for g in groups), chunks)


def _flat_column(column, position: int):
    import pyarrow as pa
    import pyarrow.compute as pc
    t = column.type
    if pa.types.is_dictionary(t):
        column, t = column.cast(t.value_type), t.value_type
    if pa.types.is_decimal(t):
        column, t = column.cast(pa.float64()), pa.float64()
    if pa.types.is_timestamp(t) and t.tz is not None:
        column, t = column.cast(pa.timestamp(t.unit)), pa.timestamp(t.unit)
    if pa.types.is_float16(t):
        column, t = column.cast(pa.float32()), pa.float32()
    if pa.types.is_floating(t):
        # A NaN's payload bits are invisible to any reader; keep one canonical NaN.
        return pc.if_else(pc.is_nan(column), pa.scalar(math.nan, t), column)
    if pa.types.is_large_string(t):
        column, t = column.cast(pa.string()), pa.string()
    if pa.types.is_string(t):
        for value in column.to_pylist():
            if value is not None:
                _check_cell(value, position)
        return column
    if (pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_null(t) or pa.types.is_date(t)
            or pa.types.is_timestamp(t)):
        return column
    kind = Text("nested") if pa.types.is_nested(t) else Text("unsupported")
    raise Refused(Text("column {position} has a {kind} type ({type}); release flat columns of numbers, "
                       "text, dates or times", position=position, kind=kind, type=_type_name(t)))


def _type_name(t) -> str:
    # The type's name only: struct field names and zone names are free text.
    return str(t).split("<")[0].split("[")[0]


# --- csv ---------------------------------------------------------------------------------

def _csv(data: bytes) -> tuple[bytes, str]:
    text = _text(data)
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline=""), strict=True) if r]
    except csv.Error:
        raise Refused(Text("the content does not parse as CSV")) from None
    if not rows:
        raise Refused(Text("there is no header row"))
    widths = sorted({len(r) for r in rows})
    if len(widths) > 1:
        raise Refused(Text("rows have differing numbers of fields ({widths})", widths=", ".join(map(str, widths))))
    if widths[0] > MAX_COLUMNS or len(rows) - 1 > MAX_TABLE_ROWS:
        raise Refused(Text("more than {max_rows} rows or {max_columns} columns", max_rows=MAX_TABLE_ROWS,
                           max_columns=MAX_COLUMNS))
    header = _column_names(rows[0])
    body = [[_csv_cell(cell, position) for position, cell in enumerate(row, 1)] for row in rows[1:]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(body)
    return out.getvalue().encode("utf-8"), Text("parsed and re-written; decimals in shortest form")


def _csv_cell(cell: str, position: int) -> str:
    _check_cell(cell, position)  # also refuses tabs and carriage returns (control characters)
    if _DECIMAL.fullmatch(cell):
        return repr(float(cell))
    if cell.startswith(_FORMULA_START) and not _is_number(cell):
        raise Refused(Text("column {position} has cells starting with {starts} that are not "
                           "numbers; spreadsheet programs would run them as formulas", position=position,
                           starts=", ".join(_FORMULA_START)))
    return cell


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


# --- text --------------------------------------------------------------------------------

def _text_file(data: bytes) -> tuple[bytes, str]:
    if len(data) > MAX_TEXT_BYTES:
        raise Refused(Text("{size} bytes exceed the limit of {max_bytes} for text", size=len(data),
                           max_bytes=MAX_TEXT_BYTES))
    lines = [line.rstrip(" \t") for line in _text(data).split("\n")]
    return "\n".join(lines).encode("utf-8"), Text("UTF-8, line ends normalised, trailing blanks dropped")


def _svg(data: bytes) -> tuple[bytes, str]:
    raise Refused(Text("SVG is not accepted for free-form output; declare the figure as a png"))


# --- shared ------------------------------------------------------------------------------

_INVISIBLE = {"Cc", "Cf", "Co", "Cs", "Cn"}  # controls, format (zero-width, bidi), private, unassigned


def _text(data: bytes) -> str:
    """UTF-8 text without a BOM, with \\n line ends and no control or invisible characters."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(Text("the content is not UTF-8 text")) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if any(unicodedata.category(ch) in _INVISIBLE and ch not in "\n\t" for ch in text):
        raise Refused(Text("the text holds control or invisible formatting characters"))
    return text


def _column_names(names: list[str]) -> list[str]:
    for position, name in enumerate(names, 1):
        if not name.strip() or len(name) > MAX_NAME_CHARS or any(unicodedata.category(ch) in _INVISIBLE
                                                                  for ch in name):
            raise Refused(Text("column {position} needs a name of 1 to {max} visible characters", position=position,
                               max=MAX_NAME_CHARS))
    if len(set(names)) != len(names):
        raise Refused(Text("two columns have the same name"))
    return list(names)


def _check_cell(value: str, position: int) -> None:
    if len(value) > MAX_CELL_CHARS:
        raise Refused(Text("column {position} has cells longer than {max} characters", position=position,
                           max=MAX_CELL_CHARS))
    if any(unicodedata.category(ch) in _INVISIBLE and ch != "\n" for ch in value):
        raise Refused(Text("column {position} has cells with control or invisible formatting characters",
                           position=position))


_ENCODERS = {"png": _png, "parquet": _parquet, "csv": _csv, "text": _text_file, "svg": _svg}

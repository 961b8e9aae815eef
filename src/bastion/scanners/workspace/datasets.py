"""Tabular datasets read as bounded samples: CSV/TSV (dialect sniffed from the content), JSON lines,
Parquet when the optional ``pyarrow`` backend is installed and Excel workbooks (``.xlsx``) when the
optional ``openpyxl`` backend is (each imported only here, only when needed).

Each reader yields a header and ``(line, values)`` rows for :func:`pii.classify_columns`. Only the
first ``max_rows`` rows are read: a big file costs the same as a small one, and the report says how
many rows were sampled.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

from bastion.scanners.interface import FormatError

_DELIMITERS = (",", "\t", ";", "|")


@dataclass
class Table:
    format: str
    header: list[str]
    rows: list[tuple[int | None, list[str]]]
    truncated: bool


def sniff_delimiter(text: str) -> str | None:
    """The delimiter that splits the first lines into the same number (>= 2) of fields, if any."""
    lines = [ln for ln in text[:65536].splitlines()[:20] if ln.strip()]
    if len(lines) < 2:
        return None
    best: tuple[int, str] | None = None
    for d in _DELIMITERS:
        try:
            counts = {len(r) for r in csv.reader(lines[:-1] if len(lines) > 2 else lines, delimiter=d)}
        except csv.Error:
            continue
        if len(counts) == 1 and (n := counts.pop()) >= 2 and (best is None or n > best[0]):
            best = (n, d)
    return best[1] if best else None


def read_delimited(text: str, delimiter: str, max_rows: int) -> Table:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise FormatError("empty delimited file") from None
    except csv.Error as exc:
        raise FormatError(f"malformed delimited file: {exc}") from None
    if all(_looks_like_value(h) for h in header if h.strip()):
        rows: list[tuple[int | None, list[str]]] = [(1, header)]
        header = [f"column {i + 1}" for i in range(len(header))]
    else:
        header = [h.strip() or f"column {i + 1}" for i, h in enumerate(header)]
        rows = []
    truncated = False
    try:
        for values in reader:
            if len(rows) >= max_rows:
                truncated = True
                break
            rows.append((reader.line_num, values))
    except csv.Error as exc:
        raise FormatError(f"malformed delimited file near line {reader.line_num}: {exc}") from None
    return Table("csv" if delimiter != "\t" else "tsv", header, rows, truncated)


def _looks_like_value(field: str) -> bool:
    f = field.strip()
    return "@" in f or sum(c.isdigit() for c in f) > len(f) / 2


def looks_like_jsonl(text: str) -> bool:
    lines = [ln for ln in text[:65536].splitlines()[:5] if ln.strip()]
    if not lines:
        return False
    for ln in lines[:-1] if len(lines) > 1 else lines:
        s = ln.strip()
        if not (s.startswith("{") and s.endswith("}")):
            return False
        try:
            if not isinstance(json.loads(s), dict):
                return False
        except ValueError:
            return False
    return True


def _flatten(obj: dict[str, object], prefix: str = "") -> Iterator[tuple[str, str]]:
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not prefix:
            yield from _flatten(v, key + ".")
        elif isinstance(v, str):
            yield key, v
        elif isinstance(v, int | float) and not isinstance(v, bool):
            yield key, str(v)


def read_jsonl(text: str, max_rows: int) -> Table:
    columns: dict[str, int] = {}
    records: list[tuple[int, dict[str, str]]] = []
    bad = 0
    truncated = False
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(records) >= max_rows:
            truncated = True
            break
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            bad += 1
            continue
        if not isinstance(obj, dict):
            bad += 1
            continue
        flat = dict(_flatten(obj))
        for k in flat:
            columns.setdefault(k, len(columns))
        records.append((n, flat))
    if bad and bad > len(records) // 10:
        raise FormatError(f"{bad} lines of the JSON-lines file are not JSON objects")
    header = list(columns)
    rows: list[tuple[int | None, list[str]]] = [(n, [rec.get(h, "") for h in header]) for n, rec in records]
    return Table("jsonl", header, rows, truncated)


def read_parquet(data: memoryview, max_rows: int) -> Table:
    """Raises ImportError when pyarrow (extra ``parquet``) is not installed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(pa.BufferReader(pa.py_buffer(data)))
        header = [str(n) for n in pf.schema_arrow.names]
        rows: list[tuple[int | None, list[str]]] = []
        for batch in pf.iter_batches(batch_size=min(max_rows, 4096)):
            cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            for r in range(batch.num_rows):
                rows.append((None, ["" if c[r] is None else str(c[r]) for c in cols]))
                if len(rows) >= max_rows:
                    return Table("parquet", header, rows, True)
    except (pa.ArrowException, OSError) as exc:
        raise FormatError(f"parquet: {exc}") from None
    return Table("parquet", header, rows, False)


def looks_like_xlsx(data: memoryview) -> bool:
    """An Office Open XML workbook: a ZIP whose members include ``xl/workbook.xml`` (content, not name)."""
    if bytes(data[:4]) != b"PK\x03\x04":
        return False
    import zipfile

    from bastion.scanners._buffer import ViewReader

    try:
        with zipfile.ZipFile(ViewReader(data)) as zf:  # reads the directory only, never copies the file
            return "xl/workbook.xml" in zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def read_xlsx(data: memoryview, max_rows: int) -> tuple[list[tuple[str, Table]], bool]:
    """The worksheets of an ``.xlsx`` workbook as ``(sheet name, table)``, at most ``max_rows`` rows in
    all; the flag says the budget ran out (later rows or sheets were not read).

    Read in openpyxl's streaming read-only mode: cached cell values, formulas never evaluated, no
    macros run, external links not kept. Raises ImportError when openpyxl (extra ``excel``) is not
    installed. The first non-empty row of a sheet is its header; a row's ``line`` is its row number.
    """
    import warnings
    import zipfile

    import openpyxl  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from openpyxl.utils.exceptions import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        InvalidFileException,
    )

    tables: list[tuple[str, Table]] = []
    budget = max_rows
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it drops
            wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
            try:
                for ws in wb.worksheets:
                    header: list[str] | None = None
                    rows: list[tuple[int | None, list[str]]] = []
                    truncated = False
                    for n, values in enumerate(ws.iter_rows(values_only=True), start=1):
                        cells = ["" if v is None else str(v) for v in values]
                        if header is None:
                            if any(c.strip() for c in cells):
                                header = [c.strip() or f"column {i + 1}" for i, c in enumerate(cells)]
                            continue
                        if len(rows) >= budget:
                            truncated = True
                            break
                        if any(c.strip() for c in cells):
                            rows.append((n, cells))
                    if header is not None:
                        budget -= len(rows)
                        tables.append((str(ws.title), Table("xlsx", header, rows, truncated)))
                    if budget <= 0 or truncated:
                        return tables, True
            finally:
                wb.close()
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as exc:
        raise FormatError(f"xlsx: {type(exc).__name__}: {exc}") from None
    return tables, False

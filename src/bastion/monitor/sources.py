"""Read tabular data (CSV, JSON lines, Parquet; a folder of them) as a stream of Arrow record batches.

The format is recognised by content, never by file name: Parquet by its ``PAR1`` magic at both ends,
JSON lines by a first non-blank byte of ``{``, CSV otherwise, provided the start decodes as UTF-8
text. Reading is streaming: memory is bounded by the batch size, not the file size. Parquet is read
``BATCH_ROWS`` rows at a time through a ``PARQUET_BUFFER_BYTES`` read buffer, without Arrow's
pre-buffering (which caches every column chunk it has read until the file is closed, so memory grew
with the number of row groups: 1.3 GB at 5M rows); CSV and JSON lines ``BLOCK_BYTES`` at a time.
CSV cells are read as strings and typed later by the profiler, so a stray word in a numeric column
is a *data-type violation* and not a crash. Anything unreadable raises :class:`bastion.errors.InputError`.
"""

from __future__ import annotations

import csv
import enum
import io
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.errors import InputError, UsageError

if TYPE_CHECKING:
    import pyarrow as pa

NULL_STRINGS = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "none"]
BATCH_ROWS = 65_536  # rows per Parquet record batch
PARQUET_BUFFER_BYTES = 1 << 20  # Parquet column-chunk read buffer (instead of whole row groups)
BLOCK_BYTES = 4 << 20  # bytes of CSV / JSON lines parsed at a time
SNIFF_BYTES = 64 << 10


class DataFormat(enum.Enum):
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


@dataclass(frozen=True)
class DataFile:
    path: Path
    format: DataFormat


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise UsageError(
            "bastion monitor needs the 'monitor' extra (pyarrow, numpy, scipy)",
            hint="pip install 'bastion-mlsecops[monitor]'",
        ) from None


def sniff(path: Path) -> DataFormat:
    """Recognise a data file by its content."""
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
            size = handle.seek(0, io.SEEK_END)
            tail = b""
            if size >= 8:
                handle.seek(size - 4)
                tail = handle.read(4)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not head:
        raise InputError(f"{path} is empty", hint="a data file needs a header row or at least one record")
    if head.startswith(b"PAR1"):
        if tail != b"PAR1":
            raise InputError(
                f"{path} starts like Parquet but has no footer: the file is truncated or corrupt"
            )
        return DataFormat.PARQUET
    if b"\x00" in head:
        raise InputError(
            f"{path} is binary and not Parquet", hint="supported formats: CSV, JSON lines, Parquet"
        )
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a cut multi-byte character at the very end is fine
            raise InputError(f"{path} is neither UTF-8 text nor Parquet (byte {exc.start})") from None
        text = head[: exc.start].decode("utf-8")
    if text.lstrip("\ufeff \t\r\n").startswith("{"):
        return DataFormat.JSONL
    return DataFormat.CSV


def discover(data: Path) -> list[DataFile]:
    """One file, or every regular non-hidden file under a folder (sorted; symlinks are not followed)."""
    if not data.exists():
        raise InputError(f"{data} does not exist")
    if data.is_file():
        return [DataFile(data, sniff(data))]
    if not data.is_dir():
        raise InputError(f"{data} is neither a file nor a folder")
    files = [
        p
        for p in sorted(data.rglob("*"))
        if p.is_file()
        and not p.is_symlink()
        and not any(part.startswith(".") for part in p.relative_to(data).parts)
    ]
    if not files:
        raise InputError(f"{data} holds no data files")
    return [DataFile(p, sniff(p)) for p in files]


def read_batches(
    data: Path,
    *,
    batch_rows: int = BATCH_ROWS,
    block_bytes: int = BLOCK_BYTES,
    columns: Collection[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Every record batch of every file under ``data``, in order, each of bounded size.

    Parquet batches hold at most ``batch_rows`` rows; CSV and JSON lines batches come from at most
    ``block_bytes`` of text (a single record longer than that is an error for CSV). With
    ``columns``, only those of them that a file has are read (Parquet and CSV skip the others).
    """
    if batch_rows < 1 or block_bytes < 1:
        raise UsageError("batch_rows and block_bytes must be positive")
    _require_pyarrow()
    for item in discover(data):
        if item.format is DataFormat.PARQUET:
            yield from _parquet(item.path, batch_rows, columns)
        elif item.format is DataFormat.JSONL:
            for batch in _jsonl(item.path, block_bytes):
                yield _select(batch, columns)
        else:
            yield from _csv(item.path, block_bytes, columns)


def _select(batch: pa.RecordBatch, columns: Collection[str] | None) -> pa.RecordBatch:
    if columns is None:
        return batch
    return batch.select([name for name in batch.schema.names if name in columns])


def _parquet(path: Path, batch_rows: int, columns: Collection[str] | None) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path, pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES) as reader:
            names = reader.schema_arrow.names
            wanted = None if columns is None else [name for name in names if name in columns]
            yield from reader.iter_batches(batch_size=batch_rows, columns=wanted)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"{path}: unreadable Parquet: {exc}", hint="the file is truncated or corrupt"
        ) from None


def _csv_header(path: Path) -> list[str]:
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        try:
            header = next(csv.reader(handle))
        except StopIteration:
            header = []
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: unreadable CSV header: {exc}") from None
    names = [name.strip() for name in header]
    if not names or all(not name for name in names):
        raise InputError(f"{path}: the CSV has no header row", hint="the first line must name the columns")
    _check_names(path, names)
    return names


def _check_names(path: Path, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if not name:
            raise InputError(f"{path}: a column has an empty name")
        if name in seen:
            raise InputError(f"{path}: column {name!r} appears twice")
        seen.add(name)


def _csv(path: Path, block_bytes: int, columns: Collection[str] | None) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = _csv_header(path)
    options = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in names},
        null_values=NULL_STRINGS,
        strings_can_be_null=True,
        include_columns=None if columns is None else [name for name in names if name in columns],
    )
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(
                block_size=block_bytes, column_names=names, skip_rows=1, use_threads=False
            ),
            convert_options=options,
        )
        yield from reader
    except StopIteration:  # pragma: no cover - pyarrow ends iteration itself
        return
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{path}: malformed CSV: {exc}".strip(), hint="every row must have as many fields as the header"
        ) from None


def _jsonl(path: Path, block_bytes: int) -> Iterator[pa.RecordBatch]:
    with path.open("rb") as handle:
        pending = b""
        first_line = 1
        while True:
            block = handle.read(block_bytes)
            data = pending + block
            if not block:
                if data.strip():
                    yield _jsonl_block(path, data, first_line)
                return
            cut = data.rfind(b"\n")
            if cut < 0:
                pending = data
                continue
            pending = data[cut + 1 :]
            chunk = data[: cut + 1]
            if chunk.strip():
                yield _jsonl_block(path, chunk, first_line)
            first_line += chunk.count(b"\n")


def _jsonl_block(path: Path, chunk: bytes, first_line: int) -> pa.RecordBatch:
    """Parse one block of JSON lines with Arrow; on mixed types, fall back to strings per cell."""
    import pyarrow as pa
    import pyarrow.json as pajson

    try:
        table = pajson.read_json(io.BytesIO(chunk))
    except pa.ArrowInvalid:
        return _jsonl_as_strings(path, chunk, first_line)
    for f in table.schema:
        if pa.types.is_nested(f.type):
            return _jsonl_as_strings(path, chunk, first_line)
    _check_names(path, table.column_names)
    return table.combine_chunks().to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([])


def _jsonl_as_strings(path: Path, chunk: bytes, first_line: int) -> pa.RecordBatch:
    import pyarrow as pa

    rows: list[dict[str, Any]] = []
    for offset, line in enumerate(chunk.splitlines()):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: line {first_line + offset} is not valid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}: line {first_line + offset} is not a JSON object")
        rows.append(record)
    names: dict[str, None] = {}
    for record in rows:
        names.update(dict.fromkeys(record))
    columns = {
        name: pa.array([_cell(record.get(name)) for record in rows], type=pa.string()) for name in names
    }
    return pa.RecordBatch.from_pydict(columns)


def _cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return None if value in NULL_STRINGS else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, sort_keys=True)

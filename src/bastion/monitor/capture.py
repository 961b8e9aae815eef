"""Read the gateway's captured traffic (inputs and outputs) as a stream of Arrow record batches.

The gateway writes one JSON object per input row, in files laid out as::

    <capture_dir>/<model>/<YYYY-MM-DD>/<file>.jsonl
    {"_time": "2026-11-28T10:00:00.123Z", "_request_id": "...", "_model": "...", "_version": "...",
     "<feature>": value, ..., "prediction": <value or list>}

:class:`CaptureReader` selects the model's folder and the date folders that overlap the window
``[since, until)`` (UTC), keeps the rows whose ``_time`` falls in it, drops the ``_``-prefixed
metadata columns (they are not features), and keeps ``prediction`` as an output column, so the
model's outputs are profiled and drift-checked like its inputs. A list prediction (class
probabilities, a vector) becomes one numeric column per position: ``prediction_0``,
``prediction_1``... Files are read in bounded blocks. The newest file may be in the middle of being
written: a last line without its newline is left for the next run (counted in ``partial_lines``),
never parsed. What was skipped is part of the :class:`CaptureSummary`, not a log line.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.errors import InputError, UsageError
from bastion.monitor.sources import BLOCK_BYTES, DataFormat, sniff

if TYPE_CHECKING:
    import pyarrow as pa

TIME = "_time"
MODEL = "_model"
PREDICTION = "prediction"
METADATA_PREFIX = "_"


def parse_time(text: str, *, option: str = "time") -> dt.datetime:
    """An ISO-8601 instant; without an offset it is taken as UTC."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not an ISO-8601 time", hint="e.g. 2026-11-28T10:00:00Z or 2026-11-28"
        ) from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Date folders are UTC days: a naive time is UTC, an aware one is converted."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


@dataclass
class CaptureSummary:
    """What a capture read covered and what it left out."""

    model: str
    since: dt.datetime | None
    until: dt.datetime | None
    days: list[str] = field(default_factory=list)
    files: int = 0
    rows_read: int = 0
    rows_kept: int = 0
    rows_outside: int = 0  # _time outside [since, until), or another model's row
    rows_without_time: int = 0  # no parseable _time while the window is bounded: left out
    partial_lines: int = 0  # a last line still being written
    skipped: list[str] = field(default_factory=list)  # entries that are not date folders or are empty

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "days": self.days,
            "files": self.files,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "rows_outside": self.rows_outside,
            "rows_without_time": self.rows_without_time,
            "partial_lines": self.partial_lines,
            "skipped": self.skipped,
        }


class CaptureReader:
    """Iterate over a model's captured rows in ``[since, until)``; ``summary`` fills as it goes."""

    def __init__(
        self,
        root: Path,
        model: str,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        *,
        block_bytes: int = BLOCK_BYTES,
    ) -> None:
        if not model or model in {".", ".."} or "/" in model or "\\" in model or model.startswith("."):
            raise UsageError(f"{model!r} is not a model name", hint="the name of a folder under the capture")
        self.root = root
        self.folder = root / model
        self.since = _utc(since)
        self.until = _utc(until)
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise UsageError("--until must be later than --since")
        self.block_bytes = block_bytes
        self.summary = CaptureSummary(model, self.since, self.until)

    def days(self) -> list[Path]:
        """The model's date folders that overlap the window, oldest first."""
        if not self.root.is_dir():
            raise InputError(f"capture folder {self.root} does not exist")
        if not self.folder.is_dir():
            known = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
            raise InputError(
                f"no capture for model {self.summary.model!r} under {self.root}",
                hint=f"models captured: {', '.join(known) or 'none'}",
            )
        first = self.since.date() if self.since else None
        last = (self.until - dt.timedelta(microseconds=1)).date() if self.until else None
        chosen = []
        for entry in sorted(self.folder.iterdir()):
            if entry.name.startswith("."):
                continue
            try:
                day = dt.date.fromisoformat(entry.name) if len(entry.name) == 10 else None
            except ValueError:
                day = None
            if day is None or not entry.is_dir() or entry.is_symlink():
                self.summary.skipped.append(f"{entry.name} (not a YYYY-MM-DD folder)")
                continue
            if (first is None or day >= first) and (last is None or day <= last):
                chosen.append(entry)
        return chosen

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        from bastion.monitor.sources import _require_pyarrow

        _require_pyarrow()
        for day in self.days():
            self.summary.days.append(day.name)
            for path in sorted(day.iterdir()):
                if path.name.startswith(".") or not path.is_file() or path.is_symlink():
                    continue
                if path.stat().st_size == 0:
                    self.summary.skipped.append(f"{day.name}/{path.name} (empty)")
                    continue
                if sniff(path) is not DataFormat.JSONL:
                    raise InputError(f"{path} is not JSON lines", hint="the gateway captures JSON lines")
                self.summary.files += 1
                for chunk in self._chunks(path):
                    batch = self._window(_parse(path, chunk))
                    if batch.num_rows:
                        self.summary.rows_kept += batch.num_rows
                        yield batch

    def _chunks(self, path: Path) -> Iterator[bytes]:
        """Blocks of whole lines; a last line without its newline is still being written."""
        with path.open("rb") as handle:
            pending = b""
            while True:
                block = handle.read(self.block_bytes)
                if not block:
                    if pending.strip():
                        self.summary.partial_lines += 1
                    return
                data = pending + block
                cut = data.rfind(b"\n")
                if cut < 0:
                    pending = data
                    continue
                pending = data[cut + 1 :]
                if data[: cut + 1].strip():
                    yield data[: cut + 1]

    def _window(self, table: pa.Table) -> pa.RecordBatch:
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = table.num_rows
        self.summary.rows_read += rows
        keep = pa.array([True] * rows, pa.bool_())
        if MODEL in table.column_names:  # a row that says it is another model's does not belong here
            model = pc.cast(table.column(MODEL), pa.string())
            keep = pc.fill_null(pc.equal(model, pa.scalar(self.summary.model, pa.string())), True)
        without_time = 0
        if self.since is not None or self.until is not None:
            if TIME in table.column_names:
                times = _times(table.column(TIME))
            else:
                times = pa.nulls(rows, pa.timestamp("us", tz="UTC"))
            without_time = times.null_count
            unit = pa.timestamp("us", tz="UTC")
            keep = pc.and_(keep, pc.is_valid(times))
            if self.since is not None:
                keep = pc.and_(
                    keep, pc.fill_null(pc.greater_equal(times, pa.scalar(self.since, unit)), False)
                )
            if self.until is not None:
                keep = pc.and_(keep, pc.fill_null(pc.less(times, pa.scalar(self.until, unit)), False))
        kept = int(pc.sum(keep).as_py() or 0)
        self.summary.rows_without_time += without_time
        self.summary.rows_outside += rows - kept - without_time
        return _features(table.filter(keep) if kept < rows else table)


def _parse(path: Path, chunk: bytes) -> pa.Table:
    """Whole lines of JSON to a table; nested values other than a list prediction become JSON text."""
    import pyarrow as pa
    import pyarrow.json as pajson

    try:
        table = pajson.read_json(io.BytesIO(chunk))
    except pa.ArrowInvalid:  # mixed types in a column: every cell as text, typed later by the profile
        from bastion.monitor.sources import _jsonl_as_strings

        return pa.Table.from_batches([_jsonl_as_strings(path, chunk, 1)])
    return table.combine_chunks()


def _times(column: pa.ChunkedArray) -> pa.Array:
    """``_time`` as UTC timestamps (null where unparseable)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    unit = pa.timestamp("us", tz="UTC")
    array = column.combine_chunks()
    if pa.types.is_timestamp(array.type):
        if array.type.tz is None:
            return pc.assume_timezone(array.cast(pa.timestamp("us")), "UTC")
        return array.cast(unit)
    text = pc.cast(array, pa.string())
    try:
        return pc.cast(text, unit)
    except pa.ArrowInvalid:  # no offset, or mixed forms: parse one by one (naive means UTC)
        values = []
        for item in text.to_pylist():
            try:
                values.append(parse_time(item) if item is not None else None)
            except UsageError:
                values.append(None)
        return pa.array(values, type=unit)


def _features(table: pa.Table) -> pa.RecordBatch:
    """Drop the metadata columns, spread a list prediction over numbered columns, nested cells as text."""
    import pyarrow as pa

    columns: dict[str, pa.Array] = {}
    for name in table.column_names:
        if name.startswith(METADATA_PREFIX):
            continue
        array = table.column(name).combine_chunks()
        if name == PREDICTION and _numeric_list(array.type):
            columns.update(_spread(name, array))
        elif pa.types.is_nested(array.type):
            columns[name] = pa.array(
                [None if v is None else json.dumps(v, sort_keys=True) for v in array.to_pylist()], pa.string()
            )
        else:
            columns[name] = array
    if not columns:
        return pa.RecordBatch.from_pydict({})
    return pa.RecordBatch.from_pydict(columns)


def _numeric_list(kind: pa.DataType) -> bool:
    import pyarrow as pa

    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        return False
    item = kind.value_type
    return bool(pa.types.is_integer(item) or pa.types.is_floating(item) or pa.types.is_null(item))


def _spread(name: str, array: pa.Array) -> dict[str, pa.Array]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
    width = int(lengths.max()) if len(lengths) else 0
    flat = pc.cast(pc.list_flatten(array), pa.float64()).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(array).to_numpy(zero_copy_only=False)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else np.empty(0, np.int64)
    position = np.arange(len(flat)) - starts[parents] if len(flat) else np.empty(0, np.int64)
    out = {}
    for i in range(width):
        values = np.full(len(array), np.nan)
        hit = position == i
        values[parents[hit]] = flat[hit]
        out[f"{name}_{i}"] = pa.array(values, mask=np.isnan(values))
    return out

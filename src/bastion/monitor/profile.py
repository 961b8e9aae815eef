"""Profiles: per-column summaries of a dataset, built batch by batch and mergeable.

A :class:`DatasetProfile` is what a baseline stores and what a window is turned into before it is
compared: the comparison never needs the reference rows again. Column kinds are inferred from the
first non-empty batch (numeric when every present value parses as a number) unless fixed in advance,
which is how a window is typed against its baseline: a word in a numeric column then counts as
``invalid`` (a data-type violation) instead of changing the column's kind.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bastion.errors import InputError, UsageError
from bastion.monitor.sketch import CategoryCounts, KLLSketch, Moments

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

PROFILE_SCHEMA = "bastion.monitor.profile/1"
_NUMBER = r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$"


class ColumnKind(enum.Enum):
    NUMERIC = "numeric"
    STRING = "string"


@dataclass
class ColumnProfile:
    name: str
    kind: ColumnKind | None = None
    rows: int = 0
    missing: int = 0
    invalid: int = 0
    integral: bool = True
    moments: Moments = field(default_factory=Moments)
    sketch: KLLSketch = field(default_factory=KLLSketch)
    categories: CategoryCounts = field(default_factory=CategoryCounts)

    @property
    def present(self) -> int:
        return self.rows - self.missing - self.invalid

    @property
    def completeness(self) -> float:
        return (self.rows - self.missing) / self.rows if self.rows else 0.0

    @property
    def inferred_type(self) -> str:
        """SageMaker's names: Integral, Fractional, String, Unknown."""
        if self.kind is ColumnKind.NUMERIC:
            return "Integral" if self.integral else "Fractional"
        if self.kind is ColumnKind.STRING:
            return "String"
        return "Unknown"

    def update(self, array: pa.Array | pa.ChunkedArray) -> None:
        import pyarrow as pa

        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        n = len(array)
        self.rows += n
        if self.kind is None and array.null_count < n:
            self.kind = infer_kind(array)
        if self.kind is ColumnKind.NUMERIC:
            values, missing, invalid = to_numeric(array)
            self.missing += missing
            self.invalid += invalid
            if values.size:
                import numpy as np

                self.integral = self.integral and bool(np.all(values == np.floor(values)))
                self.moments.update(values)
                self.sketch.update(values)
        elif self.kind is ColumnKind.STRING:
            counts, missing = string_counts(array)
            self.missing += missing
            self.categories.update(counts)
        else:
            self.missing += n

    def add_missing(self, n: int) -> None:
        self.rows += n
        self.missing += n

    def merge(self, other: ColumnProfile) -> None:
        if self.kind is not None and other.kind is not None and self.kind is not other.kind:
            raise UsageError(
                f"column {self.name!r} is {self.kind.value} in one profile "
                f"and {other.kind.value} in the other"
            )
        self.kind = self.kind or other.kind
        self.rows += other.rows
        self.missing += other.missing
        self.invalid += other.invalid
        self.integral = self.integral and other.integral
        self.moments.merge(other.moments)
        self.sketch.merge(other.sketch)
        self.categories.merge(other.categories)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind.value if self.kind else None,
            "rows": self.rows,
            "missing": self.missing,
            "invalid": self.invalid,
            "integral": self.integral,
        }
        if self.kind is ColumnKind.NUMERIC:
            data["moments"] = self.moments.to_json()
            data["sketch"] = self.sketch.to_json()
        elif self.kind is ColumnKind.STRING:
            data["categories"] = self.categories.to_json()
        return data

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> ColumnProfile:
        kind = ColumnKind(data["kind"]) if data["kind"] is not None else None
        column = cls(
            name=name,
            kind=kind,
            rows=int(data["rows"]),
            missing=int(data["missing"]),
            invalid=int(data["invalid"]),
            integral=bool(data["integral"]),
        )
        if kind is ColumnKind.NUMERIC:
            column.moments = Moments.from_json(data["moments"])
            column.sketch = KLLSketch.from_json(data["sketch"])
        elif kind is ColumnKind.STRING:
            column.categories = CategoryCounts.from_json(data["categories"])
        if min(column.rows, column.missing, column.invalid) < 0 or column.present < 0:
            raise ValueError(f"column {name!r}: counts are inconsistent")
        return column


@dataclass
class DatasetProfile:
    rows: int = 0
    columns: dict[str, ColumnProfile] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)  # columns present in at least one batch (not serialised)

    @classmethod
    def typed_like(cls, reference: DatasetProfile) -> DatasetProfile:
        """An empty profile whose known columns have the reference's kinds."""
        return cls(
            columns={name: ColumnProfile(name, kind=col.kind) for name, col in reference.columns.items()}
        )

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        n = batch.num_rows
        names = set(batch.schema.names)
        for name in batch.schema.names:
            column = self.columns.get(name)
            if column is None:
                column = self.columns[name] = ColumnProfile(name)
                column.add_missing(self.rows)
            self.seen.add(name)
            column.update(batch.column(name))
        for name, column in self.columns.items():
            if name not in names:
                column.add_missing(n)
        self.rows += n

    def merge(self, other: DatasetProfile) -> None:
        for name in set(self.columns) | set(other.columns):
            mine = self.columns.get(name)
            theirs = other.columns.get(name)
            if mine is None:
                mine = self.columns[name] = ColumnProfile(name, kind=theirs.kind if theirs else None)
                mine.add_missing(self.rows)
            if theirs is None:
                mine.add_missing(other.rows)
            else:
                mine.merge(theirs)
        self.seen |= other.seen
        self.rows += other.rows

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": PROFILE_SCHEMA,
            "rows": self.rows,
            "columns": {name: col.to_json() for name, col in self.columns.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatasetProfile:
        if data.get("schema_version") != PROFILE_SCHEMA:
            raise ValueError(f"unsupported profile schema {data.get('schema_version')!r}")
        profile = cls(rows=int(data["rows"]))
        for name, col in dict(data["columns"]).items():
            profile.columns[str(name)] = ColumnProfile.from_json(str(name), col)
        profile.seen = set(profile.columns)
        return profile


def profile_batches(
    batches: Iterable[pa.RecordBatch], *, like: DatasetProfile | None = None
) -> DatasetProfile:
    profile = DatasetProfile.typed_like(like) if like is not None else DatasetProfile()
    for batch in batches:
        profile.update(batch)
    if like is not None:  # known columns never seen in the window: absent, not "all missing"
        for name in list(profile.columns):
            if name not in profile.seen:
                del profile.columns[name]
    return profile


def infer_kind(array: pa.Array) -> ColumnKind:
    import pyarrow as pa

    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_decimal(array.type):
        return ColumnKind.NUMERIC
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        _, _, invalid = to_numeric(array)
        return ColumnKind.NUMERIC if invalid == 0 else ColumnKind.STRING
    if pa.types.is_null(array.type):  # pragma: no cover - caller checks null_count first
        raise InputError("cannot infer a type from an all-null column")
    return ColumnKind.STRING


def to_numeric(array: pa.Array) -> tuple[npt.NDArray[np.float64], int, int]:
    """Finite values, number missing (null, NaN, ±inf) and number invalid (present but not a number)."""
    import numpy as np

    values, invalid = numeric_values(array)
    kept = values[np.isfinite(values)]
    return kept, len(array) - invalid - int(kept.size), invalid


def numeric_values(array: pa.Array) -> tuple[npt.NDArray[np.float64], int]:
    """One float per row (NaN where missing or not a number) and the number of invalid values."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    invalid = 0
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        try:
            numbers = pc.cast(array, pa.float64())
        except pa.ArrowInvalid:
            ok = pc.fill_null(pc.match_substring_regex(array, _NUMBER), False)
            invalid = (len(array) - array.null_count) - int(pc.sum(ok).as_py() or 0)
            numbers = pc.cast(pc.utf8_trim_whitespace(pc.if_else(ok, array, None)), pa.float64())
    elif pa.types.is_boolean(array.type) or (
        pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_decimal(array.type)
    ):
        numbers = pc.cast(array, pa.float64())
    elif pa.types.is_null(array.type):
        return np.full(len(array), np.nan), 0
    else:
        return np.full(len(array), np.nan), len(array) - array.null_count
    values = np.asarray(numbers.to_numpy(zero_copy_only=False), dtype=np.float64)
    return values, invalid


def string_counts(array: pa.Array) -> tuple[dict[str, int], int]:
    """Counts of each present value (as text) and the number missing."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        if pa.types.is_null(array.type):
            return {}, len(array)
        array = pc.cast(array, pa.string())
    counts: dict[str, int] = {}
    for item in pc.value_counts(array).to_pylist():
        value = item["values"]
        if value is not None:
            counts[str(value)] = int(item["counts"])
    return counts, array.null_count

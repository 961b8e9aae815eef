"""Multivariate drift: a PCA reconstruction-error detector built from mergeable co-moments.

Univariate tests look at one column at a time, so they miss drift that changes only how columns
move together (a correlation that flips sign while every marginal stays the same). This detector
looks at the rows as vectors: numeric columns, plus 0/1 indicators for the reference's most
frequent categories, each standardised by the reference mean and standard deviation (a missing
value counts as the mean). Principal components keep ``explained_variance`` of the reference's
variance; a row's *reconstruction error* is its squared distance to that subspace. When the joint
distribution moves off the reference's structure, the window's mean error rises.

The baseline stores no row. :class:`JointMoments` accumulates, in one streaming pass and in
``O(D²)`` memory, the sums from which the covariance of that standardised, mean-imputed vector
follows (``Σ xᵢxⱼ``, ``Σ xᵢ[j present]`` and ``Σ [i present][j present]`` over shifted values),
mergeable by addition like the rest of the profile. Rows alternate between two halves: the
components are fitted on the first, and the reference error is *measured on the second* — the
smallest eigenvalues of a sample covariance underestimate the true ones, so an error measured on the
fitting rows would be biased low and a clean window would look drifted.

Decision, like the per-column one: drift when the window's mean error exceeds the reference's by at
least ``threshold`` (relative effect size) *and* a one-sided z-test on the mean gives ``p <= alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bastion.monitor.profile import ColumnKind, infer_kind, numeric_values, string_counts

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

    FloatArray = npt.NDArray[np.float64]

JOINT_SCHEMA = "bastion.monitor.joint/1"
METHOD = "pca_reconstruction"
MAX_DIMS = 100  # dimensions kept (numeric columns first, then category indicators)
CATEGORY_DIMS = 4  # indicators per categorical column: its most frequent values, never all of them
MIN_HALF_ROWS = 500  # each half of the reference needs this many rows, and 10 per dimension
MIN_WINDOW_ROWS = 100
CHUNK_ROWS = 16_384  # rows turned into a dense matrix at a time (bounds the temporaries)
TOP_CONTRIBUTIONS = 5


@dataclass(frozen=True)
class Dim:
    """One dimension of the row vector: a numeric column, or ``column == category`` as 0/1."""

    column: str
    category: str | None = None

    @property
    def label(self) -> str:
        return self.column if self.category is None else f"{self.column}={self.category}"


def choose_dims(batch: pa.RecordBatch) -> tuple[Dim, ...]:
    """The dimensions, from the first batch: every numeric column, then category indicators."""
    numeric: list[Dim] = []
    indicators: list[Dim] = []
    for name in batch.schema.names:
        array = batch.column(name)
        if array.null_count == len(array):
            continue
        if infer_kind(array) is ColumnKind.NUMERIC:
            numeric.append(Dim(name))
            continue
        counts, _ = string_counts(array)
        ranked = sorted(counts, key=lambda v: (-counts[v], v))
        indicators.extend(Dim(name, v) for v in ranked[: min(CATEGORY_DIMS, len(ranked) - 1)])
    return tuple((numeric + indicators)[:MAX_DIMS])


def design(batch: pa.RecordBatch, dims: Sequence[Dim]) -> FloatArray:
    """Rows × dims matrix; NaN where a numeric value is missing (an indicator is never missing)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    out = np.full((batch.num_rows, len(dims)), np.nan)
    names = set(batch.schema.names)
    indicators: dict[str, list[tuple[int, str]]] = {}
    for j, dim in enumerate(dims):
        if dim.column not in names:
            continue
        if dim.category is None:
            out[:, j] = numeric_values(batch.column(dim.column))[0]
        else:
            indicators.setdefault(dim.column, []).append((j, dim.category))
    for name, wanted in indicators.items():  # one lookup per column, not one per category
        array = batch.column(name)
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            array = pc.cast(array, pa.string())
        values = pa.array([category for _, category in wanted], pa.string())
        index = pc.fill_null(pc.index_in(array, value_set=values), -1).to_numpy(zero_copy_only=False)
        for k, (j, _) in enumerate(wanted):
            out[:, j] = index == k
    return out


@dataclass
class _Sums:
    """Sums over rows of shifted values ``x`` (0 where missing) and presence masks ``m``."""

    rows: int
    c: FloatArray  # Σ xᵢ xⱼ
    a: FloatArray  # Σ xᵢ mⱼ
    n: FloatArray  # Σ mᵢ mⱼ

    @classmethod
    def empty(cls, d: int) -> _Sums:
        import numpy as np

        return cls(0, np.zeros((d, d)), np.zeros((d, d)), np.zeros((d, d)))

    def add(self, x: FloatArray, present: npt.NDArray[np.bool_]) -> None:
        if not len(x):
            return
        self.rows += len(x)
        self.c += x.T @ x
        if present.all():
            self.a += x.sum(axis=0)[:, None]
            self.n += len(x)
        else:
            m = present.astype(float)
            self.a += x.T @ m
            self.n += m.T @ m

    def shifted(self, delta: FloatArray) -> _Sums:
        """The same sums with every present value moved by ``delta`` (per dimension)."""
        import numpy as np

        c = self.c + self.a * delta[None, :] + self.a.T * delta[:, None] + self.n * np.outer(delta, delta)
        return _Sums(self.rows, c, self.a + delta[:, None] * self.n, self.n.copy())

    def merged(self, other: _Sums) -> _Sums:
        return _Sums(self.rows + other.rows, self.c + other.c, self.a + other.a, self.n + other.n)

    def second_moment(self, mean: FloatArray, scale: FloatArray) -> FloatArray:
        """Mean of zᵢzⱼ over all rows, z = (x - mean) / scale where present, else 0."""
        import numpy as np

        c = self.c - self.a * mean[None, :] - self.a.T * mean[:, None] + self.n * np.outer(mean, mean)
        result: FloatArray = c / np.outer(scale, scale) / max(self.rows, 1)
        return result

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "c": self.c.tolist(), "a": self.a.tolist(), "n": self.n.tolist()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], d: int) -> _Sums:
        import numpy as np

        arrays = [np.asarray(data[k], dtype=np.float64) for k in ("c", "a", "n")]
        if any(a.shape != (d, d) or not np.all(np.isfinite(a)) for a in arrays):
            raise ValueError(f"joint moments must be finite {d}x{d} matrices")
        rows = int(data["rows"])
        if rows < 0:
            raise ValueError("joint moments: negative row count")
        return cls(rows, *arrays)


@dataclass
class JointMoments:
    """Mergeable second-order summary of the rows, split into a fitting half and a held-out half."""

    dims: tuple[Dim, ...] | None = None
    shift: FloatArray | None = None
    halves: tuple[_Sums, _Sums] | None = None

    @property
    def rows(self) -> int:
        return sum(h.rows for h in self.halves) if self.halves else 0

    def update(self, batch: pa.RecordBatch) -> None:
        if self.dims is None:
            if batch.num_rows == 0:
                return
            self.dims = choose_dims(batch)
        for offset in range(0, batch.num_rows, CHUNK_ROWS):
            self._add(batch.slice(offset, CHUNK_ROWS))

    def _add(self, batch: pa.RecordBatch) -> None:
        import numpy as np

        if not self.dims or batch.num_rows == 0:
            return
        x = design(batch, self.dims)
        present = np.isfinite(x)
        if self.shift is None or self.halves is None:
            with np.errstate(invalid="ignore"):
                counts = present.sum(axis=0)
                sums = np.where(present, x, 0.0).sum(axis=0)
            self.shift = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
            self.halves = (_Sums.empty(len(self.dims)), _Sums.empty(len(self.dims)))
        x = np.where(present, x - self.shift, 0.0)
        start = self.rows % 2
        self.halves[0].add(x[start::2], present[start::2])
        self.halves[1].add(x[1 - start :: 2], present[1 - start :: 2])

    def observe(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Pass batches through, accumulating them on the way."""
        for batch in batches:
            self.update(batch)
            yield batch

    def merge(self, other: JointMoments) -> JointMoments | None:
        """The summary of both, or None when they hold different dimensions."""
        if other.halves is None or other.shift is None:
            return self
        if self.halves is None or self.shift is None:
            return other
        if self.dims != other.dims:
            return None
        delta = other.shift - self.shift
        first, second = (h.shifted(delta) for h in other.halves)
        if self.rows % 2:  # keep the alternation: the other's first row continues our sequence
            first, second = second, first
        return JointMoments(
            self.dims, self.shift, (self.halves[0].merged(first), self.halves[1].merged(second))
        )

    def to_json(self) -> dict[str, Any]:
        if self.dims is None or self.shift is None or self.halves is None:
            return {"schema_version": JOINT_SCHEMA, "dims": []}
        return {
            "schema_version": JOINT_SCHEMA,
            "dims": [[d.column, d.category] for d in self.dims],
            "shift": self.shift.tolist(),
            "halves": [h.to_json() for h in self.halves],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JointMoments:
        import numpy as np

        if data.get("schema_version") != JOINT_SCHEMA:
            raise ValueError(f"unsupported joint-moments schema {data.get('schema_version')!r}")
        dims = tuple(Dim(str(c), None if v is None else str(v)) for c, v in data["dims"])
        if not dims:
            return cls(dims)
        shift = np.asarray(data["shift"], dtype=np.float64)
        if shift.shape != (len(dims),) or not np.all(np.isfinite(shift)):
            raise ValueError("joint moments: shift must hold one finite number per dimension")
        halves = [_Sums.from_json(h, len(dims)) for h in data["halves"]]
        if len(halves) != 2:
            raise ValueError("joint moments: expected two halves")
        return cls(dims, shift, (halves[0], halves[1]))


@dataclass(frozen=True)
class ResidualModel:
    """Standardisation and principal components fitted on the reference's first half."""

    dims: tuple[Dim, ...]
    columns: tuple[int, ...]  # indices into the design matrix (constant dimensions dropped)
    mean: FloatArray
    scale: FloatArray
    components: FloatArray  # kept dims × k, orthonormal
    residual_basis: FloatArray  # kept dims × (dims - k): the discarded components, orthonormal
    expected: float  # mean reconstruction error per row on the held-out half
    expected_by_dim: FloatArray
    reference_rows: int  # rows of the held-out half
    explained: float  # share of the reference variance the components keep

    def residual_coordinates(self, x: FloatArray) -> FloatArray:
        """Each row's coordinates on the discarded components: its error is their squared norm."""
        import numpy as np

        kept = x if len(self.columns) == x.shape[1] else x[:, self.columns]
        z = np.where(np.isfinite(kept), (kept - self.mean) / self.scale, 0.0)
        result: FloatArray = z @ self.residual_basis
        return result


def fit(joint: JointMoments, explained_variance: float) -> ResidualModel | str:
    """A model, or the reason why none can be fitted (too few rows or dimensions)."""
    import numpy as np

    if joint.dims is None or joint.shift is None or joint.halves is None or len(joint.dims) < 2:
        return "fewer than two numeric or categorical dimensions"
    first, held_out = joint.halves
    total = first.merged(held_out)
    count = np.diag(total.n)
    mean = np.diag(total.a) / np.maximum(count, 1)
    var = np.diag(total.c) / np.maximum(count, 1) - mean**2
    keep = np.flatnonzero((count > 1) & (var > 1e-12 * np.maximum(1.0, mean**2)))
    d = len(keep)
    needed = max(MIN_HALF_ROWS, 10 * d)
    if d < 2:
        return "fewer than two dimensions vary in the reference"
    if min(first.rows, held_out.rows) < needed:
        return f"the reference has too few rows for {d} dimensions ({needed} per half needed)"
    index = np.ix_(keep, keep)
    mean_k, scale_k = mean[keep], np.sqrt(var[keep])
    fit_moment = _Sums(first.rows, first.c[index], first.a[index], first.n[index]).second_moment(
        mean_k, scale_k
    )
    test_moment = _Sums(held_out.rows, held_out.c[index], held_out.a[index], held_out.n[index]).second_moment(
        mean_k, scale_k
    )
    eigenvalues, vectors = np.linalg.eigh(fit_moment)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, vectors = np.clip(eigenvalues[order], 0.0, None), vectors[:, order]
    cumulative = np.cumsum(eigenvalues) / max(float(eigenvalues.sum()), 1e-300)
    k = int(np.searchsorted(cumulative, explained_variance) + 1)
    k = min(max(k, 1), d - 1)
    components = vectors[:, :k]
    projector = np.eye(d) - components @ components.T
    by_dim = np.diag(projector @ test_moment @ projector).copy()
    return ResidualModel(
        dims=joint.dims,
        columns=tuple(int(i) for i in keep),
        mean=joint.shift[keep] + mean_k,
        scale=scale_k,
        components=components,
        residual_basis=np.ascontiguousarray(vectors[:, k:]),
        expected=float(by_dim.sum()),
        expected_by_dim=by_dim,
        reference_rows=held_out.rows,
        explained=float(cumulative[k - 1]),
    )


@dataclass
class ResidualStats:
    """A window's reconstruction errors, streamed: count, sum, sum of squares, and the Gram matrix
    of the residual coordinates (from which the error per dimension follows)."""

    model: ResidualModel
    rows: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    gram: FloatArray | None = field(default=None)

    @property
    def by_dim(self) -> FloatArray | None:
        """Sum over rows of each dimension's squared residual: diag(W G Wᵀ)."""
        if self.gram is None:
            return None
        basis = self.model.residual_basis
        result: FloatArray = ((basis @ self.gram) * basis).sum(axis=1)
        return result

    def update(self, batch: pa.RecordBatch) -> None:
        for offset in range(0, batch.num_rows, CHUNK_ROWS):
            self._add(batch.slice(offset, CHUNK_ROWS))

    def _add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        y = self.model.residual_coordinates(design(batch, self.model.dims))
        errors = (y * y).sum(axis=1)
        self.rows += len(errors)
        self.total += float(errors.sum())
        self.total_sq += float((errors**2).sum())
        gram = y.T @ y
        self.gram = gram if self.gram is None else self.gram + gram

    def observe(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            self.update(batch)
            yield batch


@dataclass(frozen=True)
class MultivariateResult:
    """The window-level verdict; ``drift`` None when it could not be decided (``note`` says why)."""

    drift: bool | None
    method: str = METHOD
    statistic: float | None = None  # relative rise of the mean reconstruction error
    threshold: float | None = None
    p_value: float | None = None
    reference_error: float | None = None
    current_error: float | None = None
    components: int | None = None
    dimensions: int | None = None
    explained_variance: float | None = None
    contributions: dict[str, float] = field(default_factory=dict)  # dimension → error ratio, largest
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "drift": self.drift,
            "method": self.method,
            "statistic": self.statistic,
            "threshold": self.threshold,
            "p_value": self.p_value,
        }
        if self.drift is not None:
            doc |= {
                "reference_error": self.reference_error,
                "current_error": self.current_error,
                "components": self.components,
                "dimensions": self.dimensions,
                "explained_variance": self.explained_variance,
                "contributions": self.contributions,
            }
        if self.note:
            doc["note"] = self.note
        return doc


def assess(stats: ResidualStats, threshold: float, alpha: float) -> MultivariateResult:
    import numpy as np
    from scipy.special import ndtr

    model = stats.model
    by_dim = stats.by_dim
    if stats.rows < MIN_WINDOW_ROWS or by_dim is None:
        return MultivariateResult(
            None, threshold=threshold, note=f"fewer than {MIN_WINDOW_ROWS} rows in the window"
        )
    n = stats.rows
    mean = stats.total / n
    var = max(stats.total_sq / n - mean**2, 0.0) * n / max(n - 1, 1)
    rise = (mean - model.expected) / max(model.expected, 1e-9 * len(model.columns))  # finite
    se = math.sqrt(var * (1.0 / n + 1.0 / model.reference_rows))
    if se == 0:  # every row has the same error
        p = 0.0 if mean > model.expected else 1.0
    else:
        p = float(1.0 - ndtr((mean - model.expected) / se))
    ratio = (by_dim / n + 1e-12) / (model.expected_by_dim + 1e-12)
    top = np.argsort(ratio)[::-1][:TOP_CONTRIBUTIONS]
    labels = [model.dims[model.columns[i]].label for i in top]
    return MultivariateResult(
        drift=bool(rise >= threshold and p <= alpha),
        statistic=float(rise),
        threshold=threshold,
        p_value=p,
        reference_error=model.expected,
        current_error=mean,
        components=int(model.components.shape[1]),
        dimensions=len(model.columns),
        explained_variance=model.explained,
        contributions={label: float(ratio[i]) for label, i in zip(labels, top, strict=True)},
    )

"""The training reference (``bastion-reference/v1``): what a model's training inputs look like, for the
out-of-distribution rate of extraction detection.

``build_reference`` writes the document from the training rows (mean, per-feature std, covariance, and the
Mahalanobis distance that the ``quantile`` of them stay within), ``reference_from_data`` from a data file
(``bastion gateway reference``); ``load_reference`` reads one back strictly,
bounded in size, as a ``Reference`` that tells per query row whether it lies beyond that distance.
``critical_count`` is the one-sided binomial test that turns a stream's count of such rows into a flag.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from bastion.gateway.errors import HttpError, ModelRefused

REFERENCE_FORMAT = "bastion-reference/v1"
MAX_REFERENCE_FEATURES = 512  # the covariance is features²; wider models need a PCA reference (not built)
MAX_REFERENCE_BYTES = 16 << 20
EIGENVALUE_FLOOR = 1e-9  # of the correlation matrix's largest: directions with no variance stay finite
_REFERENCE_KEYS = frozenset(
    {"format", "features", "rows", "quantile", "mean", "std", "covariance", "threshold", "exceedance"}
)


def _whitening(covariance: np.ndarray) -> np.ndarray:
    """``W`` with ``|(x − mean) W|²`` the squared Mahalanobis distance. It is computed on the correlation
    matrix (so features on very different scales are treated alike) with its eigenvalues floored, so that a
    singular covariance — redundant or constant features — makes every step off the training subspace very
    far, never infinite."""
    scale = np.sqrt(np.diag(covariance))
    scale = np.where(scale > 0, scale, 1.0)
    values, vectors = np.linalg.eigh(covariance / np.outer(scale, scale))
    floor = max(float(values.max()), 1.0) * EIGENVALUE_FLOOR
    whitening: np.ndarray = vectors / np.sqrt(np.maximum(values, floor)) / scale[:, None]
    return whitening


@dataclass(frozen=True)
class Reference:
    """A model's training inputs, compactly: mean, per-feature std, the whitening of their covariance, and
    the squared Mahalanobis distance that ``exceedance`` of the training rows exceed."""

    mean: np.ndarray
    std: np.ndarray
    whitening: np.ndarray
    threshold: float  # squared distance
    exceedance: float

    @property
    def width(self) -> int:
        return int(self.mean.size)

    def beyond(self, x: np.ndarray) -> list[bool]:
        """Per row: is it farther from the training data than the threshold? One product per row."""
        if x.shape[0] == 1:  # the common case, without the batch machinery
            one = (x[0] - self.mean) @ self.whitening
            return [float(one @ one) > self.threshold]
        u = (x - self.mean) @ self.whitening
        out: list[bool] = (np.einsum("ij,ij->i", u, u) > self.threshold).tolist()
        return out

    @classmethod
    def from_document(cls, doc: Any, width: int | None = None) -> Reference:
        """Check a ``bastion-reference/v1`` document strictly; ``ValueError`` says what is wrong."""
        if not isinstance(doc, dict) or doc.get("format") != REFERENCE_FORMAT:
            raise ValueError(f"not a {REFERENCE_FORMAT} document")
        if doc.keys() != _REFERENCE_KEYS:
            extra, missing = sorted(doc.keys() - _REFERENCE_KEYS), sorted(_REFERENCE_KEYS - doc.keys())
            raise ValueError(f"unknown fields {extra}, missing fields {missing}")
        d, rows = doc["features"], doc["rows"]
        if type(d) is not int or not 1 <= d <= MAX_REFERENCE_FEATURES:
            raise ValueError(f"features must be an integer from 1 to {MAX_REFERENCE_FEATURES}")
        if width is not None and d != width:
            raise ValueError(f"it describes {d} features but the model takes {width}")
        if type(rows) is not int or rows <= d or rows < 20:
            raise ValueError("rows must be an integer above both the feature count and 20")
        mean, std = _numbers(doc["mean"], (d,), "mean"), _numbers(doc["std"], (d,), "std")
        cov = _numbers(doc["covariance"], (d, d), "covariance")
        quantile, threshold, rate = (_number(doc[k], k) for k in ("quantile", "threshold", "exceedance"))
        if (std < 0).any():
            raise ValueError("std must not be negative")
        scale = max(float(np.abs(cov).max()), np.finfo(float).tiny)
        if not np.allclose(cov, cov.T, rtol=0, atol=1e-9 * scale) or (np.diag(cov) < 0).any():
            raise ValueError("covariance must be symmetric with a non-negative diagonal")
        if np.linalg.eigvalsh(cov).min() < -1e-6 * scale:
            raise ValueError("covariance is not positive semi-definite")
        if not 0.5 <= quantile < 1 or not threshold > 0 or not 0 < rate <= 0.5:
            raise ValueError("need 0.5 <= quantile < 1, threshold > 0 and 0 < exceedance <= 0.5")
        return cls(mean, std, _whitening(cov), threshold * threshold, rate)


def _number(value: Any, name: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    return float(value)


def _numbers(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A nested list of finite JSON numbers of exactly ``shape`` (no bools, no strings)."""
    rows = value if len(shape) == 2 else [value]
    if not isinstance(rows, list) or len(rows) != (shape[0] if len(shape) == 2 else 1):
        raise ValueError(f"{name} must be {' × '.join(map(str, shape))} numbers")
    for row in rows:
        if not (isinstance(row, list) and len(row) == shape[-1] and set(map(type, row)) <= {int, float}):
            raise ValueError(f"{name} must be {' × '.join(map(str, shape))} numbers")
    out = np.asarray(value, dtype=np.float64)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} must be finite")
    return out


def build_reference(x: np.ndarray, *, quantile: float = 0.99) -> dict[str, Any]:
    """The ``bastion-reference/v1`` document for training inputs ``x`` (rows × features): write it as JSON
    beside the model (``<model>.reference.json``) and name it in ``detection.reference``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or not np.isfinite(x).all() or x.shape[0] <= max(x.shape[1], 19):
        raise ValueError("need a finite rows × features array with more rows than features (and 20+)")
    if not 0.5 <= quantile < 1:
        raise ValueError("quantile must be in [0.5, 1)")
    mean = x.mean(axis=0)
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    cov = (cov + cov.T) / 2
    u = (x - mean) @ _whitening(cov)
    distance = np.sqrt(np.einsum("ij,ij->i", u, u))
    threshold = float(np.quantile(distance, quantile))
    exceedance = max(float((distance > threshold).mean()), 1.0 / x.shape[0])
    return {
        "format": REFERENCE_FORMAT,
        "features": int(x.shape[1]),
        "rows": int(x.shape[0]),
        "quantile": quantile,
        "mean": mean.tolist(),
        "std": x.std(axis=0).tolist(),
        "covariance": cov.tolist(),
        "threshold": max(threshold, np.finfo(float).tiny),
        "exceedance": exceedance,
    }


def reference_from_data(
    data: Path, columns: Sequence[str] | None = None, *, max_rows: int = 200_000, quantile: float = 0.99
) -> dict[str, Any]:
    """The reference for the training inputs in ``data`` (CSV, JSON lines or Parquet, or a folder of them,
    read as ``bastion monitor`` reads them), over ``columns`` in that order (default: every column, in the
    file's order: it must be the model's input order). Past ``max_rows`` rows a uniform random sample of
    ``max_rows`` (fixed seed) is kept, so memory stays bounded. Non-numeric or empty cells are an error."""
    from bastion.errors import InputError, UsageError

    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:
        raise UsageError(
            "reading training data needs the 'monitor' extra (pyarrow)",
            hint="pip install 'bastion-mlsecops[monitor]', or write the reference with build_reference",
        ) from None
    from bastion.monitor.sources import read_batches

    if max_rows < 20:
        raise UsageError("max_rows must be at least 20")
    rng = np.random.default_rng(0)
    kept = np.empty((0, 0))
    keys = np.empty(0)
    names: list[str] | None = list(columns) if columns else None
    seen = 0
    for batch in read_batches(data, columns=names):
        if names is None:
            names = list(batch.schema.names)
        missing = [name for name in names if name not in batch.schema.names]
        if missing:
            raise InputError(f"{data}: no column {missing[0]!r} (columns: {', '.join(batch.schema.names)})")
        try:
            block = np.column_stack(
                [pc.cast(batch.column(name), pa.float64()).to_numpy(zero_copy_only=False) for name in names]
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputError(f"{data}: a column holds something that is not a number ({exc})") from None
        if not np.isfinite(block).all():
            row, col = np.argwhere(~np.isfinite(block))[0]
            raise InputError(
                f"{data}: data row {seen + row + 1}, column {names[col]!r}: empty, NaN or infinite"
            )
        seen += len(block)
        kept = block if kept.size == 0 else np.vstack([kept, block])
        keys = np.concatenate([keys, rng.random(len(block))])
        if len(kept) > max_rows:  # the max_rows smallest random keys: a uniform sample without replacement
            chosen = np.sort(np.argpartition(keys, max_rows)[:max_rows])
            kept, keys = kept[chosen], keys[chosen]
    if names is None or kept.size == 0:
        raise InputError(f"{data}: no rows")
    try:
        return build_reference(kept, quantile=quantile)
    except ValueError as exc:
        raise UsageError(f"{data}: {exc} ({kept.shape[0]} rows × {kept.shape[1]} features)") from None


def load_reference(path: Path, width: int | None = None) -> Reference:
    """Read and check a reference file (strict JSON, bounded size); ``ModelRefused`` says what is wrong."""
    from bastion.gateway.wire import loads_strict

    refuse = f"detection reference {path}"
    try:
        with path.open("rb") as f:
            data = f.read(MAX_REFERENCE_BYTES + 1)
    except OSError as exc:
        raise ModelRefused(f"{refuse}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_REFERENCE_BYTES:
        raise ModelRefused(f"{refuse}: larger than {MAX_REFERENCE_BYTES} bytes")
    try:
        return Reference.from_document(loads_strict(data), width)
    except HttpError as exc:
        raise ModelRefused(f"{refuse}: {exc.message}") from None
    except ValueError as exc:
        raise ModelRefused(f"{refuse}: {exc}") from None


@lru_cache(maxsize=4096)
def critical_count(n: int, p: float, alpha: float) -> int:
    """The least k with P(Binomial(n, p) >= k) <= alpha: that many rows beyond the threshold out of ``n``
    reject "this stream exceeds it at rate ``p`` or less" (one-sided, exact)."""
    k = np.arange(1, n + 1)
    log_pmf = n * math.log1p(-p) + np.concatenate(
        [[0.0], np.cumsum(np.log((n - k + 1) / k) + math.log(p / (1 - p)))]
    )
    tail = np.cumsum(np.exp(log_pmf)[::-1])[::-1]  # tail[k] = P(X >= k)
    hits = np.flatnonzero(tail <= alpha)
    return int(hits[0]) if hits.size else n + 1

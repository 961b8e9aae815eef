"""Mergeable summaries of one column: moments, a KLL quantile sketch and bounded category counts.

Every summary here updates batch by batch in memory bounded by its parameters (not by the data),
merges with another summary of the same kind (across files, processes or machines) and
round-trips through JSON. ``Moments`` merge exactly (Chan et al.'s parallel update). The KLL sketch
(Karnin, Lang and Liberty, 2016; the sketch SageMaker Model Monitor also stores) keeps weighted
samples in levels; its rank error is a few ``1 / k`` (see ``rank_error``) and it is exact while it
has never compacted. ``CategoryCounts`` is exact up to ``capacity`` distinct values, then keeps the heaviest
and folds the rest into ``other`` (a Misra-Gries style bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]


@dataclass
class Moments:
    """Count, mean, sum of squared deviations, min and max of the finite values seen."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    def update(self, values: FloatArray) -> None:
        if values.size == 0:
            return
        other = Moments(
            count=int(values.size),
            mean=float(values.mean()),
            m2=float(((values - values.mean()) ** 2).sum()),
            minimum=float(values.min()),
            maximum=float(values.max()),
        )
        self.merge(other)

    def merge(self, other: Moments) -> None:
        if other.count == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.m2 = other.count, other.mean, other.m2
            self.minimum, self.maximum = other.minimum, other.maximum
            return
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean += delta * other.count / total
        self.m2 += other.m2 + delta * delta * self.count * other.count / total
        self.count = total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0

    @property
    def total(self) -> float:
        return self.mean * self.count

    def to_json(self) -> dict[str, Any]:
        if self.count == 0:
            return {"count": 0}
        return {
            "count": self.count,
            "mean": self.mean,
            "m2": self.m2,
            "min": self.minimum,
            "max": self.maximum,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Moments:
        if int(data["count"]) == 0:
            return cls()
        return cls(
            int(data["count"]), float(data["mean"]), float(data["m2"]), float(data["min"]), float(data["max"])
        )


@dataclass
class KLLSketch:
    """A KLL quantile sketch over float64 values, vectorised with NumPy.

    Level ``h`` holds items of weight ``2**h``. When a level outgrows its capacity it is sorted and
    every other item (from a random offset) moves up one level. Compaction is seeded so that the
    same input in the same order gives the same sketch.
    """

    k: int = 2048
    c: float = 2.0 / 3.0
    n: int = 0
    levels: list[FloatArray] = field(default_factory=list)
    compactions: int = 0

    def __post_init__(self) -> None:
        if self.k < 8:
            raise ValueError("k must be at least 8")
        self._sorted: tuple[FloatArray, FloatArray] | None = None

    def _capacity(self, level: int) -> int:
        depth = len(self.levels) - 1 - level
        return max(8, math.ceil(self.k * self.c**depth))

    def update(self, values: FloatArray) -> None:
        import numpy as np

        if values.size == 0:
            return
        if not self.levels:
            self.levels.append(np.empty(0, dtype=np.float64))
        self.levels[0] = np.concatenate([self.levels[0], values.astype(np.float64, copy=False)])
        self.n += int(values.size)
        self._compress()

    def merge(self, other: KLLSketch) -> None:
        import numpy as np

        if other.k != self.k:
            raise ValueError(f"cannot merge KLL sketches with k={self.k} and k={other.k}")
        while len(self.levels) < len(other.levels):
            self.levels.append(np.empty(0, dtype=np.float64))
        for h, items in enumerate(other.levels):
            self.levels[h] = np.concatenate([self.levels[h], items])
        self.n += other.n
        self.compactions += other.compactions
        self._compress()

    def _compress(self) -> None:
        import numpy as np

        self._sorted = None
        rng = np.random.default_rng(self.n + self.compactions)
        h = 0
        while h < len(self.levels):
            items = self.levels[h]
            if items.size > self._capacity(h):
                if h + 1 == len(self.levels):
                    self.levels.append(np.empty(0, dtype=np.float64))
                items = np.sort(items)
                keep = items[-1:].copy() if items.size % 2 else items[:0].copy()  # no view of the level
                pairs = items[: items.size - keep.size]
                promoted = pairs[int(rng.integers(0, 2)) :: 2]
                self.levels[h] = keep
                self.levels[h + 1] = np.concatenate([self.levels[h + 1], promoted])
                self.compactions += 1
            h += 1

    @property
    def exact(self) -> bool:
        """True while the sketch holds every value it was given."""
        return self.compactions == 0

    @property
    def rank_error(self) -> float:
        """A conservative estimate of the normalised rank error of cdf() (0 while exact).

        KLL's error is probabilistic; the largest seen in this project's tests is about 2.3 / k.
        """
        return 0.0 if self.exact else min(1.0, 3.0 / self.k)

    def _weighted(self) -> tuple[FloatArray, FloatArray]:
        import numpy as np

        if self._sorted is None:
            values = np.concatenate(self.levels) if self.levels else np.empty(0)
            weights = np.concatenate(
                [np.full(items.size, float(2**h)) for h, items in enumerate(self.levels)] or [np.empty(0)]
            )
            order = np.argsort(values, kind="stable")
            values = values[order]
            cumulative = np.cumsum(weights[order])
            self._sorted = (values, cumulative)
        return self._sorted

    def items(self) -> FloatArray:
        """The distinct sketch items, sorted (the points where cdf() can change)."""
        return self._weighted()[0]

    def cdf(self, x: FloatArray, *, strict: bool = False) -> FloatArray:
        """Fraction of values <= x (or < x when strict), vectorised over x."""
        import numpy as np

        values, cumulative = self._weighted()
        if values.size == 0:
            return np.zeros_like(x, dtype=np.float64)
        idx = np.searchsorted(values, x, side="left" if strict else "right")
        total = cumulative[-1]
        below = np.where(idx > 0, cumulative[np.maximum(idx - 1, 0)], 0.0)
        return np.asarray(below / total, dtype=np.float64)

    def quantile(self, p: FloatArray) -> FloatArray:
        """The values at ranks p (0..1), vectorised."""
        import numpy as np

        values, cumulative = self._weighted()
        if values.size == 0:
            return np.full_like(p, np.nan, dtype=np.float64)
        target = np.clip(p, 0.0, 1.0) * cumulative[-1]
        idx = np.minimum(np.searchsorted(cumulative, target, side="left"), values.size - 1)
        return np.asarray(values[idx], dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": "kll",
            "k": self.k,
            "c": self.c,
            "n": self.n,
            "compactions": self.compactions,
            "levels": [items.tolist() for items in self.levels],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KLLSketch:
        import numpy as np

        if data.get("algorithm") != "kll":
            raise ValueError(f"unknown sketch algorithm {data.get('algorithm')!r}")
        levels = [np.asarray(items, dtype=np.float64) for items in data["levels"]]
        if any(items.ndim != 1 or not np.isfinite(items).all() for items in levels):
            raise ValueError("sketch levels must be flat lists of finite numbers")
        held = sum(items.size * 2**h for h, items in enumerate(levels))
        if held != int(data["n"]):
            raise ValueError(f"sketch claims n={data['n']} but its levels weigh {held}")
        return cls(
            k=int(data["k"]),
            c=float(data["c"]),
            n=int(data["n"]),
            levels=levels,
            compactions=int(data["compactions"]),
        )


@dataclass
class CategoryCounts:
    """Counts of string values: exact up to ``capacity`` distinct values, then the heaviest are kept."""

    capacity: int = 10_000
    counts: dict[str, int] = field(default_factory=dict)
    other: int = 0

    def update(self, counts: dict[str, int]) -> None:
        for value, count in counts.items():
            self.counts[value] = self.counts.get(value, 0) + count
        self._prune()

    def merge(self, other: CategoryCounts) -> None:
        self.update(other.counts)
        self.other += other.other

    def _prune(self) -> None:
        if len(self.counts) <= self.capacity:
            return
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        self.counts = dict(ranked[: self.capacity])
        self.other += sum(count for _, count in ranked[self.capacity :])

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.other

    def top(self, n: int) -> list[tuple[str, int]]:
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def to_json(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "counts": dict(self.top(self.capacity)), "other": self.other}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CategoryCounts:
        counts = {str(k): int(v) for k, v in dict(data["counts"]).items()}
        if any(v < 0 for v in counts.values()) or int(data["other"]) < 0:
            raise ValueError("category counts must be non-negative")
        return cls(capacity=int(data["capacity"]), counts=counts, other=int(data["other"]))

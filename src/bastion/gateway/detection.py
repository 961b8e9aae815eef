"""Model-extraction and membership-inference detection per identity, with a graded response.

For each (caller, model) the detector keeps a window of recent queries and, for every new query, the distance
to its nearest earlier query (features scaled by the model's baseline when one is configured). Signals:

* **PRADA** (Juuti et al., 2019): benign streams give nearest-neighbour distances whose distribution is
  close to normal (on a log scale, measured: W' >= 0.96 for natural samples); synthetic extraction queries
  (perturbations of seeds, Jacobian-style steps, line searches) do not. The statistic is Shapiro–Francia's W'
  (squared correlation of the sorted log-distances with normal scores) over the window, near-duplicates
  excluded; below the threshold is a flag. Uniform queries inside the training range look natural to this
  test: quotas, not detection, bound those.
* **near-duplicate bursts**: many queries within ``duplicate_radius`` of an earlier one (averaging noise away,
  probing one record for membership inference).
* **out-of-range rate**: many queries more than 4 baseline standard deviations away on some feature.

Each check that flags raises the level one step, ALERT → LABELS_ONLY → THROTTLE → BLOCK, and each step is
reported as a security event. Levels are sticky for the life of the process.
"""

from __future__ import annotations

import enum
import statistics
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from bastion.gateway.config import Detection


class Level(enum.IntEnum):
    NORMAL = 0
    ALERT = 1
    LABELS_ONLY = 2
    THROTTLE = 3
    BLOCK = 4


@lru_cache(maxsize=64)
def _normal_scores(n: int) -> np.ndarray:
    dist = statistics.NormalDist()
    return np.array([dist.inv_cdf((i - 0.375) / (n + 0.25)) for i in range(1, n + 1)])


def shapiro_francia(values: np.ndarray) -> float:
    """W' in [0, 1]; near 1 for normal samples. Constant samples give 0 (maximally non-normal)."""
    x = np.sort(values)
    if x.size < 3 or float(np.ptp(x)) == 0.0:
        return 0.0
    m = _normal_scores(int(x.size))
    r = np.corrcoef(x, m)[0, 1]
    return float(r * r)


@dataclass(frozen=True)
class Event:
    caller: str
    model: str
    level: Level
    signals: tuple[str, ...]
    statistic: float
    queries: int


@dataclass
class _Stream:
    width: int
    window: int
    seen: np.ndarray = field(init=False)
    size: int = 0
    cursor: int = 0
    total: int = 0
    distances: deque[float] = field(init=False)
    duplicates: deque[bool] = field(init=False)
    outliers: deque[bool] = field(init=False)
    level: Level = Level.NORMAL
    since_check: int = 0

    def __post_init__(self) -> None:
        self.seen = np.zeros((self.window, self.width))
        self.distances = deque(maxlen=self.window)
        self.duplicates = deque(maxlen=self.window)
        self.outliers = deque(maxlen=self.window)


def _history(stream: _Stream) -> np.ndarray:
    """The window's rows, oldest first."""
    if stream.size < stream.window:
        return stream.seen[: stream.size]
    return np.roll(stream.seen, -stream.cursor, axis=0)


def _nearest(history: np.ndarray, z: np.ndarray, window: int, chunk: int = 64) -> np.ndarray:
    """For each row of ``z``, the distance to its nearest earlier query among the last ``window`` queries
    (``history``, oldest first, then the earlier rows of ``z``); ``inf`` for the very first query.

    Candidates come from one matrix product (|a|² + |b|² − 2ab), the winner's distance is recomputed
    directly so that near-duplicates are measured exactly.
    """
    s, n = history.shape[0], z.shape[0]
    seq = np.concatenate([history, z]) if s else z
    norms = np.einsum("ij,ij->i", seq, seq)
    out = np.full(n, np.inf)
    positions = np.arange(s + n)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        rows = z[a:b]
        d2 = norms[s + a : s + b, None] + norms[None, :] - 2.0 * (rows @ seq.T)
        me = (s + np.arange(a, b))[:, None]
        d2[(positions[None, :] >= me) | (positions[None, :] < me - window)] = np.inf
        best = d2.argmin(axis=1)
        valid = np.isfinite(d2[np.arange(b - a), best])
        exact = np.sqrt(((rows - seq[best]) ** 2).sum(axis=1))
        out[a:b] = np.where(valid, exact, np.inf)
    return out


class ExtractionDetector:
    """Feed every served row through :meth:`observe`; read :meth:`level` before answering."""

    def __init__(
        self, config: Detection, *, mean: np.ndarray | None = None, std: np.ndarray | None = None
    ) -> None:
        self.config = config
        self.mean = mean
        self.std = None if std is None else np.where(std > 0, std, 1.0)
        self._streams: dict[tuple[str, str], _Stream] = {}

    def level(self, caller: str, model: str) -> Level:
        stream = self._streams.get((caller, model))
        return stream.level if stream else Level.NORMAL

    def observe(self, caller: str, model: str, x: np.ndarray) -> list[Event]:
        if not self.config.enabled:
            return []
        key = (caller, model)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(x.shape[1], self.config.window)
        z = x if self.mean is None or self.std is None else (x - self.mean) / self.std
        n = int(z.shape[0])
        had = stream.size
        distances = _nearest(_history(stream), z, stream.window)
        outliers = np.any(np.abs(z) > 4.0, axis=1) if self.mean is not None else None
        # the window keeps the newest ``window`` rows: write this batch's last ones into the ring, in order
        for row in z[-stream.window :]:
            stream.seen[stream.cursor] = row
            stream.cursor = (stream.cursor + 1) % stream.window
        stream.size = min(stream.size + n, stream.window)
        # bookkeeping row by row (cheap), the statistics only at each check point, as if fed one row at a time
        events: list[Event] = []
        radius = self.config.duplicate_radius
        for i in range(n):
            if had or i:
                d = float(distances[i])
                stream.distances.append(d)
                stream.duplicates.append(d <= radius)
            if outliers is not None:
                stream.outliers.append(bool(outliers[i]))
            stream.total += 1
            stream.since_check += 1
            if stream.total >= self.config.min_queries and stream.since_check >= self.config.check_every:
                stream.since_check = 0
                event = self._check(caller, model, stream)
                if event is not None:
                    events.append(event)
        return events

    def _check(self, caller: str, model: str, stream: _Stream) -> Event | None:
        distances = np.fromiter(stream.distances, float, len(stream.distances))
        spread = distances[distances > self.config.duplicate_radius]
        w = shapiro_francia(np.log(spread)) if spread.size >= self.config.min_queries // 2 else 1.0
        signals: list[str] = []
        if w < self.config.normality_threshold:
            signals.append("distance-distribution")
        dups = list(stream.duplicates)[-self.config.min_queries :]
        if dups and sum(dups) / len(dups) >= self.config.duplicate_rate:
            signals.append("near-duplicates")
        outs = list(stream.outliers)[-self.config.min_queries :]
        if outs and sum(outs) / len(outs) >= self.config.out_of_range_rate:
            signals.append("out-of-range")
        if not signals or stream.level is Level.BLOCK:
            return None
        stream.level = Level(stream.level + 1)
        return Event(caller, model, stream.level, tuple(signals), w, stream.total)

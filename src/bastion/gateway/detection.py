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
* **out-of-distribution rate** (``ood-queries``), when the model has a training reference (``Reference``, a
  ``bastion-reference/v1`` JSON file written when the model is trained; see ``bastion.gateway.reference``):
  the fraction of the identity's recent rows whose Mahalanobis distance to the training data exceeds the
  training rows' own ``quantile`` (99th percentile: about 1% of natural rows). A one-sided binomial test
  flags a rate significantly above ``ood_tolerance`` times the training rate. Uniform or synthetic queries
  inside the training box fall mostly off a correlated, anisotropic training distribution; queries drawn
  from natural data do not, by design.

Each check that flags raises the level one step, ALERT → LABELS_ONLY → THROTTLE → BLOCK, and each step is
reported as a security event. Levels are sticky for the life of the process, or shared by every replica in
Redis (``SharedLevels``, ``detection.shared``); the query windows are per process.
"""

from __future__ import annotations

import enum
import statistics
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.gateway.config import Detection, Limits
from bastion.gateway.reference import EIGENVALUE_FLOOR as EIGENVALUE_FLOOR
from bastion.gateway.reference import MAX_REFERENCE_BYTES as MAX_REFERENCE_BYTES
from bastion.gateway.reference import MAX_REFERENCE_FEATURES as MAX_REFERENCE_FEATURES
from bastion.gateway.reference import REFERENCE_FORMAT as REFERENCE_FORMAT
from bastion.gateway.reference import Reference as Reference
from bastion.gateway.reference import build_reference as build_reference
from bastion.gateway.reference import critical_count as critical_count
from bastion.gateway.reference import load_reference as load_reference

if TYPE_CHECKING:
    from bastion.gateway.redis_pipe import RedisPipe


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
    """One (caller, model) window. ``ring`` holds every row twice (slots ``k`` and ``k + window``) so that
    ``ring[cursor : cursor + window]`` is always the whole window oldest first, as a view (no copy per query);
    ``halves`` caches each row's half squared norm the same way."""

    width: int
    window: int
    ring: np.ndarray = field(init=False)
    halves: np.ndarray = field(init=False)
    size: int = 0
    cursor: int = 0
    total: int = 0
    distances: deque[float] = field(init=False)
    duplicates: deque[bool] = field(init=False)
    outliers: deque[bool] = field(init=False)
    ood_window: int = 0
    ood: deque[bool] = field(init=False)  # per recent row: beyond the training reference's threshold?
    ood_count: int = 0  # how many of ``ood`` are True
    level: Level = Level.NORMAL
    since_check: int = 0
    pending: list[np.ndarray] = field(default_factory=list)  # rows not yet measured (short of a check point)
    pending_rows: int = 0

    def __post_init__(self) -> None:
        self.ring = np.zeros((2 * self.window, self.width))
        self.halves = np.zeros(2 * self.window)
        self.distances = deque(maxlen=self.window)
        self.duplicates = deque(maxlen=self.window)
        self.outliers = deque(maxlen=self.window)
        self.ood = deque(maxlen=max(self.ood_window, 1))

    def note_ood(self, beyond: bool) -> None:
        if len(self.ood) == self.ood.maxlen:
            self.ood_count -= self.ood[0]
        self.ood.append(beyond)
        self.ood_count += beyond

    def history(self) -> tuple[np.ndarray, np.ndarray]:
        """The window's rows, oldest first, and their half squared norms (views)."""
        if self.size < self.window:
            return self.ring[: self.size], self.halves[: self.size]
        end = self.cursor + self.window
        return self.ring[self.cursor : end], self.halves[self.cursor : end]

    def push(self, z: np.ndarray, halves: np.ndarray) -> None:
        """Keep the newest ``window`` rows: this batch's last ones go into the ring, in order."""
        if z.shape[0] == 1:  # the common case, without fancy indexing
            for slot in (self.cursor, self.cursor + self.window):
                self.ring[slot] = z[0]
                self.halves[slot] = halves[0]
            self.cursor = (self.cursor + 1) % self.window
            self.size = min(self.size + 1, self.window)
            return
        z, halves = z[-self.window :], halves[-self.window :]
        slots = (self.cursor + np.arange(z.shape[0])) % self.window
        self.ring[slots] = z
        self.ring[slots + self.window] = z
        self.halves[slots] = halves
        self.halves[slots + self.window] = halves
        self.cursor = int(slots[-1] + 1) % self.window
        self.size = min(self.size + z.shape[0], self.window)


def _nearest(
    history: np.ndarray,
    history_halves: np.ndarray,
    z: np.ndarray,
    z_halves: np.ndarray,
    window: int,
    chunk: int = 64,
) -> np.ndarray:
    """For each row of ``z``, the distance to its nearest earlier query among the last ``window`` queries
    (``history``, oldest first, then the earlier rows of ``z``); ``inf`` for the very first query.

    Candidates are ranked by |b|²/2 − a·b (the squared distance |a − b|² halved, less the query's own norm,
    which does not change the ranking): one matrix product against cached half norms. The winner's distance
    is then recomputed directly, so near-duplicates are measured exactly.
    """
    s, n = history.shape[0], z.shape[0]
    if n == 1 and s:  # one query against the window (all of it in reach): a matrix-vector product
        best = int((history_halves - history @ z[0]).argmin())
        single: np.ndarray = np.sqrt(((z - history[best]) ** 2).sum(axis=1))
        return single
    out = np.full(n, np.inf)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        rows = z[a:b]
        me = np.arange(a, b)[:, None]  # each row's index in the batch
        blocks = []
        if s:
            score = history_halves[None, :] - rows @ history.T
            if s + b - 1 - window > 0:  # late rows of a big batch push the oldest history out of the window
                score[np.arange(s)[None, :] < s + me - window] = np.inf
            blocks.append(score)
        if b > 1:  # earlier rows of this batch are candidates too
            score = z_halves[None, :b] - rows @ z[:b].T
            j = np.arange(b)[None, :]
            score[(j >= me) | (j < me - window)] = np.inf
            blocks.append(score)
        if not blocks:
            continue
        score = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
        best = score.argmin(axis=1)
        valid = np.isfinite(score[np.arange(b - a), best])
        if s:
            nearest = np.where(
                (best < s)[:, None], history[np.minimum(best, s - 1)], z[np.maximum(best - s, 0)]
            )
        else:
            nearest = z[best]
        exact = np.sqrt(((rows - nearest) ** 2).sum(axis=1))
        out[a:b] = np.where(valid, exact, np.inf)
    return out


class ExtractionDetector:
    """Feed every served row through :meth:`observe`; read :meth:`level` before answering."""

    def __init__(
        self,
        config: Detection,
        *,
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
        reference: Reference | None = None,
    ) -> None:
        """``reference`` (else ``config.reference``, read here) enables the out-of-distribution rate, and
        gives the baseline ``mean``/``std`` when those are not set."""
        if reference is None and config.reference is not None and config.enabled:
            reference = load_reference(config.reference)
        if reference is not None and mean is None and std is None:
            mean, std = reference.mean, reference.std
        self.config = config
        self.reference = reference
        self.ood_rate = 0.0 if reference is None else min(0.5, config.ood_tolerance * reference.exceedance)
        self.mean = mean
        self.std = None if std is None else np.where(std > 0, std, 1.0)
        self._streams: dict[tuple[str, str], _Stream] = {}
        self.shared: SharedLevels | None = None  # set by share_levels when the model's detection is shared

    def level(self, caller: str, model: str) -> Level:
        stream = self._streams.get((caller, model))
        return stream.level if stream else Level.NORMAL

    def observe(self, caller: str, model: str, x: np.ndarray) -> list[Event]:
        """Take the rows of one answered request; the events of any check point they complete.

        A level can change only at a check point, so rows are held (``pending``) until enough have come to
        reach the next one, then measured in one batch: the same distances, flags and events as row by row,
        for a fraction of the per-request cost.
        """
        if not self.config.enabled:
            return []
        stream = self._stream_for(caller, model, int(x.shape[1]))
        stream.pending.append(x)
        stream.pending_rows += int(x.shape[0])
        config = self.config
        due = max(config.min_queries - stream.total, config.check_every - stream.since_check, 1)
        if stream.pending_rows < due:
            return []
        batch = stream.pending[0] if len(stream.pending) == 1 else np.concatenate(stream.pending)
        stream.pending.clear()
        stream.pending_rows = 0
        return self._measure(caller, model, stream, batch)

    def _stream_for(self, caller: str, model: str, width: int) -> _Stream:
        stream = self._streams.get((caller, model))
        if stream is None:
            stream = self._streams[(caller, model)] = _Stream(
                width, self.config.window, ood_window=self.config.ood_window
            )
        return stream

    def _measure(self, caller: str, model: str, stream: _Stream, x: np.ndarray) -> list[Event]:
        """Feed ``x`` into the stream's window and bookkeeping, checking at every check point it passes."""
        z = x if self.mean is None or self.std is None else (x - self.mean) / self.std
        n = int(z.shape[0])
        had = stream.size
        halves = 0.5 * np.einsum("ij,ij->i", z, z)
        distances = _nearest(*stream.history(), z, halves, stream.window).tolist()
        outliers = (np.abs(z).max(axis=1) > 4.0).tolist() if self.mean is not None else None
        beyond = None if self.reference is None else self.reference.beyond(x)
        stream.push(z, halves)
        # bookkeeping row by row (cheap), the statistics only at each check point, as if fed one row at a time
        events: list[Event] = []
        radius = self.config.duplicate_radius
        for i in range(n):
            if had or i:
                d = distances[i]
                stream.distances.append(d)
                stream.duplicates.append(d <= radius)
            if outliers is not None:
                stream.outliers.append(outliers[i])
            if beyond is not None:
                stream.note_ood(beyond[i])
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
        n = len(stream.ood)
        if (
            self.reference is not None
            and n >= self.config.ood_min_rows
            and stream.ood_count >= critical_count(n, self.ood_rate, self.config.ood_alpha)
        ):
            signals.append("ood-queries")
        if not signals or stream.level is Level.BLOCK:
            return None
        stream.level = Level(stream.level + 1)
        return Event(caller, model, stream.level, tuple(signals), w, stream.total)

    # -- levels shared across replicas ---------------------------------------------------------------------
    async def escalate(self, events: list[Event]) -> list[Event]:
        """With shared levels, each local step is one step of the shared level (an escalation on any replica
        holds on all); the events and this process's levels take the shared result."""
        if self.shared is None:
            return events
        out = []
        for e in events:
            level = await self.shared.step(e.caller, e.model)
            stream = self._streams[(e.caller, e.model)]
            stream.level = max(stream.level, level)
            out.append(Event(e.caller, e.model, level, e.signals, e.statistic, e.queries))
        return out


_STEP = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v < 4 then v = v + 1 end
redis.call('SET', KEYS[1], v)
return v
"""


class SharedLevels:
    """Each identity's level per model in Redis (``<prefix>det:<model>:<caller>``, no expiry: delete the key
    to lift a block), shared by every replica. Redis errors raise ``LimiterUnavailable``: fail closed. The
    connection (``redis``) is the gateway's, shared with its other Redis stores."""

    def __init__(self, redis: RedisPipe, *, prefix: str) -> None:
        self.prefix = prefix + "det:"
        self.redis = redis

    def key(self, caller: str, model: str) -> str:
        return f"{self.prefix}{model}:{caller}"  # model names have no ':' so the key is unambiguous

    async def get(self, caller: str, model: str) -> Level:
        return self.parse(await self.redis.command("GET", self.key(caller, model)))

    async def step(self, caller: str, model: str) -> Level:
        return self.parse(await self.redis.script(_STEP, [self.key(caller, model)], []))

    @staticmethod
    def parse(value: Any) -> Level:
        """The level stored at a level key (``None``: never raised, normal)."""
        return Level(min(max(int(value or 0), 0), Level.BLOCK))


def share_levels(detectors: dict[str, ExtractionDetector], limits: Limits, redis: RedisPipe | None) -> None:
    """Attach one Redis store (the limits' prefix, on ``redis``) to every detector configured ``shared``."""
    wanted = [d for d in detectors.values() if d.config.enabled and d.config.shared]
    if not wanted:
        return
    assert redis is not None  # open_redis opens it when a detector is shared
    store = SharedLevels(redis, prefix=limits.redis_prefix)
    for detector in wanted:
        detector.shared = store

"""The extraction detector: natural query streams stay (almost always) quiet, synthetic ones escalate."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.gateway.config import Detection
from bastion.gateway.detection import ExtractionDetector, Level, shapiro_francia
from tests.gateway_helpers import make_data


def test_shapiro_francia_separates_normal_from_skewed_samples() -> None:
    rng = np.random.default_rng(0)
    assert shapiro_francia(rng.normal(size=500)) > 0.99
    assert shapiro_francia(rng.exponential(size=500) ** 3) < 0.7
    assert shapiro_francia(np.ones(50)) == 0.0


def _detector(X: np.ndarray) -> ExtractionDetector:
    return ExtractionDetector(Detection(), mean=X.mean(0), std=X.std(0))


def _feed(det: ExtractionDetector, caller: str, queries: np.ndarray) -> None:
    for i in range(0, len(queries), 5):
        det.observe(caller, "m", queries[i : i + 5])


def test_natural_traffic_never_gets_past_an_alert() -> None:
    X, _ = make_data(seed=1)
    det = _detector(X)
    rng = np.random.default_rng(2)
    for n in range(10):
        _feed(det, f"user{n}", X[rng.permutation(len(X))[:800]])
    assert max(det.level(f"user{n}", "m") for n in range(10)) <= Level.ALERT


def test_perturbation_line_search_and_duplicate_streams_reach_block() -> None:
    X, _ = make_data(seed=1)
    rng = np.random.default_rng(4)
    seeds = X[rng.integers(0, len(X), 20)]
    streams = {
        "perturb": X[rng.integers(0, 30, 400)] + rng.normal(0, 0.01, (400, X.shape[1])),
        "line": np.concatenate(
            [
                a + (b - a) * np.linspace(0, 1, 20)[:, None]
                for a, b in zip(seeds[:10], seeds[10:], strict=True)
            ]
            * 2
        ),
        "duplicates": np.repeat(X[:40], 10, axis=0),
        "far-away": rng.uniform(-40, 40, (400, X.shape[1])),
    }
    det = _detector(X)
    for name, queries in streams.items():
        _feed(det, name, queries)
        assert det.level(name, "m") is Level.BLOCK, name


def test_each_step_is_an_event_and_levels_only_rise() -> None:
    X, _ = make_data(seed=1)
    det = _detector(X)
    events = det.observe("eve", "m", np.repeat(X[:5], 80, axis=0))
    assert [e.level for e in events] == [Level.ALERT, Level.LABELS_ONLY, Level.THROTTLE, Level.BLOCK]
    assert all("near-duplicates" in e.signals for e in events)
    assert det.level("eve", "m") is Level.BLOCK and det.level("other", "m") is Level.NORMAL


def test_nearest_distances_match_brute_force_across_batches_and_window_wrap() -> None:
    """The ring buffer (each row stored twice, cached half norms) gives exactly the nearest earlier query
    among the last ``window`` ones, for single rows and for batches larger than the window."""
    from bastion.gateway.detection import _nearest, _Stream

    rng = np.random.default_rng(7)
    window = 16
    stream = _Stream(3, window)
    seen: list[np.ndarray] = []
    for n in [1, 1, 5, 1, 20, 3, 1, 40, 1, 2, 17]:
        z = rng.normal(size=(n, 3))
        z[n // 2] = z[0]  # an exact duplicate inside the batch (a no-op for a single row)
        halves = 0.5 * np.einsum("ij,ij->i", z, z)
        got = _nearest(*stream.history(), z, halves, window)
        for i, row in enumerate(z):
            earlier = (seen + list(z[:i]))[-window:]
            want = min((float(np.linalg.norm(row - e)) for e in earlier), default=np.inf)
            assert got[i] == pytest.approx(want, abs=1e-9)
        stream.push(z, halves)
        seen += list(z)
        assert np.array_equal(stream.history()[0], np.asarray(seen[-window:]))


def test_held_rows_give_the_events_of_row_by_row_measuring() -> None:
    """Rows wait for the next check point and are measured together: the events (level, signals, statistic,
    row count) are those of measuring every row as it comes, whatever the request sizes."""
    X, _ = make_data(seed=1)
    rng = np.random.default_rng(7)
    seeds = X[rng.choice(len(X), 20)]
    stream = np.vstack([X[:150], np.repeat(seeds, 20, axis=0) + rng.normal(0, 1e-3, (400, X.shape[1]))])

    reference = _detector(X)
    expected = [
        e
        for row in stream
        for e in reference._measure("eve", "m", reference._stream_for("eve", "m", X.shape[1]), row[None])
    ]
    for sizes in ((1,), (3, 1, 7), (64,), (500,)):
        det = _detector(X)
        events, start, k = [], 0, 0
        while start < len(stream):
            n = sizes[k % len(sizes)]
            events += det.observe("eve", "m", stream[start : start + n])
            start, k = start + n, k + 1
        assert [(e.level, e.signals, e.queries) for e in events] == [
            (e.level, e.signals, e.queries) for e in expected
        ]
        assert [e.statistic for e in events] == pytest.approx([e.statistic for e in expected])
    assert expected and expected[-1].level is Level.BLOCK

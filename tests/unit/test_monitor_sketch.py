"""Mergeable summaries: exactness, error bounds, merging, JSON round trips and tamper rejection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bastion.monitor.sketch import CategoryCounts, KLLSketch, Moments


def test_small_sketch_is_exact() -> None:
    values = np.arange(1000, dtype=np.float64)
    sketch = KLLSketch()
    sketch.update(values)
    assert sketch.exact and sketch.rank_error == 0.0
    assert sketch.cdf(np.array([499.0]))[0] == pytest.approx(0.5)
    assert sketch.quantile(np.array([0.0, 1.0])).tolist() == [0.0, 999.0]


def test_rank_error_within_bound_on_a_million_values() -> None:
    rng = np.random.default_rng(3)
    x = rng.lognormal(0, 1, 1_000_000)
    sketch = KLLSketch()
    for part in np.array_split(x, 7):
        sketch.update(part)
    xs = np.sort(x)
    probe = xs[::997]
    truth = np.searchsorted(xs, probe, side="right") / x.size
    assert np.abs(sketch.cdf(probe) - truth).max() <= sketch.rank_error
    assert sum(len(level) for level in sketch.levels) < 4 * sketch.k  # bounded memory


def test_merge_keeps_total_weight_and_accuracy() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 300_000), rng.normal(3, 1, 200_000)
    left, right = KLLSketch(), KLLSketch()
    left.update(a)
    right.update(b)
    left.merge(right)
    assert left.n == 500_000
    assert sum(len(items) * 2**h for h, items in enumerate(left.levels)) == 500_000
    both = np.sort(np.concatenate([a, b]))
    probe = np.array([-1.0, 0.0, 1.5, 3.0, 4.0])
    truth = np.searchsorted(both, probe, side="right") / both.size
    assert np.abs(left.cdf(probe) - truth).max() < 2 * left.rank_error


def test_merging_different_k_is_refused() -> None:
    with pytest.raises(ValueError, match="k=2048 and k=512"):
        KLLSketch().merge(KLLSketch(k=512))


def test_sketch_json_round_trip_and_tamper() -> None:
    sketch = KLLSketch(k=64)
    sketch.update(np.random.default_rng(5).normal(size=10_000))
    data = json.loads(json.dumps(sketch.to_json()))
    again = KLLSketch.from_json(data)
    probe = np.linspace(-3, 3, 13)
    assert np.array_equal(again.cdf(probe), sketch.cdf(probe))
    data["n"] += 1
    with pytest.raises(ValueError, match="weigh"):
        KLLSketch.from_json(data)
    data["n"] -= 1
    data["levels"][0].append(float("nan"))
    with pytest.raises(ValueError):
        KLLSketch.from_json(data)


def test_moments_merge_exactly() -> None:
    rng = np.random.default_rng(6)
    parts = [rng.normal(i, i + 1, 1000 * (i + 1)) for i in range(4)]
    merged = Moments()
    for part in parts:
        piece = Moments()
        piece.update(part)
        merged.merge(piece)
    everything = np.concatenate(parts)
    assert merged.count == everything.size
    assert merged.mean == pytest.approx(everything.mean(), rel=1e-12)
    assert merged.std == pytest.approx(everything.std(ddof=1), rel=1e-12)
    assert (merged.minimum, merged.maximum) == (everything.min(), everything.max())


def test_category_counts_are_bounded() -> None:
    counts = CategoryCounts(capacity=3)
    counts.update({"a": 10, "b": 5, "c": 4, "d": 1, "e": 1})
    assert counts.counts == {"a": 10, "b": 5, "c": 4}
    assert counts.other == 2
    assert counts.total == 21
    other = CategoryCounts(capacity=3)
    other.update({"d": 30})
    counts.merge(other)
    assert counts.top(1) == [("d", 30)]
    assert counts.total == 51

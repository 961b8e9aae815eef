"""Profiling streams in bounded batches, and a profile built batch by batch is the one-batch profile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from bastion.errors import UsageError
from bastion.monitor import profile_paths
from bastion.monitor.profile import DatasetProfile, profile_batches
from bastion.monitor.sources import BATCH_ROWS, read_batches
from bastion.monitor.synthetic import make_table


def _same(a: DatasetProfile, b: DatasetProfile, *, exact_sketch: bool) -> None:
    assert a.rows == b.rows and list(a.columns) == list(b.columns)
    for name, ca in a.columns.items():
        cb = b.columns[name]
        assert (ca.kind, ca.rows, ca.missing, ca.invalid, ca.integral) == (
            cb.kind, cb.rows, cb.missing, cb.invalid, cb.integral
        )  # fmt: skip
        assert ca.categories == cb.categories
        ma, mb = ca.moments, cb.moments
        assert (ma.count, ma.minimum, ma.maximum) == (mb.count, mb.minimum, mb.maximum)
        assert ma.mean == pytest.approx(mb.mean, rel=1e-12, abs=1e-12)
        assert ma.m2 == pytest.approx(mb.m2, rel=1e-10)
        if exact_sketch:
            assert ca.sketch.exact and cb.sketch.exact
            assert np.array_equal(ca.sketch.items(), cb.sketch.items())
        elif ca.sketch.n:
            p = np.linspace(0.01, 0.99, 99)
            q = ca.sketch.quantile(p)  # a's quantiles must sit at the same ranks in b (ties: a range)
            err = ca.sketch.rank_error + cb.sketch.rank_error
            assert np.all(cb.sketch.cdf(q, strict=True) - err <= p)
            assert np.all(p <= cb.sketch.cdf(q) + err)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_many_batches_give_the_one_batch_profile(tmp_path: Path, fmt: str) -> None:
    table = make_table(2_000, n_numeric=8, n_categorical=3, seed=4)  # small enough for exact sketches
    path = tmp_path / f"data.{fmt}"
    pq.write_table(table, path) if fmt == "parquet" else pacsv.write_csv(table, path)
    one = profile_batches(read_batches(path, batch_rows=10**9, block_bytes=1 << 30))
    many_batches = list(read_batches(path, batch_rows=97, block_bytes=4096))
    assert len(many_batches) > 10
    many = profile_batches(many_batches)
    _same(one, many, exact_sketch=True)
    halves = profile_batches(many_batches[: len(many_batches) // 2])
    halves.merge(profile_batches(many_batches[len(many_batches) // 2 :]))
    _same(one, halves, exact_sketch=True)


def test_many_batches_agree_within_the_sketch_error_at_scale(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    pq.write_table(make_table(60_000, n_numeric=4, n_categorical=1, seed=5), path)
    one = profile_batches(read_batches(path, batch_rows=60_000))
    many = profile_batches(read_batches(path, batch_rows=1_000))
    assert not one.columns["num_00"].sketch.exact  # the sketch compacted: agreement is within its error
    _same(one, many, exact_sketch=False)


def test_parquet_is_read_in_bounded_batches_not_whole_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "one-row-group.parquet"
    rows = 3 * BATCH_ROWS + 5
    rng = np.random.default_rng(0)
    pq.write_table(pa.table({f"x{i}": rng.normal(size=rows) for i in range(4)}), path, row_group_size=rows)
    assert pq.ParquetFile(path).metadata.num_row_groups == 1
    sizes = [b.num_rows for b in read_batches(path)]
    assert max(sizes) <= BATCH_ROWS and sum(sizes) == rows
    assert all(b.num_rows <= 1_000 for b in read_batches(path, batch_rows=1_000))


def test_parquet_memory_does_not_grow_with_row_groups(tmp_path: Path) -> None:
    """Arrow's pre-buffering kept every row group read so far (1.3 GB at 5M rows); streaming does not."""
    path = tmp_path / "groups.parquet"
    rng = np.random.default_rng(1)
    groups, rows = 16, 100_000
    with pq.ParquetWriter(path, pa.schema([(f"x{i}", pa.float64()) for i in range(4)])) as writer:
        for _ in range(groups):
            writer.write_table(pa.table({f"x{i}": rng.normal(size=rows) for i in range(4)}))
    data_bytes = groups * rows * 4 * 8
    start = pa.total_allocated_bytes()
    held = []
    for batch in read_batches(path, batch_rows=8_192):
        held.append(pa.total_allocated_bytes() - start)
        del batch
    early = max(held[: len(held) // 4])
    assert max(held) <= 1.25 * early + (1 << 20), f"held {early} bytes early, {max(held)} at the end"
    assert max(held) < data_bytes / 3, f"{max(held)} bytes held while streaming {data_bytes} bytes"


def test_csv_and_jsonl_batches_are_bounded_by_the_block_size(tmp_path: Path) -> None:
    csv_path = tmp_path / "d.csv"
    pacsv.write_csv(make_table(5_000, n_numeric=3, n_categorical=1, seed=6), csv_path)
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(f'{{"a": {i}, "b": "x{i % 3}"}}\n' for i in range(5_000)))
    for path in (csv_path, jsonl):
        batches = list(read_batches(path, block_bytes=16_384))
        assert len(batches) > 5 and sum(b.num_rows for b in batches) == 5_000
        assert max(b.nbytes for b in batches) < 4 * 16_384


def test_columns_projection_and_exclusion(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pacsv.write_csv(make_table(300, n_numeric=3, n_categorical=1, seed=7), path)
    assert {tuple(b.schema.names) for b in read_batches(path, columns={"num_01", "nope"})} == {("num_01",)}
    assert "num_01" not in profile_paths([path], exclude={"num_01"}).columns


def test_batch_sizes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        list(read_batches(tmp_path, batch_rows=0))

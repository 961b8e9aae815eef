"""Token buckets and quotas (in process): all-or-nothing charges, refill, retry-after, daily quotas."""

from __future__ import annotations

import asyncio

from bastion.gateway.config import Bucket
from bastion.gateway.limits import Charge, MemoryLimiter, Quota


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_buckets_refill_and_say_when_to_retry() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock=clock, wall=clock)
    bucket = Bucket(capacity=10, per_second=2)

    def take(cost: float) -> tuple[bool, float]:
        d = asyncio.run(limiter.charge([Charge("k", bucket, cost)]))
        return d.allowed, d.retry_after

    assert take(8) == (True, 0.0)
    allowed, wait = take(4)
    assert not allowed and wait == 1.0  # 2 tokens left, 2 more at 2/s
    clock.now += 1.0
    assert take(4)[0]
    assert take(11)[1] == 5.0  # more than the capacity: wait a full refill, it will still not fit


def test_a_charge_refused_by_one_bucket_drains_none() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock=clock, wall=clock)
    big, small = Bucket(capacity=100, per_second=1), Bucket(capacity=5, per_second=1)
    refused = asyncio.run(limiter.charge([Charge("big", big, 10), Charge("small", small, 10)]))
    assert not refused.allowed
    assert asyncio.run(limiter.charge([Charge("big", big, 100)])).allowed  # untouched


def test_daily_quota_counts_rows_and_resets() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock=clock, wall=clock)
    bucket = Bucket(capacity=1e9, per_second=1e9)
    assert asyncio.run(limiter.charge([Charge("b", bucket, 1)], Quota("q", 100, 60))).allowed
    denied = asyncio.run(limiter.charge([Charge("b", bucket, 1)], Quota("q", 100, 60)))
    assert not denied.allowed and denied.reason == "daily quota" and denied.retry_after == 86_400
    clock.now += 86_400
    assert asyncio.run(limiter.charge([Charge("b", bucket, 1)], Quota("q", 100, 60))).allowed


def test_dry_run_changes_nothing() -> None:
    limiter = MemoryLimiter()
    bucket = Bucket(capacity=1, per_second=0.001)
    for _ in range(3):
        assert asyncio.run(limiter.charge([Charge("k", bucket, 1)], dry_run=True)).allowed
    assert asyncio.run(limiter.charge([Charge("k", bucket, 1)])).allowed
    assert not asyncio.run(limiter.charge([Charge("k", bucket, 1)], dry_run=True)).allowed

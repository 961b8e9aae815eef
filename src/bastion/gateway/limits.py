"""Rate limits and quotas: token buckets and daily row quotas, in process or in Redis.

Several buckets are charged together or not at all (a request refused by the per-model bucket does not drain
the per-identity one). In Redis one Lua script does the check-and-charge atomically using the server's clock,
so limits hold across replicas. When Redis cannot answer, ``LimiterUnavailable`` is raised and the gateway
refuses the request: it fails closed, never open.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bastion.gateway.config import Bucket, LimitBackend, Limits
from bastion.gateway.errors import LimiterUnavailable

if TYPE_CHECKING:
    from bastion.gateway.redis_pipe import RedisPipe

DAY_S = 86_400


@dataclass(frozen=True)
class Charge:
    """Take ``cost`` tokens from bucket ``key``, refused unless it holds ``need`` (default: ``cost``); a
    check that takes nothing has ``cost`` 0 and a ``need``."""

    key: str
    bucket: Bucket
    cost: float
    need: float | None = None

    @property
    def required(self) -> float:
        return self.cost if self.need is None else self.need


@dataclass(frozen=True)
class Quota:
    key: str
    limit: int
    cost: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0
    reason: str = ""
    refused_by: int = -1  # the index of the first charge that refused (-1: none, or the quota)

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))


ALLOWED = Decision(True)  # immutable: every allowed charge returns this one


class Limiter(Protocol):
    async def charge(
        self, charges: Sequence[Charge], quota: Quota | None = None, *, dry_run: bool = False
    ) -> Decision: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def _wait(tokens: float, bucket: Bucket, cost: float) -> float:
    if cost > bucket.capacity:
        return bucket.capacity / bucket.per_second
    return (cost - tokens) / bucket.per_second


class MemoryLimiter:
    """Per-process buckets (one replica). The lock makes it safe from threads as well as tasks."""

    def __init__(self, clock: Any = time.monotonic, wall: Any = time.time) -> None:
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._quotas: dict[str, tuple[int, float]] = {}

    async def charge(
        self, charges: Sequence[Charge], quota: Quota | None = None, *, dry_run: bool = False
    ) -> Decision:
        with self._lock:
            now = self._clock()
            levels: list[float] = []
            wait, refused_by = 0.0, -1
            for i, c in enumerate(charges):
                tokens, stamp = self._buckets.get(c.key, (c.bucket.capacity, now))
                tokens = min(c.bucket.capacity, tokens + max(0.0, now - stamp) * c.bucket.per_second)
                levels.append(tokens)
                if tokens < c.required:
                    wait = max(wait, _wait(tokens, c.bucket, c.required))
                    refused_by = i if refused_by < 0 else refused_by
            if wait > 0:
                return Decision(False, wait, "rate limit", refused_by)
            if quota is not None:
                used, resets = self._quotas.get(quota.key, (0, self._wall() + DAY_S))
                if self._wall() >= resets:
                    used, resets = 0, self._wall() + DAY_S
                if used + quota.cost > quota.limit:
                    return Decision(False, resets - self._wall(), "daily quota")
                if not dry_run:
                    self._quotas[quota.key] = (used + quota.cost, resets)
            if not dry_run:
                for c, tokens in zip(charges, levels, strict=True):
                    if c.cost:  # a check takes nothing: nothing to store
                        self._buckets[c.key] = (tokens - c.cost, now)
            return ALLOWED

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


# KEYS: bucket keys..., then the quota key (if ARGV[2] == "1").
# ARGV: n buckets, has quota, dry run, then (capacity, rate, cost, need) per bucket,
#       then (limit, cost) for the quota.
# Returns {allowed, wait, reason, index of the first bucket that refused (0-based, -1: none)}.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = tonumber(ARGV[1])
local has_quota = ARGV[2] == '1'
local dry = ARGV[3] == '1'
local wait = 0
local first = -1
local levels = {}
for i = 1, n do
  local cap = tonumber(ARGV[4 * i])
  local rate = tonumber(ARGV[1 + 4 * i])
  local need = tonumber(ARGV[3 + 4 * i])
  local s = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens = tonumber(s[1]) or cap
  local ts = tonumber(s[2]) or now
  tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
  levels[i] = tokens
  if tokens < need then
    local w
    if need > cap then w = cap / rate else w = (need - tokens) / rate end
    if w > wait then wait = w end
    if first < 0 then first = i - 1 end
  end
end
if wait > 0 then return {0, tostring(wait), 'rate limit', first} end
if has_quota then
  local qkey = KEYS[n + 1]
  local limit = tonumber(ARGV[4 + 4 * n])
  local qcost = tonumber(ARGV[5 + 4 * n])
  local used = tonumber(redis.call('GET', qkey) or '0')
  if used + qcost > limit then
    local ttl = redis.call('TTL', qkey)
    if ttl < 0 then ttl = 86400 end
    return {0, tostring(ttl), 'daily quota', -1}
  end
  if not dry then
    if redis.call('INCRBY', qkey, qcost) == qcost then redis.call('EXPIRE', qkey, 86400) end
  end
end
if not dry then
  for i = 1, n do
    local cost = tonumber(ARGV[2 + 4 * i])
    if cost > 0 then
      local cap = tonumber(ARGV[4 * i])
      local rate = tonumber(ARGV[1 + 4 * i])
      redis.call('HSET', KEYS[i], 'tokens', tostring(levels[i] - cost), 'ts', tostring(now))
      redis.call('PEXPIRE', KEYS[i], math.ceil(cap / rate * 1000) + 1000)
    end
  end
end
return {1, '0', '', -1}
"""


class RedisLimiter:
    """Buckets shared by every replica through one Redis server (``redis``, shared with the gateway's other
    Redis stores and closed by its owner); fails closed."""

    def __init__(self, redis: RedisPipe, *, prefix: str) -> None:
        self.prefix = prefix
        self.redis = redis

    async def charge(
        self, charges: Sequence[Charge], quota: Quota | None = None, *, dry_run: bool = False
    ) -> Decision:
        keys = [self.prefix + c.key for c in charges]
        args: list[str | int | float] = [len(charges), "1" if quota else "0", "1" if dry_run else "0"]
        for c in charges:
            args += [repr(c.bucket.capacity), repr(c.bucket.per_second), repr(c.cost), repr(c.required)]
        if quota is not None:
            keys.append(self.prefix + quota.key)
            args += [quota.limit, quota.cost]
        allowed, wait, reason, refused_by = await self.redis.script(_LUA, keys, args)
        if int(allowed):
            return ALLOWED
        text = reason.decode() if isinstance(reason, bytes) else str(reason)
        return Decision(False, float(wait), text, int(refused_by))

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.command("PING"))
        except LimiterUnavailable:
            return False

    async def close(self) -> None:
        return None  # the connection is the gateway's (Gateway.close)


def make_limiter(limits: Limits, redis: RedisPipe | None) -> Limiter:
    if limits.backend is LimitBackend.REDIS:
        assert redis is not None  # open_redis opens it for this backend
        return RedisLimiter(redis, prefix=limits.redis_prefix)
    return MemoryLimiter()


class ConcurrencyGate:
    """At most ``limit`` requests in flight per identity (per replica)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active: dict[str, int] = {}

    def enter(self, key: str) -> bool:
        count = self._active.get(key, 0)
        if count >= self.limit:
            return False
        self._active[key] = count + 1
        return True

    def leave(self, key: str) -> None:
        count = self._active.get(key, 1) - 1
        if count <= 0:
            self._active.pop(key, None)
        else:
            self._active[key] = count

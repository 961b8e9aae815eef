"""RedisPipe against the real server: the commands of one event-loop turn share one round trip, each caller
gets its own reply, scripts survive the server forgetting them, and every failure fails closed; and the
limiter's script on it behaves as the in-process limiter does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.gateway.errors import LimiterUnavailable
from bastion.gateway.model_state import NORMAL
from bastion.gateway.redis_pipe import RedisPipe
from tests.conftest import REDIS_URL
from tests.gateway_helpers import base_config, free_port, make_data, make_setup

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("redis_server")]
URL = REDIS_URL
COUNTER = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture()
async def pipe(redis_prefix: str) -> AsyncIterator[tuple[RedisPipe, str]]:
    redis = RedisPipe(URL, timeout_s=1.0, store="test store")
    yield redis, redis_prefix
    await redis.close()


async def test_one_turn_is_one_round_trip_and_each_caller_gets_its_reply(pipe: tuple[RedisPipe, str]) -> None:
    redis, prefix = pipe
    await asyncio.gather(*(redis.command("SET", f"{prefix}{i}", f"value-{i}") for i in range(20)))
    before = redis.round_trips
    replies = await asyncio.gather(
        *(redis.command("GET", f"{prefix}{i}") for i in range(20)),
        *(redis.script(COUNTER, [f"{prefix}count"], [i]) for i in range(1, 5)),
    )
    assert redis.round_trips == before + 1
    assert replies[:20] == [f"value-{i}".encode() for i in range(20)]
    assert sorted(replies[20:]) == [1, 3, 6, 10]  # each script ran atomically, in order
    assert await redis.command("GET", prefix + "missing") is None
    assert await redis.command("PING") is True
    old = await redis.command("SET", prefix + "0", "new", "GET", get=True)
    assert old == b"value-0" and await redis.command("GET", prefix + "0") == b"new"


async def test_a_script_the_server_forgot_is_loaded_again(pipe: tuple[RedisPipe, str]) -> None:
    redis, prefix = pipe
    assert await redis.script(COUNTER, [prefix + "n"], [2]) == 2
    await redis.client.script_flush()
    replies = await asyncio.gather(*(redis.script(COUNTER, [prefix + "n"], [1]) for _ in range(3)))
    assert sorted(replies) == [3, 4, 5]


async def test_an_error_reply_fails_its_caller_alone(pipe: tuple[RedisPipe, str]) -> None:
    redis, prefix = pipe
    await redis.command("HSET", prefix + "hash", "field", "1")
    ok, wrong = await asyncio.gather(
        redis.command("SET", prefix + "plain", "1"),
        redis.command("GET", prefix + "hash"),  # WRONGTYPE
        return_exceptions=True,
    )
    assert ok is True
    assert isinstance(wrong, LimiterUnavailable) and "test store answered an error" in wrong.message


async def test_an_unreachable_server_fails_every_caller_closed() -> None:
    redis = RedisPipe(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2, store="test store")
    try:
        results = await asyncio.gather(
            redis.command("GET", "a"), redis.script(COUNTER, ["b"], [1]), return_exceptions=True
        )
    finally:
        await redis.close()
    assert all(isinstance(r, LimiterUnavailable) and "test store unreachable" in r.message for r in results)


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_check_takes_nothing_and_a_refusal_names_its_bucket(backend: str, redis_prefix: str) -> None:
    """Both limiters alike: ``need`` without ``cost`` only looks; ``refused_by`` is the first bucket that
    refused; a refused charge drains no bucket."""
    from bastion.gateway.config import Bucket
    from bastion.gateway.limits import Charge, MemoryLimiter, RedisLimiter

    redis = RedisPipe(URL, timeout_s=1.0, store="test store")
    limiter = MemoryLimiter() if backend == "memory" else RedisLimiter(redis, prefix=redis_prefix)
    wide, one = Bucket(capacity=100, per_second=0.001), Bucket(capacity=1, per_second=0.001)
    try:
        look = Charge("one", one, 0.0, need=1.0)
        for _ in range(3):
            assert (await limiter.charge([Charge("wide", wide, 1.0), look])).allowed  # looking is free
        assert (await limiter.charge([Charge("one", one, 1.0)])).allowed  # now it is empty
        refused = await limiter.charge([Charge("wide", wide, 1.0), look])
        assert not refused.allowed and refused.refused_by == 1 and refused.reason == "rate limit"
        assert refused.retry_after > 0
        both = await limiter.charge([Charge("wide", wide, 500.0), look])
        assert both.refused_by == 0  # the first refusing bucket
        assert (await limiter.charge([Charge("wide", wide, 97.0)])).allowed  # 3 taken, none by refusals
        assert not (await limiter.charge([Charge("wide", wide, 1.0)])).allowed
    finally:
        await redis.close()


async def test_the_models_state_and_the_callers_level_are_one_read(tmp_path: Path, redis_prefix: str) -> None:
    """With limits and shared levels in Redis, a prediction reads both in one MGET on one connection."""
    from bastion.gateway.detection import Level
    from bastion.gateway.model_state import ModelState, StateRecord
    from bastion.gateway.runtime import Gateway

    prefix = redis_prefix
    doc = base_config(tmp_path, make_data()[0])
    doc["models"][0]["detection"]["shared"] = True
    limits = {"backend": "redis", "redis_url": URL, "redis_prefix": prefix}
    setup = make_setup(tmp_path, limits=limits, models=doc["models"])
    gw = Gateway(setup.config)
    assert gw.redis is not None
    try:
        assert await gw.standing("clf", "alice") == (NORMAL, Level.NORMAL)
        await gw.set_model_state("clf", StateRecord(ModelState.THROTTLE, "drift", 5.0, "carol", "now"))
        await gw.redis.command("SET", f"{prefix}det:clf:alice", "3")
        before = gw.redis.round_trips
        state, level = await gw.standing("clf", "alice")
        assert gw.redis.round_trips == before + 1
        assert state.state is ModelState.THROTTLE and state.factor == 5.0 and level is Level.THROTTLE
        assert (await gw.standing("clf", "bob"))[1] is Level.NORMAL
    finally:
        await gw.close()


async def test_an_unexpected_failure_fails_every_caller_closed_instead_of_leaving_them_waiting(
    pipe: tuple[RedisPipe, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only Redis errors: whatever breaks while a pipeline is sent or its replies read (a client
    bug, a reply that does not parse) must answer every waiting caller, or their requests hang."""
    redis, prefix = pipe
    real_pipeline = redis.client.pipeline

    def broken_pipeline(*args: object, **kwargs: object) -> object:
        pipeline = real_pipeline(*args, **kwargs)  # type: ignore[arg-type]

        async def execute(*_: object, **__: object) -> list[object]:
            raise RuntimeError("a reply that does not parse")

        pipeline.execute = execute  # type: ignore[method-assign]
        return pipeline

    monkeypatch.setattr(redis.client, "pipeline", broken_pipeline)
    async with asyncio.timeout(5):
        get, script = redis.command("GET", prefix + "a"), redis.script(COUNTER, [prefix + "b"], [1])
        results = await asyncio.gather(get, script, return_exceptions=True)
    for result in results:
        assert isinstance(result, LimiterUnavailable) and "test store failed" in result.message, results

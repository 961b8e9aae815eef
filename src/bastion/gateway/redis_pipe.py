"""Coalesced Redis commands: what a store asks Redis in one turn of the event loop goes as one pipeline.

With several replicas, every request asks Redis a few things (its rate-limit buckets, the model's state, the
caller's shared detection level), and a lone command through redis-py costs far more CPU than the command
itself (a connection checkout, a send, a wake-up on the answer, a timeout scope). Concurrent requests move
through the gateway's steps together, so the commands of one turn are many; ``RedisPipe`` queues them and
sends them at the end of the turn as one pipeline (no transaction: each command is independent, and each
Lua script is atomic on its own), then hands each caller its own answer. A command alone goes at the end of
its turn: nothing waits for company.

Fails closed, as the stores must: a connection error, a timeout, an error reply or anything else that breaks
while a pipeline is sent makes the awaiting callers raise ``LimiterUnavailable`` (the gateway then refuses
their requests); none is left waiting. Scripts are sent by SHA and loaded
again if the server has lost them (a restart).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Sequence
from typing import Any

from bastion.gateway.errors import LimiterUnavailable

Arg = str | bytes | int | float


class RedisPipe:
    """One Redis client whose commands are coalesced per event-loop turn; ``store`` names it in errors."""

    def __init__(self, url: str, *, timeout_s: float, store: str) -> None:
        import redis.asyncio as aredis

        self.client = aredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        self.store = store
        self._timeout = timeout_s * 4
        self._queue: list[_Pending] = []
        self._flushing: set[asyncio.Task[None]] = set()
        self._loaded: set[str] = set()  # SHAs of the scripts this client has loaded
        self.round_trips = 0  # pipelines sent (and lone commands), for tests and benchmarks

    async def command(self, *args: Arg, **options: Any) -> Any:
        """The reply to one command (``"GET", key``), as redis-py parses it (``options`` go to its parser,
        e.g. ``get=True`` for ``SET ... GET``)."""
        return await self._enqueue(_Pending(args, options, None))

    async def script(self, text: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """The reply of Lua script ``text`` run on ``keys`` and ``args``."""
        return await self._enqueue(_Pending(("EVALSHA", _sha(text), len(keys), *keys, *args), {}, text))

    def _enqueue(self, pending: _Pending) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append(pending)
        pending.future = loop.create_future()
        return pending.future

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        task = asyncio.get_running_loop().create_task(self._send(queue))
        self._flushing.add(task)  # a reference until it is done (the loop keeps only weak ones)
        task.add_done_callback(self._flushing.discard)

    async def _send(self, queue: list[_Pending]) -> None:
        from redis.exceptions import NoScriptError, RedisError

        # scripts not yet known to be on the server are loaded first, in the same pipeline
        loads = list(
            dict.fromkeys(p.script for p in queue if p.script and _sha(p.script) not in self._loaded)
        )
        try:
            async with asyncio.timeout(self._timeout):
                pipe = self.client.pipeline(transaction=False)
                for text in loads:
                    pipe.execute_command("SCRIPT LOAD", text)
                for pending in queue:
                    pipe.execute_command(*pending.args, **pending.options)
                self.round_trips += 1
                replies = await pipe.execute(raise_on_error=False)
                self._loaded.update(
                    _sha(t) for t, r in zip(loads, replies, strict=False) if isinstance(r, str)
                )
                for pending, reply in zip(queue, replies[len(loads) :], strict=True):
                    if isinstance(reply, NoScriptError) and pending.script is not None:
                        # the server lost it since it was loaded (a restart): load it again, run it alone
                        self.round_trips += 2
                        await self.client.script_load(pending.script)
                        reply = await self.client.execute_command(*pending.args)  # type: ignore[no-untyped-call]
                    pending.settle(reply, self.store)
        except (RedisError, OSError, TimeoutError) as exc:
            self._fail(queue, LimiterUnavailable(f"{self.store} unreachable ({type(exc).__name__})"))
        except Exception as exc:  # noqa: BLE001 - a task's boundary: every caller waits on a future here
            self._fail(queue, LimiterUnavailable(f"{self.store} failed ({type(exc).__name__})"))

    @staticmethod
    def _fail(queue: list[_Pending], failure: LimiterUnavailable) -> None:
        """Fail closed: every caller not answered yet gets ``failure`` (none is left waiting)."""
        for pending in queue:
            if not pending.future.done():
                pending.future.set_exception(failure)

    async def close(self) -> None:
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
        await self.client.aclose()


class _Pending:
    """One queued command: its arguments, the parser's options, the script text (to reload) and the
    future its caller awaits."""

    __slots__ = ("args", "future", "options", "script")

    def __init__(self, args: tuple[Arg, ...], options: dict[str, Any], script: str | None) -> None:
        self.args, self.options, self.script = args, options, script
        self.future: asyncio.Future[Any]

    def settle(self, reply: Any, store: str) -> None:
        if self.future.done():  # its request was cancelled (the client went away)
            return
        if isinstance(reply, Exception):
            name = type(reply).__name__
            self.future.set_exception(LimiterUnavailable(f"{store} answered an error ({name})"))
        else:
            self.future.set_result(reply)


@functools.lru_cache(maxsize=64)
def _sha(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

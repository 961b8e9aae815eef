"""A model's runtime state at the gateway: ``normal``, ``throttle`` or ``block``.

The state is the enforcement end of the monitor's alarms (``PUT /admin/models/{name}/state``, the monitor's
``gateway`` action): ``block`` suspends predictions on the model (503 ``model-suspended``), ``throttle`` makes
every prediction row cost ``factor`` tokens and hardens answers to labels only. It lives in the process
(``MemoryStates``) or, with ``limits.backend: redis``, in Redis (``RedisStates``, key
``<prefix>state:<model>``) so that every replica honours it. A Redis error raises ``LimiterUnavailable``:
the gateway then refuses the request, as the limiter does (fail closed).
"""

from __future__ import annotations

import enum
import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bastion.gateway.errors import LimiterUnavailable

if TYPE_CHECKING:
    from bastion.gateway.config import Limits
    from bastion.gateway.redis_pipe import RedisPipe

DEFAULT_FACTOR = 10.0
MAX_FACTOR = 1000.0
MAX_REASON = 200


class ModelState(enum.Enum):
    NORMAL = "normal"
    THROTTLE = "throttle"
    BLOCK = "block"


@dataclass(frozen=True)
class StateRecord:
    """A model's state; ``factor`` is the row cost under ``throttle`` (1 otherwise)."""

    state: ModelState = ModelState.NORMAL
    reason: str = ""
    factor: float = 1.0
    by: str = ""
    at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "reason": self.reason,
            "factor": self.factor,
            "by": self.by,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, data: Any) -> StateRecord:
        """A stored record; anything unreadable is a store failure (fail closed), never ``normal``."""
        try:
            return cls(
                ModelState(data["state"]),
                str(data["reason"]),
                float(data["factor"]),
                str(data["by"]),
                str(data["at"]),
            )
        except (KeyError, TypeError, ValueError):
            raise LimiterUnavailable("model-state store holds an unreadable record") from None


NORMAL = StateRecord()


class StateStore(Protocol):
    async def get(self, model: str) -> StateRecord: ...

    async def swap(self, model: str, record: StateRecord) -> StateRecord:
        """Set ``model``'s state to ``record``; the state it replaces."""
        ...

    async def close(self) -> None: ...


class MemoryStates:
    """States of one process (one replica)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, StateRecord] = {}

    async def get(self, model: str) -> StateRecord:
        return self._states.get(model, NORMAL)

    async def swap(self, model: str, record: StateRecord) -> StateRecord:
        with self._lock:
            previous = self._states.get(model, NORMAL)
            self._states[model] = record
        return previous

    async def close(self) -> None:
        return None


class RedisStates:
    """States shared by every replica through Redis (no expiry); errors raise ``LimiterUnavailable``. The
    connection (``redis``) is the gateway's, shared with its other Redis stores."""

    def __init__(self, redis: RedisPipe, *, prefix: str) -> None:
        self.prefix = prefix + "state:"
        self.redis = redis

    def key(self, model: str) -> str:
        return self.prefix + model

    async def get(self, model: str) -> StateRecord:
        return self.parse(await self.redis.command("GET", self.key(model)))

    async def swap(self, model: str, record: StateRecord) -> StateRecord:
        text = json.dumps(record.to_json(), sort_keys=True)
        return self.parse(await self.redis.command("SET", self.key(model), text, "GET", get=True))

    @staticmethod
    def parse(value: Any) -> StateRecord:
        """The record stored at a state key (``None``: never set, normal)."""
        if value is None:
            return NORMAL
        try:
            data = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            raise LimiterUnavailable("model-state store holds an unreadable record") from None
        return StateRecord.from_json(data)

    async def close(self) -> None:
        return None  # the connection is the gateway's (Gateway.close)


def make_states(limits: Limits, redis: RedisPipe | None) -> StateStore:
    from bastion.gateway.config import LimitBackend  # here: the monitor imports this module's vocabulary

    if limits.backend is LimitBackend.REDIS:
        assert redis is not None  # open_redis opens it for this backend
        return RedisStates(redis, prefix=limits.redis_prefix)
    return MemoryStates()


_CHANGE_KEYS = frozenset({"state", "reason", "factor"})


def parse_change(body: Any, *, by: str, at: str) -> StateRecord:
    """The state a ``PUT /admin/models/{name}/state`` body asks for, validated strictly (422 otherwise):
    ``{"state": "normal" | "throttle" | "block", "reason": "...", "factor": 1..1000 (throttle only)}``."""
    from bastion.gateway.errors import HttpError

    if not isinstance(body, dict) or body.keys() - _CHANGE_KEYS or not {"state", "reason"} <= body.keys():
        raise HttpError(422, "bad-request-body", 'expected {"state": ..., "reason": ..., "factor": optional}')
    states = [s.value for s in ModelState]
    if body["state"] not in states:
        raise HttpError(422, "bad-state", f"state must be one of {states}")
    state = ModelState(body["state"])
    reason = body["reason"]
    if (
        not isinstance(reason, str)
        or not reason.strip()
        or len(reason) > MAX_REASON
        or not reason.isprintable()
    ):
        raise HttpError(422, "bad-reason", f"reason must be 1..{MAX_REASON} printable characters")
    factor = body.get("factor")
    if factor is not None and state is not ModelState.THROTTLE:
        raise HttpError(422, "bad-factor", "factor is for the throttle state")
    if state is ModelState.THROTTLE:
        factor = DEFAULT_FACTOR if factor is None else factor
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not 1 <= factor <= MAX_FACTOR:
            raise HttpError(422, "bad-factor", f"factor must be a number from 1 to {MAX_FACTOR:g}")
    return StateRecord(state, reason.strip(), float(factor or 1.0), by, at)

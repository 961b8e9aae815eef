"""A model's state in Redis (``limits.backend: redis``): two gateway instances (two replicas) against the real
server honour one state, and a state that cannot be read fails closed."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from bastion.gateway.app import build_app
from tests.gateway_helpers import bearer, client
from tests.unit.test_gateway_model_state import setup_with_operator

pytestmark = pytest.mark.anyio
STATE = "/admin/models/clf/state"


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


def _limits(url: str, prefix: str) -> dict[str, Any]:
    return {"backend": "redis", "redis_url": url, "redis_prefix": prefix}


async def test_two_replicas_honour_one_model_state(tmp_path: Path, redis_prefix: str) -> None:
    prefix = redis_prefix
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    setup_a = setup_with_operator(tmp_path / "a", limits=_limits("redis://127.0.0.1:6379/0", prefix))
    setup_b = setup_with_operator(tmp_path / "b", limits=_limits("redis://127.0.0.1:6379/0", prefix))
    (tmp_path / "b" / "keys.json").write_text((tmp_path / "a" / "keys.json").read_text())
    olga, alice = bearer(setup_a.keys["olga"]), bearer(setup_a.keys["alice"])
    rows = {"instances": setup_a.X[:2].tolist()}
    app_a, app_b = build_app(setup_a.config), build_app(setup_b.config)
    try:
        async with client(app_a) as a, client(app_b) as b:
            assert (await b.post("/v1/models/clf:predict", json=rows, headers=alice)).status_code == 200
            blocked = await a.put(STATE, json={"state": "block", "reason": "alarm x: drift"}, headers=olga)
            assert blocked.status_code == 200
            refused = await b.post("/v1/models/clf:predict", json=rows, headers=alice)
            assert refused.status_code == 503 and refused.json()["error"] == "model-suspended"
            assert (await b.get(STATE, headers=olga)).json()["state"] == "block"

            throttled = await b.put(
                STATE, json={"state": "throttle", "reason": "alarm x: drift"}, headers=olga
            )
            assert throttled.json()["previous"] == "block"  # the other replica's change
            labels = (await a.post("/v1/models/clf:predict", json=rows, headers=alice)).json()["predictions"]
            assert all(isinstance(v, int) for v in labels)

            await a.put(STATE, json={"state": "normal", "reason": "alarm x: OK"}, headers=olga)
            served = await b.post("/v1/models/clf:predict", json=rows, headers=alice)
            assert served.status_code == 200 and isinstance(served.json()["predictions"][0], list)
    finally:
        await app_a.gw.close()
        await app_b.gw.close()
    assert [e["to"] for e in setup_a.events("model-state")] == ["block", "normal"]
    assert [e["to"] for e in setup_b.events("model-state")] == ["throttle"]


async def test_an_unreadable_state_fails_closed(tmp_path: Path, redis_prefix: str) -> None:
    prefix = redis_prefix
    setup = setup_with_operator(tmp_path, limits=_limits("redis://127.0.0.1:6379/0", prefix))
    import redis

    r = redis.Redis(host="127.0.0.1", port=6379)
    r.set(prefix + "state:clf", b"not json")
    app = build_app(setup.config)
    try:
        async with client(app) as c:
            rows = {"instances": setup.X[:1].tolist()}
            refused = await c.post("/v1/models/clf:predict", json=rows, headers=bearer(setup.keys["alice"]))
    finally:
        await app.gw.close()
    assert refused.status_code == 503 and refused.json()["error"] == "limits-unavailable"


async def test_unreachable_state_store_fails_closed(tmp_path: Path) -> None:
    from bastion.gateway.limits import MemoryLimiter
    from bastion.gateway.runtime import Gateway

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        url = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
        setup = setup_with_operator(tmp_path, limits=_limits(url, "bastion-test:"))
        # the limits answer (in process), so only the state store is down
        app = build_app(setup.config, gateway=Gateway(setup.config, limiter=MemoryLimiter()))
        olga, alice = bearer(setup.keys["olga"]), bearer(setup.keys["alice"])
        async with client(app) as c:
            rows = {"instances": setup.X[:1].tolist()}
            predicted = await c.post("/v1/models/clf:predict", json=rows, headers=alice)
            read = await c.get(STATE, headers=olga)
            change = await c.put(STATE, json={"state": "block", "reason": "x"}, headers=olga)
            meta = await c.get("/v1/models/clf", headers=bearer(setup.keys["bob"]))
        await app.gw.close()
    for refused in (predicted, read, change):
        assert refused.status_code == 503 and refused.json()["error"] == "limits-unavailable"
        assert "retry-after" in refused.headers
    assert meta.status_code == 200  # metadata does not depend on the state
    assert not setup.events("model-state")

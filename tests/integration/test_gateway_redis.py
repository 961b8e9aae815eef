"""Limits in Redis: shared by two gateway instances (two replicas) against the real server, and failing
closed when Redis cannot be reached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.gateway.app import build_app
from tests.gateway_helpers import bearer, client, make_setup

pytestmark = pytest.mark.anyio


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


def _limits(url: str, prefix: str) -> dict[str, Any]:
    return {
        "backend": "redis",
        "redis_url": url,
        "redis_prefix": prefix,
        "identity": {"capacity": 10, "per_second": 0.01},
        "identity_model": {"capacity": 10, "per_second": 0.01},
    }


async def test_two_replicas_share_one_budget(tmp_path: Path, redis_prefix: str) -> None:
    prefix = redis_prefix
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    setup_a = make_setup(tmp_path / "a", limits=_limits("redis://127.0.0.1:6379/0", prefix))
    setup_b = make_setup(tmp_path / "b", limits=_limits("redis://127.0.0.1:6379/0", prefix))
    # the same identity's key, valid on both replicas
    (tmp_path / "b" / "keys.json").write_text((tmp_path / "a" / "keys.json").read_text())
    token = setup_a.keys["alice"]
    app_a, app_b = build_app(setup_a.config), build_app(setup_b.config)
    statuses = []
    async with client(app_a) as a, client(app_b) as b:
        for i in range(8):
            replica = a if i % 2 == 0 else b
            rows = setup_a.X[i * 2 : i * 2 + 2].tolist()
            r = await replica.post("/v1/models/clf:predict", json={"instances": rows}, headers=bearer(token))
            statuses.append(r.status_code)
    assert statuses == [200] * 5 + [429] * 3  # 10 rows in all, whichever replica answers
    await app_a.gw.close()
    await app_b.gw.close()


async def test_unreachable_redis_fails_closed(tmp_path: Path) -> None:
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # bound but not listening: connections are refused
        setup = make_setup(tmp_path, limits=_limits(f"redis://127.0.0.1:{dead_port}/0", "bastion-test:"))
        app = build_app(setup.config)
        async with client(app) as c:
            r = await c.post(
                "/v1/models/clf:predict", json={"instances": [[0.0] * 6]}, headers=bearer(setup.keys["alice"])
            )
            ready = await c.get("/readyz")
    assert r.status_code == 503 and r.json()["error"] == "limits-unavailable" and "retry-after" in r.headers
    assert ready.status_code == 503
    assert setup.access()[-1]["status"] == 503 and setup.access()[-1]["decision"] == "deny"
    await app.gw.close()

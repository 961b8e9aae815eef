"""Detection levels shared through Redis (``detection.shared``): an escalation on one replica holds on every
replica, against the real server; an unreachable store refuses (fails closed); in process is the default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.errors import ConfigError
from bastion.gateway.app import build_app
from bastion.gateway.config import parse_config
from bastion.gateway.detection import build_reference
from tests.conftest import REDIS_URL
from tests.gateway_helpers import FEATURES, base_config, bearer, client, free_port, make_data, make_setup

pytestmark = pytest.mark.anyio


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


def _replica(root: Path, url: str, prefix: str) -> Any:
    X, _ = make_data()
    root.mkdir(parents=True, exist_ok=True)
    (root / "clf.reference.json").write_text(json.dumps(build_reference(X)))
    models = base_config(root, X)["models"]
    models[0]["detection"] = {"reference": "clf.reference.json", "shared": True}
    roomy = {"capacity": 100_000, "per_second": 1}
    limits = {"backend": "redis", "redis_url": url, "redis_prefix": prefix, "identity": roomy}
    return make_setup(root, models=models, limits=limits | {"identity_model": roomy})


async def test_an_escalation_on_one_replica_holds_on_the_other(tmp_path: Path, redis_prefix: str) -> None:
    import redis

    prefix = redis_prefix
    a, b = _replica(tmp_path / "a", REDIS_URL, prefix), _replica(tmp_path / "b", REDIS_URL, prefix)
    app_a, app_b = build_app(a.config), build_app(b.config)
    X, _ = make_data()
    rng = np.random.default_rng(9)
    try:
        async with client(app_a) as ca, client(app_b) as cb:
            statuses = []
            for _ in range(5):  # uniform queries on replica A only: ood-queries at 100 rows, block at 250
                rows = rng.uniform(X.min(0), X.max(0), (50, FEATURES)).tolist()
                r = await ca.post(
                    "/v1/models/clf:predict", json={"instances": rows}, headers=bearer(a.keys["mallory"])
                )
                statuses.append(r.status_code)
            assert statuses == [200, 200, 200, 200, 403]
            # replica B has seen nothing from mallory, yet refuses it; another identity is still served
            few = {"instances": X[:5].tolist()}
            r = await cb.post("/v1/models/clf:predict", json=few, headers=bearer(b.keys["mallory"]))
            assert r.status_code == 403 and r.json()["error"] == "blocked"
            r = await cb.post(
                "/v1/models/clf:predict", json={"instances": X[:5].tolist()}, headers=bearer(b.keys["alice"])
            )
            assert r.status_code == 200
        levels = [e["level"] for e in a.events("suspected-extraction")]
        assert levels == ["alert", "labels_only", "throttle", "block"]
        stored = redis.Redis.from_url(REDIS_URL).get(f"{prefix}det:clf:mallory")
        assert stored == b"4"
    finally:
        await app_a.close()
        await app_b.close()


async def test_steps_from_two_replicas_add_up(tmp_path: Path, redis_prefix: str) -> None:
    """Each replica sees half of the attack; the shared level counts both halves' flagged checks."""
    prefix = redis_prefix
    a, b = _replica(tmp_path / "a", REDIS_URL, prefix), _replica(tmp_path / "b", REDIS_URL, prefix)
    app_a, app_b = build_app(a.config), build_app(b.config)
    X, _ = make_data()
    rng = np.random.default_rng(10)
    answered = 0
    try:
        async with client(app_a) as ca, client(app_b) as cb:
            for i in range(12):  # alternate replicas: each sees 50 rows in every 100
                c, keys = (ca, a.keys) if i % 2 == 0 else (cb, b.keys)
                rows = rng.uniform(X.min(0), X.max(0), (50, FEATURES)).tolist()
                r = await c.post(
                    "/v1/models/clf:predict", json={"instances": rows}, headers=bearer(keys["mallory"])
                )
                if r.status_code != 200:
                    assert r.status_code == 403
                    break
                answered += 50
        # each replica alone would block after 200 of its own rows (400 in all); shared, the four steps are
        # the checks at 100 and 150 rows on each replica: blocked on the fifth request, 250 rows
        assert answered == 250, answered
    finally:
        await app_a.close()
        await app_b.close()


async def test_an_unreachable_detection_store_refuses_rather_than_serves(tmp_path: Path) -> None:
    setup = _replica(tmp_path, f"redis://127.0.0.1:{free_port()}/0", "bastion-test:")
    app = build_app(setup.config)
    X, _ = make_data()
    async with client(app) as c:
        r = await c.post(
            "/v1/models/clf:predict", json={"instances": X[:1].tolist()}, headers=bearer(setup.keys["alice"])
        )
    await app.close()
    assert r.status_code == 503 and r.json()["error"] == "limits-unavailable"


def test_shared_detection_needs_the_redis_backend(tmp_path: Path) -> None:
    X, _ = make_data()
    doc = base_config(tmp_path, X)
    doc["models"][0]["detection"] = {"shared": True}
    with pytest.raises(ConfigError, match=r"detection\.shared needs limits\.backend: redis"):
        parse_config(json.loads(json.dumps(doc)), base=tmp_path)

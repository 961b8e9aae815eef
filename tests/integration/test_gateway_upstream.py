"""Models proxied to a real upstream KServe server (a Starlette app on uvicorn, 127.0.0.1): answers are
hardened like in-process ones, the caller's credentials never travel upstream, and upstream failures are
JSON 502/504 errors with audit records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.errors import ConfigError
from bastion.gateway.app import GatewayApp, build_app
from bastion.gateway.config import parse_config
from tests.gateway_helpers import Setup, bearer, client, free_port, make_setup, serve_on_loopback

pytestmark = pytest.mark.anyio
ROW = [0.1, -0.2, 0.3, 0.0, 1.0, -1.0]


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


class Upstream:
    """A KServe-protocol server that records what reached it."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

        async def v1(request: Request) -> Response:
            self.seen.append(dict(request.headers))
            name = request.path_params["name"]
            if name == "slow":
                await asyncio.sleep(2)
            if name == "boom":
                return Response("Traceback (most recent call last): secret internals", status_code=500)
            if name == "junk":
                return Response("<html>not json</html>", media_type="text/html")
            if name == "short":
                return JSONResponse({"predictions": []})
            rows = (await request.json())["instances"]
            return JSONResponse({"predictions": [[0.25, 0.75] if sum(r) > 0 else [0.9, 0.1] for r in rows]})

        async def v2(request: Request) -> Response:
            self.seen.append(dict(request.headers))
            tensor = (await request.json())["inputs"][0]
            n = tensor["shape"][0]
            return JSONResponse(
                {"outputs": [{"name": "out", "shape": [n], "datatype": "FP64", "data": [1.5] * n}]}
            )

        self.probes: list[str] = []

        async def v1_metadata(request: Request) -> Response:
            name = request.path_params["name"]
            self.probes.append(name)
            if name == "boom":
                return Response("Traceback", status_code=500)
            return JSONResponse({"name": name, "ready": name != "warming"})

        async def v2_ready(request: Request) -> Response:
            self.probes.append(request.path_params["name"])
            return Response(status_code=200 if request.path_params["name"] != "warming" else 503)

        self.app = Starlette(
            routes=[
                Route("/v1/models/{name}:predict", v1, methods=["POST"]),
                Route("/v1/models/{name}", v1_metadata, methods=["GET"]),
                Route("/v2/models/{name}/infer", v2, methods=["POST"]),
                Route("/v2/models/{name}/ready", v2_ready, methods=["GET"]),
            ]
        )


@pytest.fixture()
def upstream() -> Iterator[tuple[Upstream, str]]:
    server_app = Upstream()
    with serve_on_loopback(server_app.app) as url:
        yield server_app, url


def _remote(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "environment": "prod",
        "features": 6,
        "upstream": {"url": url, "timeout_s": 0.5},
        **extra,
    }


@pytest.fixture()
async def gw(tmp_path: Path, upstream: tuple[Upstream, str]) -> AsyncIterator[tuple[Setup, GatewayApp]]:
    _, url = upstream
    models = [
        _remote("remote", url, classes=["no", "yes"]),
        _remote("remote-labels", url, classes=["no", "yes"], output={"mode": "labels"}),
        {**_remote("remote-v2", url), "upstream": {"url": url, "protocol": "v2", "model": "any"}},
        *(_remote(name, url) for name in ("slow", "boom", "junk", "short")),
        _remote("down", f"http://127.0.0.1:{free_port()}"),
    ]
    every = {"bindings": [{"role": "model-consumer", "environment": "prod", "models": ["*"]}]}
    setup = make_setup(tmp_path, models=models, identities={"alice": every})
    app = build_app(setup.config)
    yield setup, app
    await app.gw.close()


async def _predict(app: GatewayApp, setup: Setup, name: str, **headers: str) -> Any:
    async with client(app) as c:
        return await c.post(
            f"/v1/models/{name}:predict",
            json={"instances": [ROW, [-v for v in ROW]]},
            headers={**bearer(setup.keys["alice"]), **headers},
        )


async def test_v1_upstream_answers_are_served_and_hardened(gw: tuple[Setup, GatewayApp]) -> None:
    setup, app = gw
    r = await _predict(app, setup, "remote")
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [[0.25, 0.75], [0.9, 0.1]]}  # rows summing to 0.2 and -0.2
    r = await _predict(app, setup, "remote-labels")
    assert r.json() == {"predictions": ["yes", "no"]}  # labels-only hardening applies to upstream answers
    records = {r["model"]: r for r in setup.access() if r["status"] == 200}
    assert {"remote", "remote-labels"} <= set(records)


async def test_v2_upstream(gw: tuple[Setup, GatewayApp]) -> None:
    setup, app = gw
    r = await _predict(app, setup, "remote-v2")
    assert r.status_code == 200 and r.json() == {"predictions": [1.5, 1.5]}


async def test_the_callers_credentials_and_headers_never_reach_the_upstream(
    gw: tuple[Setup, GatewayApp], upstream: tuple[Upstream, str]
) -> None:
    setup, app = gw
    seen, _ = upstream
    r = await _predict(app, setup, "remote", Cookie="session=s3cret", **{"X-Api-Key": "s3cret"})
    assert r.status_code == 200
    forwarded = seen.seen[-1]
    assert "authorization" not in forwarded and "cookie" not in forwarded and "x-api-key" not in forwarded
    assert setup.keys["alice"] not in repr(forwarded) and "s3cret" not in repr(forwarded)
    assert forwarded["x-request-id"] == r.headers["x-request-id"]


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("slow", 504, "upstream-timeout"),
        ("boom", 502, "upstream-error"),
        ("junk", 502, "bad-upstream-response"),
        ("short", 502, "bad-upstream-response"),
        ("down", 502, "upstream-unreachable"),
    ],
)
async def test_upstream_failures_are_json_errors_with_audit_records(
    gw: tuple[Setup, GatewayApp], name: str, status: int, code: str
) -> None:
    setup, app = gw
    r = await _predict(app, setup, name)
    assert r.status_code == status and r.json()["error"] == code
    assert "Traceback" not in r.text and "secret internals" not in r.text
    record = next(a for a in setup.access() if a["requestId"] == r.json()["request_id"])
    assert record["status"] == status and record["reason"] == code and record["model"] == name


async def test_upstream_rows_are_validated_before_forwarding(
    gw: tuple[Setup, GatewayApp], upstream: tuple[Upstream, str]
) -> None:
    setup, app = gw
    seen, _ = upstream
    before = len(seen.seen)
    async with client(app) as c:
        r = await c.post(
            "/v1/models/remote:predict", json={"instances": [[1.0] * 5]}, headers=bearer(setup.keys["alice"])
        )
    assert r.status_code == 422 and len(seen.seen) == before  # refused here, never forwarded


@pytest.mark.parametrize(
    "upstream_doc",
    [
        {"url": "http://user:pw@127.0.0.1:9000"},
        {"url": "ftp://127.0.0.1:9000"},
        {"url": "http://127.0.0.1:9000?token=x"},
    ],
)
def test_upstream_urls_with_credentials_or_odd_schemes_are_refused(
    tmp_path: Path, upstream_doc: dict[str, Any]
) -> None:
    doc = {
        "server": {"environment": "prod"},
        "models": [_remote("m", "http://127.0.0.1:1") | {"upstream": upstream_doc}],
    }
    with pytest.raises(ConfigError):
        parse_config(doc, base=tmp_path)


def test_an_upstream_model_needs_its_width(tmp_path: Path) -> None:
    doc = {
        "server": {"environment": "prod"},
        "models": [{"name": "m", "environment": "prod", "upstream": {"url": "http://127.0.0.1:1"}}],
    }
    with pytest.raises(ConfigError, match="features"):
        parse_config(doc, base=tmp_path)


async def _ready(tmp_path: Path, models: list[dict[str, Any]]) -> list[int]:
    """/readyz statuses of a gateway serving ``models``: once, then five times at once."""
    app = build_app(make_setup(tmp_path, models=models).config)
    try:
        async with client(app) as c:
            first = (await c.get("/readyz")).status_code
            again = await asyncio.gather(*(c.get("/readyz") for _ in range(5)))
            assert all(r.json() == {"status": "ready" if first == 200 else "unavailable"} for r in again)
            return [first, *(r.status_code for r in again)]
    finally:
        await app.gw.close()


async def test_readyz_asks_each_upstream_and_probes_once_per_interval(
    tmp_path: Path, upstream: tuple[Upstream, str]
) -> None:
    seen, url = upstream
    v2 = {**_remote("remote-v2", url), "upstream": {"url": url, "protocol": "v2", "model": "any"}}
    assert await _ready(tmp_path, [_remote("remote", url), v2]) == [200] * 6
    assert sorted(seen.probes) == ["any", "remote"]  # six /readyz calls, one probe per upstream model


@pytest.mark.parametrize(
    ("name", "protocol"),
    [("warming", "v1"), ("warming", "v2"), ("boom", "v1"), ("down", "v1")],
)
async def test_readyz_is_503_while_an_upstream_model_is_not_ready(
    tmp_path: Path, upstream: tuple[Upstream, str], name: str, protocol: str
) -> None:
    _, url = upstream
    target = f"http://127.0.0.1:{free_port()}" if name == "down" else url
    model = {**_remote(name, target), "upstream": {"url": target, "protocol": protocol, "timeout_s": 0.5}}
    assert await _ready(tmp_path, [_remote("remote", url), model]) == [503] * 6

"""JWT keys from a JWKS URL served by a real local HTTP server: fetched once and cached, fetched again for a
rotated key's unknown ``kid`` (but not for every unknown kid), refused when too large, and failing closed
when the keys expire and the URL is down."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.errors import ConfigError
from bastion.gateway.app import build_app
from bastion.gateway.config import parse_config
from tests.gateway_helpers import base_config, bearer, client, serve_on_loopback, write_models

pytestmark = pytest.mark.anyio


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


class Issuer:
    def __init__(self) -> None:
        self.keys = {kid: rsa.generate_private_key(public_exponent=65537, key_size=2048) for kid in "ab"}
        self.published = ["a"]
        self.fetches = 0
        self.status = 200
        self.padding = 0

        async def jwks(request: Request) -> Response:
            self.fetches += 1
            keys = [
                {
                    **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[k].public_key())),
                    "kid": k,
                    "alg": "RS256",
                }
                for k in self.published
            ]
            body = json.dumps({"keys": keys, "padding": "x" * self.padding})
            return Response(body, status_code=self.status, media_type="application/json")

        self.app = Starlette(routes=[Route("/jwks.json", jwks)])

    def token(self, kid: str) -> str:
        claims = {
            "sub": "erin",
            "iss": "https://idp.example",
            "aud": "bastion",
            "exp": int(time.time()) + 300,
        }
        return jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture()
def issuer() -> Iterator[tuple[Issuer, str]]:
    idp = Issuer()
    with serve_on_loopback(idp.app) as base:
        yield idp, f"{base}/jwks.json"


def _config(root: Path, url: str, **jwt_options: Any) -> Any:
    X = write_models(root)
    block = {"issuer": "https://idp.example", "audience": "bastion", "algorithms": ["RS256"], "jwks_url": url}
    doc = base_config(root, X, auth={"jwt": {**block, **jwt_options}})
    doc["identities"]["erin"] = {"bindings": [{"role": "data-scientist", "environment": "prod"}]}
    doc["limits"]["failed_auth"] = {"capacity": 100, "per_second": 10}
    return parse_config(json.loads(json.dumps(doc)), base=root)


async def _status(app: Any, token: str) -> int:
    async with client(app) as c:
        return (await c.get("/v1/models", headers=bearer(token))).status_code


async def test_keys_are_fetched_once_then_cached(tmp_path: Path, issuer: tuple[Issuer, str]) -> None:
    idp, url = issuer
    app = build_app(_config(tmp_path, url))
    for _ in range(5):
        assert await _status(app, idp.token("a")) == 200
    assert idp.fetches == 1
    await app.gw.close()


async def test_a_rotated_key_is_fetched_for_its_unknown_kid_but_not_every_time(
    tmp_path: Path, issuer: tuple[Issuer, str]
) -> None:
    idp, url = issuer
    app = build_app(_config(tmp_path, url, jwks_refresh_interval_s=0.3))
    assert await _status(app, idp.token("a")) == 200
    assert await _status(app, idp.token("b")) == 401  # not published yet: a fetch is allowed only later
    idp.published = ["a", "b"]
    for _ in range(5):  # inside the refresh interval: unknown kids do not make the gateway fetch
        assert await _status(app, idp.token("b")) == 401
    assert idp.fetches == 1
    time.sleep(0.35)
    assert await _status(app, idp.token("b")) == 200  # the unknown kid triggers one fetch
    assert idp.fetches == 2
    await app.gw.close()


async def test_expired_keys_and_a_failing_url_fail_closed(tmp_path: Path, issuer: tuple[Issuer, str]) -> None:
    idp, url = issuer
    app = build_app(_config(tmp_path, url, jwks_ttl_s=0.3, jwks_refresh_interval_s=0))
    assert await _status(app, idp.token("a")) == 200
    idp.status = 500
    time.sleep(0.35)
    assert await _status(app, idp.token("a")) == 401  # the cached key is past its TTL and cannot be renewed
    idp.status = 200
    assert await _status(app, idp.token("a")) == 200  # the URL answers again
    await app.gw.close()


async def test_an_oversized_jwks_is_refused(tmp_path: Path, issuer: tuple[Issuer, str]) -> None:
    idp, url = issuer
    idp.padding = 10_000
    app = build_app(_config(tmp_path, url, jwks_max_bytes=4096))
    assert await _status(app, idp.token("a")) == 401
    await app.gw.close()


async def test_an_unreachable_url_fails_closed(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    idp = Issuer()
    app = build_app(_config(tmp_path, f"http://127.0.0.1:{port}/jwks.json", jwks_timeout_s=0.5))
    assert await _status(app, idp.token("a")) == 401
    await app.gw.close()


@pytest.mark.parametrize(
    "url", ["http://idp.example/jwks.json", "ftp://127.0.0.1/jwks", "https://u:p@idp.example/k"]
)
def test_plain_http_off_loopback_and_credentials_in_the_url_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match="jwks_url"):
        _config(tmp_path, url)


def test_https_urls_are_accepted(tmp_path: Path) -> None:
    assert _config(tmp_path, "https://idp.example/.well-known/jwks.json").auth.jwt is not None

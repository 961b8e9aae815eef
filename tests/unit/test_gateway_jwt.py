"""JWT authentication: allowlisted algorithms only; alg=none, expired, wrong audience/issuer, forged
signatures and RS/HS key confusion are all refused."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bastion.errors import ConfigError
from bastion.gateway.app import build_app
from bastion.gateway.config import parse_config
from tests.gateway_helpers import base_config, bearer, client, write_models

pytestmark = pytest.mark.anyio
ROW = [0.0] * 6
SECRET = "s" * 64


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


def _claims(**overrides: Any) -> dict[str, Any]:
    claims = {
        "sub": "erin",
        "iss": "https://idp.example",
        "aud": "bastion",
        "exp": int(time.time()) + 300,
        "groups": ["scientists"],
    }
    claims.update(overrides)
    return claims


def _config(root: Path, jwt_block: dict[str, Any]) -> Any:
    X = write_models(root)
    doc = base_config(root, X, auth={"jwt": jwt_block})
    doc["limits"]["failed_auth"] = {"capacity": 50, "per_second": 1}
    doc["groups"] = {
        "scientists": {"bindings": [{"role": "data-scientist", "environment": "prod", "models": ["clf"]}]}
    }
    return parse_config(json.loads(json.dumps(doc)), base=root)


async def test_rs256_tokens_from_a_jwks_file(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(
        json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]})
    )
    config = _config(
        tmp_path,
        {
            "issuer": "https://idp.example",
            "audience": "bastion",
            "algorithms": ["RS256"],
            "jwks_file": "jwks.json",
        },
    )
    app = build_app(config)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = jwt.encode(_claims(), key, algorithm="RS256", headers={"kid": "k1"})
    bad = {
        "expired": jwt.encode(
            _claims(exp=int(time.time()) - 3600), key, algorithm="RS256", headers={"kid": "k1"}
        ),
        "audience": jwt.encode(_claims(aud="other"), key, algorithm="RS256", headers={"kid": "k1"}),
        "issuer": jwt.encode(
            _claims(iss="https://evil.example"), key, algorithm="RS256", headers={"kid": "k1"}
        ),
        "forged": jwt.encode(_claims(), other, algorithm="RS256", headers={"kid": "k1"}),
        "no-exp": jwt.encode(
            {k: v for k, v in _claims().items() if k != "exp"}, key, algorithm="RS256", headers={"kid": "k1"}
        ),
        "none": jwt.encode(_claims(), None, algorithm="none", headers={"kid": "k1"}),
        # key confusion: an HS256 token keyed with the public key's PEM
        "confusion": _hs256_with(pem, _claims()),
    }
    async with client(app) as c:
        ok = await c.post("/v1/models/clf:predict", json={"instances": [ROW]}, headers=bearer(good))
        assert ok.status_code == 200
        for name, token in bad.items():
            r = await c.post("/v1/models/clf:predict", json={"instances": [ROW]}, headers=bearer(token))
            assert r.status_code == 401, name
            assert r.json()["error"] == "invalid-credentials"
    callers = [(r["caller"], r["status"]) for r in _access(config)]
    assert callers[0] == ("erin", 200) and all(c == ("-", 401) for c in callers[1:])
    await app.gw.close()


def _hs256_with(secret: bytes, claims: dict[str, Any]) -> str:
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(secret, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


def _access(config: Any) -> list[dict[str, Any]]:
    lines = config.audit.path.read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "access"]


async def test_hs256_tokens_and_group_grants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_JWT_SECRET", SECRET)
    config = _config(
        tmp_path,
        {
            "issuer": "https://idp.example",
            "audience": "bastion",
            "algorithms": ["HS256"],
            "secret_env": "TEST_JWT_SECRET",
        },
    )
    app = build_app(config)
    async with client(app) as c:
        ok = await c.post(
            "/v1/models/clf:predict",
            json={"instances": [ROW]},
            headers=bearer(jwt.encode(_claims(), SECRET, algorithm="HS256")),
        )
        no_group = await c.post(
            "/v1/models/clf:predict",
            json={"instances": [ROW]},
            headers=bearer(jwt.encode(_claims(groups=[]), SECRET, algorithm="HS256")),
        )
        hs512 = await c.get("/v1/models", headers=bearer(jwt.encode(_claims(), SECRET, algorithm="HS512")))
    assert ok.status_code == 200
    assert no_group.status_code == 403  # authenticated, but nothing is granted without a binding
    assert hs512.status_code == 401  # not on the allowlist
    await app.gw.close()


@pytest.mark.parametrize(
    "block",
    [
        {"issuer": "i", "audience": "a", "algorithms": ["none"]},
        {
            "issuer": "i",
            "audience": "a",
            "algorithms": ["HS256", "RS256"],
            "secret_env": "X",
            "jwks_file": "j",
        },
        {"issuer": "i", "audience": "a", "algorithms": ["RS256"]},
        {"issuer": "i", "audience": "a", "algorithms": []},
    ],
)
def test_unsafe_jwt_configurations_are_rejected(tmp_path: Path, block: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        _config(tmp_path, block)


def test_short_hmac_secret_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_JWT_SECRET", "short")
    config = _config(
        tmp_path, {"issuer": "i", "audience": "a", "algorithms": ["HS256"], "secret_env": "TEST_JWT_SECRET"}
    )
    with pytest.raises(ConfigError):
        build_app(config)

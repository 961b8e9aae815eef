"""``GET /openapi.json``: served only to identities that may list models, listing only their models, and a
valid OpenAPI 3.1 document describing the routes the gateway really serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from bastion.gateway.app import GatewayApp, build_app
from tests.gateway_helpers import Setup, bearer, client, make_setup

pytestmark = pytest.mark.anyio
ROW = [0.1, -0.2, 0.3, 0.0, 1.0, -1.0]


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture()
async def gw(tmp_path: Path) -> AsyncIterator[tuple[Setup, GatewayApp]]:
    setup = make_setup(tmp_path)
    app = build_app(setup.config)
    yield setup, app
    await app.gw.close()


async def _doc(app: GatewayApp, token: str) -> dict[str, Any]:
    async with client(app) as c:
        response = await c.get("/openapi.json", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    doc: dict[str, Any] = response.json()
    return doc


def _model_enums(doc: dict[str, Any]) -> set[tuple[str, ...]]:
    return {
        tuple(p["schema"]["enum"])
        for item in doc["paths"].values()
        for op in item.values()
        for p in op.get("parameters", [])
        if p["name"] == "name"
    }


async def test_without_credentials_is_401_and_audited(
    gw: tuple[Setup, GatewayApp],
) -> None:
    setup, app = gw
    async with client(app) as c:
        response = await c.get("/openapi.json")
        forged = await c.get("/openapi.json", headers=bearer("bst_nope_nope"))
    assert response.status_code == 401 and response.json()["error"] == "missing-credentials"
    assert forged.status_code == 401 and forged.json()["error"] == "invalid-credentials"
    assert "openapi" not in response.text
    paths = [(r["resourcePath"], r["status"]) for r in setup.access()]
    assert paths.count(("/openapi.json", 401)) == 2


async def test_identities_without_a_model_role_get_403(
    gw: tuple[Setup, GatewayApp],
) -> None:
    setup, app = gw
    async with client(app) as c:
        response = await c.get("/openapi.json", headers=bearer(setup.keys["dave"]))  # staging only
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert "paths" not in response.text


async def test_a_consumer_sees_only_its_models(gw: tuple[Setup, GatewayApp]) -> None:
    setup, app = gw
    alice = await _doc(app, setup.keys["alice"])
    bob = await _doc(app, setup.keys["bob"])
    assert _model_enums(alice) == {("clf",)}
    assert "lin" not in str(alice)
    assert _model_enums(bob) == {("clf", "lin")}
    async with client(app) as c:
        listed = await c.get("/v1/models", headers=bearer(setup.keys["alice"]))
    assert listed.json()["models"] == ["clf"]


async def test_the_document_is_valid_openapi_31_and_matches_the_routes(
    gw: tuple[Setup, GatewayApp],
) -> None:
    setup, app = gw
    doc = await _doc(app, setup.keys["bob"])
    assert doc["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(doc).validate()  # raises on any schema or reference error
    broken = {**doc, "components": {**doc["components"], "securitySchemes": {"bearer": {"type": "magic"}}}}
    assert not OpenAPIV31SpecValidator(broken).is_valid()  # the validator does reject a bad document
    assert set(doc["paths"]) == {
        "/healthz",
        "/readyz",
        "/v1/models",
        "/v1/models/{name}",
        "/v2/models/{name}",
        "/v1/models/{name}:predict",
        "/v2/models/{name}/infer",
        "/admin/audit",
        "/admin/models/{name}/state",
        "/metrics",
    }
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert doc["security"] == [{"bearer": []}] and doc["paths"]["/healthz"]["get"]["security"] == []
    predict = doc["paths"]["/v1/models/{name}:predict"]["post"]["responses"]
    assert {"200", "401", "403", "413", "415", "422", "429"} <= set(predict)
    # every documented path is really served: an authorised GET/POST on it never answers 404/405
    async with client(app) as c:
        h = bearer(setup.keys["bob"])
        for path, item in doc["paths"].items():
            url = path.replace("{name}", "clf")
            for method in item:
                body = {"instances": [ROW]} if "predict" in path else None
                if path.endswith("/infer"):
                    body = {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP64", "data": ROW}]}
                response = await c.request(method.upper(), url, headers=h, json=body)
                assert response.status_code not in {404, 405}, (method, url, response.text)


async def test_an_auditor_may_read_it_with_every_prod_model(
    gw: tuple[Setup, GatewayApp],
) -> None:
    setup, app = gw
    doc = await _doc(app, setup.keys["carol"])
    assert _model_enums(doc) == {("clf", "lin")}

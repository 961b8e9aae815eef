"""A model's runtime state (normal / throttle / block) through the gateway's full ASGI stack: what each state
does to predictions, who may change it, strict validation, and the security audit record of every change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.gateway.app import GatewayApp, build_app
from bastion.gateway.audit import verify_chain
from bastion.gateway.credentials import ApiKeyStore
from tests.gateway_helpers import Setup, bearer, client, make_data, make_setup

pytestmark = pytest.mark.anyio
STATE = "/admin/models/clf/state"


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


def _identities() -> dict[str, Any]:
    """The helpers' identities, plus an operator who may manage ``clf`` in prod only."""
    from tests.gateway_helpers import base_config

    identities: dict[str, Any] = base_config(Path("."), make_data()[0])["identities"]
    identities["olga"] = {"bindings": [{"role": "mlops-engineer", "environment": "prod", "models": ["clf"]}]}
    return identities


def setup_with_operator(root: Path, **overrides: Any) -> Setup:
    setup = make_setup(root, identities=_identities(), **overrides)
    setup.keys["olga"] = ApiKeyStore(root / "keys.json").create("olga")[0]
    return setup


@pytest.fixture()
async def gw(tmp_path: Path) -> AsyncIterator[tuple[Setup, GatewayApp]]:
    setup = setup_with_operator(tmp_path)
    app = build_app(setup.config)
    yield setup, app
    await app.gw.close()


async def put_state(c: httpx.AsyncClient, token: str, body: Any, path: str = STATE) -> httpx.Response:
    return await c.put(path, json=body, headers=bearer(token))


async def predict(c: httpx.AsyncClient, token: str, rows: list[list[float]]) -> httpx.Response:
    return await c.post("/v1/models/clf:predict", json={"instances": rows}, headers=bearer(token))


async def test_block_suspends_predictions_and_keeps_metadata_readable(gw: tuple[Setup, GatewayApp]) -> None:
    setup, app = gw
    rows = setup.X[:2].tolist()
    async with client(app) as c:
        assert (await predict(c, setup.keys["alice"], rows)).status_code == 200
        r = await put_state(c, setup.keys["olga"], {"state": "block", "reason": "alarm churn-inputs: drift"})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "block" and r.json()["previous"] == "normal" and r.json()["by"] == "olga"

        refused = await predict(c, setup.keys["alice"], rows)
        assert refused.status_code == 503
        body = refused.json()
        assert body["error"] == "model-suspended"
        assert body["message"] == "this model is suspended: alarm churn-inputs: drift"
        assert set(body) == {"error", "message", "status", "request_id"}
        v2 = {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP64", "data": rows[0]}]}
        v2_refused = await c.post("/v2/models/clf/infer", json=v2, headers=bearer(setup.keys["bob"]))
        assert v2_refused.status_code == 503 and v2_refused.json()["error"] == "model-suspended"
        # other models are untouched, metadata stays readable, and the state can be read
        lin = await c.post(
            "/v1/models/lin:predict", json={"instances": rows}, headers=bearer(setup.keys["bob"])
        )
        assert lin.status_code == 200
        meta = await c.get("/v1/models/clf", headers=bearer(setup.keys["bob"]))
        assert meta.status_code == 200 and meta.json()["name"] == "clf"
        state = await c.get(STATE, headers=bearer(setup.keys["carol"]))
        assert state.json()["state"] == "block" and state.json()["reason"] == "alarm churn-inputs: drift"

        restored = await put_state(c, setup.keys["olga"], {"state": "normal", "reason": "alarm OK"})
        assert restored.json()["previous"] == "block"
        assert (await predict(c, setup.keys["alice"], rows)).status_code == 200
    denied = next(r for r in setup.access() if r["requestId"] == body["request_id"])
    assert denied["decision"] == "deny" and denied["reason"] == "model-suspended" and denied["model"] == "clf"
    assert denied["caller"] == "alice" and denied["status"] == 503


async def test_throttle_charges_factor_tokens_per_row_and_answers_labels_only(
    gw: tuple[Setup, GatewayApp],
) -> None:
    setup, app = gw  # the identity bucket: 400 tokens, refilled at 1 per second
    rows = setup.X[:10].tolist()
    async with client(app) as c:
        first = await predict(c, setup.keys["alice"], rows)  # 10 tokens
        assert first.status_code == 200 and isinstance(first.json()["predictions"][0], list)
        r = await put_state(c, setup.keys["olga"], {"state": "throttle", "reason": "alarm: drift"})
        assert r.json()["factor"] == 10.0
        statuses = []
        answers = []
        for _ in range(4):  # 100 tokens each: 390 left is three requests
            response = await predict(c, setup.keys["alice"], rows)
            statuses.append(response.status_code)
            answers.append(response)
        assert statuses == [200, 200, 200, 429]
        labels = answers[0].json()["predictions"]
        assert len(labels) == 10 and all(isinstance(v, int) for v in labels)
        assert answers[3].json()["error"] == "rate-limited"
        # a custom factor: 50 tokens a row, so one row of another identity's 400 leaves room for 7 more
        await put_state(c, setup.keys["olga"], {"state": "throttle", "reason": "harder", "factor": 50})
        bob = [(await predict(c, setup.keys["bob"], rows[:1])).status_code for _ in range(9)]
        assert bob == [200] * 8 + [429]
    served = [
        r for r in setup.access() if r["status"] == 200 and r["resourcePath"] == "/v1/models/clf:predict"
    ]
    assert [r["reason"] for r in served[1:4]] == ["model-throttled"] * 3


@pytest.mark.parametrize(
    ("who", "method", "status"),
    [
        ("alice", "PUT", 403),  # model-consumer
        ("carol", "PUT", 403),  # security-auditor
        ("bob", "PUT", 403),  # data-scientist
        ("dave", "PUT", 403),  # ml-engineer, but in staging
        ("alice", "GET", 403),  # predict alone does not read the state
        ("dave", "GET", 403),
        ("carol", "GET", 200),  # read-metadata
        ("olga", "GET", 200),  # manage
        ("olga", "PUT", 200),
    ],
)
async def test_only_manage_changes_the_state(
    gw: tuple[Setup, GatewayApp], who: str, method: str, status: int
) -> None:
    setup, app = gw
    body = {"state": "block", "reason": "test"}
    async with client(app) as c:
        r = await c.request(
            method, STATE, json=body if method == "PUT" else None, headers=bearer(setup.keys[who])
        )
        assert r.status_code == status, r.text
        expected = "block" if (who, method) == ("olga", "PUT") else "normal"
        assert (await c.get(STATE, headers=bearer(setup.keys["olga"]))).json()["state"] == expected
    if status == 403:
        assert r.json()["error"] == "forbidden"
        assert not setup.events("model-state")


async def test_unknown_model_other_model_and_no_credential(gw: tuple[Setup, GatewayApp]) -> None:
    setup, app = gw
    body = {"state": "block", "reason": "test"}
    async with client(app) as c:
        missing = await put_state(c, setup.keys["olga"], body, "/admin/models/nope/state")
        assert missing.status_code == 404 and missing.json()["error"] == "unknown-model"
        other = await put_state(c, setup.keys["olga"], body, "/admin/models/lin/state")  # bound to clf only
        assert other.status_code == 403
        anonymous = await c.put(STATE, json=body)
        assert anonymous.status_code == 401 and anonymous.json()["error"] == "missing-credentials"
        wrong_method = await c.post(STATE, json=body, headers=bearer(setup.keys["olga"]))
        assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET, HEAD, PUT"
    assert not setup.events("model-state")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"state": "paused", "reason": "x"}, "bad-state"),
        ({"state": "BLOCK", "reason": "x"}, "bad-state"),
        ({"state": 1, "reason": "x"}, "bad-state"),
        ({"state": "block"}, "bad-request-body"),
        ({"reason": "x"}, "bad-request-body"),
        ({"state": "block", "reason": "x", "until": "never"}, "bad-request-body"),
        (["block", "x"], "bad-request-body"),
        ({"state": "block", "reason": ""}, "bad-reason"),
        ({"state": "block", "reason": "   "}, "bad-reason"),
        ({"state": "block", "reason": "line\nbreak"}, "bad-reason"),
        ({"state": "block", "reason": "x" * 201}, "bad-reason"),
        ({"state": "block", "reason": 7}, "bad-reason"),
        ({"state": "block", "reason": "x", "factor": 10}, "bad-factor"),
        ({"state": "throttle", "reason": "x", "factor": 0.5}, "bad-factor"),
        ({"state": "throttle", "reason": "x", "factor": 1001}, "bad-factor"),
        ({"state": "throttle", "reason": "x", "factor": True}, "bad-factor"),
        ({"state": "throttle", "reason": "x", "factor": "10"}, "bad-factor"),
    ],
)
async def test_bad_state_changes_are_refused(gw: tuple[Setup, GatewayApp], body: Any, code: str) -> None:
    setup, app = gw
    async with client(app) as c:
        r = await put_state(c, setup.keys["olga"], body)
        assert r.status_code == 422 and r.json()["error"] == code, r.text
        assert (await c.get(STATE, headers=bearer(setup.keys["olga"]))).json()["state"] == "normal"
    assert not setup.events("model-state")


async def test_malformed_bodies_are_refused(gw: tuple[Setup, GatewayApp]) -> None:
    setup, app = gw
    headers = bearer(setup.keys["olga"])
    async with client(app) as c:
        text = await c.put(
            STATE, content=b'{"state": "block"}', headers={**headers, "content-type": "text/plain"}
        )
        assert text.status_code == 415
        dup = b'{"state": "block", "state": "normal", "reason": "x"}'
        duplicate = await c.put(STATE, content=dup, headers={**headers, "content-type": "application/json"})
        assert duplicate.status_code == 400
        assert (await c.get(STATE, headers=headers)).json()["state"] == "normal"


async def test_every_change_is_a_chained_security_record(gw: tuple[Setup, GatewayApp]) -> None:
    setup, app = gw
    async with client(app) as c:
        for body in (
            {"state": "throttle", "reason": "alarm a: drift in x", "factor": 4},
            {"state": "block", "reason": "alarm a: worse"},
            {"state": "normal", "reason": "alarm a: OK"},
        ):
            assert (await put_state(c, setup.keys["olga"], body)).status_code == 200
    events = setup.events("model-state")
    assert [(e["from"], e["to"]) for e in events] == [
        ("normal", "throttle"),
        ("throttle", "block"),
        ("block", "normal"),
    ]
    assert [e["reason"] for e in events] == ["alarm a: drift in x", "alarm a: worse", "alarm a: OK"]
    assert [e["factor"] for e in events] == [4.0, 1.0, 1.0]
    assert all(e["caller"] == "olga" and e["by"] == "olga" and e["model"] == "clf" for e in events)
    assert all(e["kind"] == "security" and e["requestId"] for e in events)
    await app.gw.close()
    assert verify_chain(setup.audit_path).ok

"""Every refusal path of the gateway, through its full ASGI stack: status, JSON error, no 5xx, audit
record."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bastion.gateway.app import GatewayApp, build_app
from bastion.gateway.credentials import ApiKeyStore
from tests.gateway_helpers import Setup, bearer, client, make_setup

pytestmark = pytest.mark.anyio
ROW = [0.1, -0.2, 0.3, 0.0, 1.0, -1.0]
AUDIT_FIELDS = {
    "requestId",
    "ip",
    "caller",
    "user",
    "requestTime",
    "httpMethod",
    "resourcePath",
    "status",
    "protocol",
    "responseLength",
    "model",
    "modelVersion",
    "decision",
    "reason",
    "prev_hash",
    "hash",
}


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture()
async def gw(tmp_path: Path) -> AsyncIterator[tuple[Setup, GatewayApp]]:
    setup = make_setup(tmp_path)
    app = build_app(setup.config)
    yield setup, app
    await app.gw.close()


def assert_refused(setup: Setup, response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["status"] == status
    assert "Traceback" not in response.text and "starlette" not in response.text.lower()
    assert response.headers["x-request-id"] == body["request_id"]
    record = next(r for r in setup.access() if r["requestId"] == body["request_id"])
    assert set(record) >= AUDIT_FIELDS
    assert record["status"] == status and record["decision"] == "deny" and record["reason"]
    assert record["responseLength"] == len(response.content)
    return record


async def test_authorised_v1_and_v2_predictions_are_served_and_audited(gw: Any) -> None:
    setup, app = gw
    async with client(app) as c:
        r = await c.post(
            "/v1/models/clf:predict", json={"instances": [ROW, ROW]}, headers=bearer(setup.keys["alice"])
        )
        assert r.status_code == 200
        preds = r.json()["predictions"]
        assert len(preds) == 2 and abs(sum(preds[0]) - 1) < 1e-3
        v2 = {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP64", "data": ROW}]}
        r2 = await c.post("/v2/models/clf/infer", json=v2, headers=bearer(setup.keys["alice"]))
        assert r2.status_code == 200 and r2.json()["outputs"][0]["shape"] == [1, 2]
        r3 = await c.post(
            "/v1/models/lin:predict", json={"instances": [ROW]}, headers=bearer(setup.keys["bob"])
        )
        assert r3.json()["predictions"][0][0].keys() == {"label", "probability"}
    record = setup.access()[0]
    assert set(record) >= AUDIT_FIELDS
    assert (record["caller"], record["status"], record["model"], record["decision"]) == (
        "alice",
        200,
        "clf",
        "allow",
    )
    assert record["protocol"] == "HTTP/1.1" and record["ip"] == "127.0.0.1"
    assert record["responseLength"] == len(r.content)


async def test_request_id_is_echoed_when_valid_and_replaced_when_not(gw: Any) -> None:
    setup, app = gw
    async with client(app) as c:
        good = await c.get(
            "/v1/models", headers={**bearer(setup.keys["alice"]), "X-Request-ID": "abc.DEF-1_2"}
        )
        bad = await c.get("/v1/models", headers={**bearer(setup.keys["alice"]), "X-Request-ID": "a b\tc"})
    assert good.headers["x-request-id"] == "abc.DEF-1_2"
    assert bad.headers["x-request-id"] != "a b\tc" and len(bad.headers["x-request-id"]) == 32
    assert [r["requestId"] for r in setup.access()] == ["abc.DEF-1_2", bad.headers["x-request-id"]]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing-credentials"),
        ({"Authorization": "Bearer bst_0000000000000000_" + "A" * 43}, "invalid-credentials"),
        ({"Authorization": "Basic YWxpY2U6cGFzcw=="}, "missing-credentials"),
        ({"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."}, "invalid-credentials"),
    ],
)
async def test_missing_or_invalid_credentials_are_401(gw: Any, headers: dict[str, str], code: str) -> None:
    setup, app = gw
    async with client(app) as c:
        r = await c.post("/v1/models/clf:predict", json={"instances": [ROW]}, headers=headers)
    record = assert_refused(setup, r, 401, code)
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert record["caller"] == "-"


async def test_tampered_revoked_and_expired_keys_are_refused_and_never_logged(gw: Any) -> None:
    setup, app = gw
    store = ApiKeyStore(setup.root / "keys.json")
    token = setup.keys["alice"]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    expired, _ = store.create("alice", expires_in=__import__("datetime").timedelta(seconds=-1))
    revoked, record = store.create("alice")
    store.revoke(record.id)
    async with client(app) as c:
        for bad in (tampered, expired, revoked):
            r = await c.get("/v1/models", headers=bearer(bad))
            assert_refused(setup, r, 401, "invalid-credentials")
        assert (await c.get("/v1/models", headers=bearer(token))).status_code == 200
    text = setup.audit_path.read_text()
    for secret in (token, tampered, expired, revoked, token.split("_", 2)[2]):  # the secret may hold "_"
        assert secret not in text


async def test_credentials_in_the_query_string_are_refused(gw: Any) -> None:
    setup, app = gw
    async with client(app) as c:
        r = await c.get(f"/v1/models?api_key={setup.keys['alice']}", headers=bearer(setup.keys["alice"]))
    assert_refused(setup, r, 400, "credentials-in-query")
    assert setup.keys["alice"] not in setup.audit_path.read_text()


async def test_listing_shows_only_usable_models_and_cross_model_access_is_403(gw: Any) -> None:
    setup, app = gw
    async with client(app) as c:
        assert (await c.get("/v1/models", headers=bearer(setup.keys["alice"]))).json() == {"models": ["clf"]}
        assert (await c.get("/v1/models", headers=bearer(setup.keys["bob"]))).json() == {
            "models": ["clf", "lin"]
        }
        assert (await c.get("/v1/models", headers=bearer(setup.keys["dave"]))).json() == {"models": []}
        r = await c.post(
            "/v1/models/lin:predict", json={"instances": [ROW]}, headers=bearer(setup.keys["alice"])
        )
        assert_refused(setup, r, 403, "forbidden")
        # an ML engineer bound in staging has nothing in prod
        r = await c.post(
            "/v1/models/clf:predict", json={"instances": [ROW]}, headers=bearer(setup.keys["dave"])
        )
        assert_refused(setup, r, 403, "forbidden")
        # the auditor may read metadata and the audit trail, not predict
        r = await c.post(
            "/v1/models/clf:predict", json={"instances": [ROW]}, headers=bearer(setup.keys["carol"])
        )
        assert_refused(setup, r, 403, "forbidden")
        meta = await c.get("/v1/models/clf", headers=bearer(setup.keys["carol"]))
        assert meta.json()["inputs"][0]["shape"] == [-1, 6]
        assert (await c.get("/v1/models/clf", headers=bearer(setup.keys["alice"]))).json() == {
            "name": "clf",
            "ready": True,
        }
        r = await c.get("/v1/models/nope", headers=bearer(setup.keys["alice"]))
        assert_refused(setup, r, 404, "unknown-model")


async def test_admin_audit_and_metrics_need_read_audit(gw: Any) -> None:
    setup, app = gw
    async with client(app) as c:
        r = await c.get("/admin/audit", headers=bearer(setup.keys["alice"]))
        assert_refused(setup, r, 403, "forbidden")
        ok = await c.get("/admin/audit?limit=5", headers=bearer(setup.keys["carol"]))
        assert ok.status_code == 200 and ok.json()["records"][-1]["reason"] == "forbidden"
        assert (await c.get("/metrics", headers=bearer(setup.keys["carol"]))).text.startswith("# TYPE")
        assert (await c.get("/metrics", headers=bearer(setup.keys["bob"]))).status_code == 403


async def test_health_endpoints_say_nothing_more(gw: Any) -> None:
    _, app = gw
    async with client(app) as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        assert (await c.get("/readyz")).json() == {"status": "ready"}


BAD_BODIES = [
    (b'{"instances": [[1, 2', 400, "malformed-json"),
    (b'{"instances": [], "instances": [[0,0,0,0,0,0]]}', 400, "duplicate-key"),
    (b'{"instances": [[NaN, 0, 0, 0, 0, 0]]}', 400, "non-finite-number"),
    (b'{"instances": [[Infinity, 0, 0, 0, 0, 0]]}', 400, "non-finite-number"),
    (b'{"instances": [[1e400, 0, 0, 0, 0, 0]]}', 400, "non-finite-number"),
    (b'{"instances": [[' + b"9" * 40 + b", 0, 0, 0, 0, 0]]}", 400, "number-too-long"),
    (b"[" * 100 + b"]" * 100, 400, "malformed-json"),
    (b"\xff\xfe", 400, "malformed-json"),
    (b'{"instances": [[1, 2, 3]]}', 422, "bad-shape"),
    (b'{"instances": [[1, 2, 3, 4, 5, "6"]]}', 422, "bad-type"),
    (b'{"instances": [[1, 2, 3, 4, 5, true]]}', 422, "bad-type"),
    (b'{"instances": [[1e30, 0, 0, 0, 0, 0]]}', 422, "out-of-range"),
    (b'{"instances": []}', 422, "bad-shape"),
    (b'{"rows": [[0, 0, 0, 0, 0, 0]]}', 422, "bad-request-body"),
    (json.dumps({"instances": [[0.0] * 6] * 65}).encode(), 413, "too-many-rows"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_BODIES)
async def test_bad_bodies_are_refused_before_the_model(gw: Any, body: bytes, status: int, code: str) -> None:
    setup, app = gw
    headers = {**bearer(setup.keys["alice"]), "Content-Type": "application/json"}
    async with client(app) as c:
        r = await c.post("/v1/models/clf:predict", content=body, headers=headers)
    assert_refused(setup, r, status, code)


async def test_wrong_content_type_method_and_encoded_paths(gw: Any) -> None:
    setup, app = gw
    async with client(app) as c:
        r = await c.post(
            "/v1/models/clf:predict",
            content=b"instances=1",
            headers={**bearer(setup.keys["alice"]), "Content-Type": "text/plain"},
        )
        assert_refused(setup, r, 415, "unsupported-media-type")
        r = await c.delete("/v1/models/clf:predict", headers=bearer(setup.keys["alice"]))
        assert_refused(setup, r, 405, "method-not-allowed")
        r = await c.post(
            "/v1/models/%6Cin:predict", json={"instances": [ROW]}, headers=bearer(setup.keys["alice"])
        )
        assert_refused(setup, r, 400, "bad-path")
        r = await c.post(
            "/v1/models//lin:predict", json={"instances": [ROW]}, headers=bearer(setup.keys["alice"])
        )
        assert_refused(setup, r, 400, "bad-path")  # dot segments are sent raw in tests/integration


async def test_v2_tensor_validation(gw: Any) -> None:
    setup, app = gw
    bad = [
        {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "STRING", "data": ROW}]},
        {"inputs": [{"name": "x", "shape": [2, 6], "datatype": "FP64", "data": ROW}]},
        {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP64", "data": [ROW]}]},
        {"inputs": []},
        {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP64", "data": ROW}], "extra": 1},
    ]
    async with client(app) as c:
        for body in bad:
            r = await c.post("/v2/models/clf/infer", json=body, headers=bearer(setup.keys["alice"]))
            assert r.status_code == 422, body
            assert_refused(setup, r, 422, r.json()["error"])


async def test_deny_listed_ip_cannot_hide_behind_forwarded_headers(tmp_path: Path) -> None:
    setup = make_setup(
        tmp_path, server={"environment": "prod", "deny": ["10.9.0.0/16"], "trusted_proxies": ["127.0.0.1/32"]}
    )
    app = build_app(setup.config)
    spoof = {**bearer(setup.keys["alice"]), "X-Forwarded-For": "192.0.2.7"}
    async with client(app, ip="10.9.1.2") as c:
        r = await c.get("/v1/models", headers=spoof)
    assert_refused(setup, r, 403, "ip-blocked")
    assert setup.access()[-1]["ip"] == "10.9.1.2"
    # behind the trusted proxy, the forwarded address is the client and is judged
    async with client(app, ip="127.0.0.1") as c:
        r = await c.get(
            "/v1/models", headers={**bearer(setup.keys["alice"]), "X-Forwarded-For": "192.0.2.1, 10.9.3.3"}
        )
        assert_refused(setup, r, 403, "ip-blocked")
        ok = await c.get(
            "/v1/models", headers={**bearer(setup.keys["alice"]), "X-Forwarded-For": "10.9.3.3, 192.0.2.1"}
        )
    assert ok.status_code == 200 and setup.access()[-1]["ip"] == "192.0.2.1"
    await app.gw.close()


async def test_allow_list_refuses_everyone_else(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, server={"environment": "prod", "allow": ["192.0.2.0/24"]})
    app = build_app(setup.config)
    async with client(app, ip="198.51.100.1") as c:
        assert_refused(
            setup, await c.get("/v1/models", headers=bearer(setup.keys["alice"])), 403, "ip-blocked"
        )
    async with client(app, ip="192.0.2.9") as c:
        assert (await c.get("/v1/models", headers=bearer(setup.keys["alice"]))).status_code == 200
    await app.gw.close()


async def test_limits_count_rows_and_answer_429_with_retry_after(gw: Any) -> None:
    setup, app = gw

    def rows(i: int) -> dict[str, Any]:
        return {"instances": setup.X[i * 64 : (i + 1) * 64].tolist()}

    async with client(app) as c:
        statuses = [
            (
                await c.post("/v1/models/clf:predict", json=rows(i), headers=bearer(setup.keys["bob"]))
            ).status_code
            for i in range(7)
        ]
        assert statuses == [200] * 6 + [
            429
        ]  # 400 rows of capacity: six requests of 64 rows, not 400 requests
        r = await c.post("/v1/models/clf:predict", json=rows(8), headers=bearer(setup.keys["bob"]))
        assert_refused(setup, r, 429, "rate-limited")
        assert int(r.headers["retry-after"]) >= 1
        # another identity is not affected
        ok = await c.post(
            "/v1/models/clf:predict", json={"instances": [ROW]}, headers=bearer(setup.keys["alice"])
        )
        assert ok.status_code == 200


async def test_failed_logins_are_throttled_per_ip_and_reported(gw: Any) -> None:
    setup, app = gw
    async with client(app, ip="203.0.113.5") as c:
        codes = [
            (await c.get("/v1/models", headers=bearer("bst_" + "0" * 16 + "_" + "x" * 43))).status_code
            for _ in range(7)
        ]
        # even the right key is refused from this address while it is throttled
        r = await c.get("/v1/models", headers=bearer(setup.keys["alice"]))
    assert codes == [401] * 5 + [429, 429]
    assert_refused(setup, r, 429, "auth-throttled")
    assert setup.events("auth-brute-force")
    async with client(app, ip="203.0.113.6") as c:
        assert (await c.get("/v1/models", headers=bearer(setup.keys["alice"]))).status_code == 200


async def test_extraction_is_detected_and_answered_step_by_step(tmp_path: Path) -> None:
    """A Jacobian-style synthetic query stream escalates alert → labels only → throttle → block, with a
    security
    event at each step, while a benign user querying natural data at the same time is served normally."""
    import numpy as np

    big = {"capacity": 5000, "per_second": 1}
    setup = make_setup(tmp_path, limits={"identity": big, "identity_model": big})
    app = build_app(setup.config)
    rng = np.random.default_rng(3)
    seeds = setup.X[rng.integers(0, len(setup.X), 10)]
    batches, current = [], seeds
    for _ in range(60):
        current = current + 0.05 * np.sign(rng.normal(size=current.shape))
        batches.append(current.tolist())
    natural = setup.X[rng.permutation(len(setup.X))[:600]]
    seen: list[tuple[int, str]] = []
    async with client(app) as c:
        for i, batch in enumerate(batches):
            r = await c.post(
                "/v1/models/clf:predict", json={"instances": batch}, headers=bearer(setup.keys["mallory"])
            )
            kind = (
                "error"
                if r.status_code != 200
                else ("labels" if isinstance(r.json()["predictions"][0], int) else "probabilities")
            )
            seen.append((r.status_code, kind))
            benign = await c.post(
                "/v1/models/clf:predict",
                json={"instances": natural[i * 5 : i * 5 + 5].tolist()},
                headers=bearer(setup.keys["bob"]),
            )
            assert benign.status_code == 200 and isinstance(benign.json()["predictions"][0], list)
            if r.status_code == 403:
                break
    kinds = [k for _, k in seen]
    assert kinds[0] == "probabilities" and "labels" in kinds
    assert seen[-1][0] == 403 and seen[-1] == (403, "error")
    levels = [e["level"] for e in setup.events("suspected-extraction")]
    assert levels == ["alert", "labels_only", "throttle", "block"]
    assert {e["caller"] for e in setup.events("suspected-extraction")} == {"mallory"}
    blocked = [r for r in setup.access() if r["caller"] == "mallory"][-1]
    assert blocked["status"] == 403 and blocked["reason"] == "blocked"
    await app.gw.close()


async def test_noise_is_deterministic_per_identity_and_never_changes_the_label(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    doc_models = [
        m.model_copy(update={"output": m.output.model_copy(update={"noise": 0.05, "round": 3})})
        for m in setup.config.models
    ]
    config = setup.config.model_copy(update={"models": tuple(doc_models)})
    app = build_app(config)
    async with client(app) as c:
        # eight distinct rows: one row's noise may round to the same 3 decimals for two callers
        rows = [[v + k / 10 for v in ROW] for k in range(8)]

        async def ask(who: str) -> list[list[float]]:
            r = await c.post(
                "/v1/models/clf:predict", json={"instances": rows}, headers=bearer(setup.keys[who])
            )
            result: list[list[float]] = r.json()["predictions"]
            return result

        a1, a2, b1 = await ask("alice"), await ask("alice"), await ask("bob")
    assert a1 == a2  # repeating a query cannot average the noise away
    assert a1 != b1  # another identity gets other noise
    plain = app.gw.models["clf"].predict(__import__("numpy").asarray(rows)).probabilities
    assert plain is not None
    for i, (a, b) in enumerate(zip(a1, b1, strict=True)):  # the label is never changed
        top = int(plain[i].argmax())
        assert a[top] == max(a) and b[top] == max(b)  # (rounding may tie, never overtake)
    await app.gw.close()


async def test_a_model_that_fails_its_scan_is_refused_not_served(tmp_path: Path) -> None:
    from tests.conftest import pickle_call

    setup = make_setup(tmp_path)
    (tmp_path / "clf.joblib").write_bytes(pickle_call("os", "system", "touch " + str(tmp_path / "pwned")))
    app = build_app(setup.config)
    async with client(app) as c:
        r = await c.post(
            "/v1/models/clf:predict", json={"instances": [ROW]}, headers=bearer(setup.keys["alice"])
        )
        assert_refused(setup, r, 503, "model-refused")
        assert (await c.get("/readyz")).status_code == 503
    assert not (tmp_path / "pwned").exists()
    refused = setup.events("model-refused")
    assert refused and "unsafe" in refused[0]["reason"]
    assert "clf" not in app.gw.models and "lin" in app.gw.models
    await app.gw.close()

"""Capture for the monitor: served rows land as JSON Lines in <dir>/<model>/<YYYY-MM-DD>/*.jsonl with
exactly the agreed fields, are flushed on shutdown, sampled when asked, and never carry a credential or a
refused row."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import ConfigError
from bastion.gateway.app import build_app
from tests.gateway_helpers import FEATURES, Setup, base_config, bearer, client, make_setup, write_models

pytestmark = pytest.mark.anyio
NAMES = ["age", "tenure", "spend", "visits", "score", "region_code"]


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


def _setup(tmp_path: Path, **capture: Any) -> Setup:
    X = write_models(tmp_path)
    models = base_config(tmp_path, X)["models"]
    models[0] |= {"feature_names": NAMES, "capture": {"directory": "captures", **capture}}
    models[1] |= {"capture": {"directory": "captures"}}
    return make_setup(tmp_path, models=models)


def _captured(root: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((root / "captures").glob("*/*/*.jsonl")):
        model, day = path.parent.parent.name, path.parent.name
        dt.date.fromisoformat(day)  # the folder is a date
        out.setdefault(model, []).extend(json.loads(line) for line in path.read_text().splitlines())
    return out


async def test_served_rows_are_captured_in_the_agreed_layout(tmp_path: Path) -> None:
    setup = _setup(tmp_path)
    app = build_app(setup.config)
    rows = setup.X[:3].tolist()
    async with client(app) as c:
        r = await c.post(
            "/v1/models/clf:predict", json={"instances": rows}, headers=bearer(setup.keys["alice"])
        )
        assert r.status_code == 200
        r2 = await c.post(
            "/v1/models/lin:predict", json={"instances": rows[:1]}, headers=bearer(setup.keys["bob"])
        )
        assert r2.status_code == 200
    await app.gw.close()  # graceful shutdown flushes the buffer
    captured = _captured(tmp_path)
    clf = captured["clf"]
    assert len(clf) == 3
    assert set(clf[0]) == {"_time", "_request_id", "_model", "_version", *NAMES, "prediction"}
    assert [[row[n] for n in NAMES] for row in clf] == rows
    assert clf[0]["_request_id"] == r.headers["x-request-id"] and clf[0]["_model"] == "clf"
    assert clf[0]["_version"] == "1" and clf[0]["_time"].endswith("Z")
    assert dt.datetime.fromisoformat(clf[0]["_time"].replace("Z", "+00:00")).tzinfo is not None
    assert clf[0]["prediction"] == pytest.approx(
        app.gw.models["clf"].predict(setup.X[:1]).probabilities[0].tolist()
    )
    lin = captured["lin"][0]  # no names configured: f0, f1, ...; the un-hardened output (not top-k)
    assert [k for k in lin if k.startswith("f")] == [f"f{i}" for i in range(FEATURES)]
    assert isinstance(lin["prediction"], list) and len(lin["prediction"]) == 3
    path = next((tmp_path / "captures").glob("clf/*/*.jsonl"))
    assert path.stat().st_mode & 0o077 == 0


async def test_no_credential_header_or_refused_row_is_captured(tmp_path: Path) -> None:
    setup = _setup(tmp_path)
    app = build_app(setup.config)
    async with client(app) as c:
        await c.post(
            "/v1/models/clf:predict",
            json={"instances": [setup.X[0].tolist()]},
            headers={**bearer(setup.keys["alice"]), "Cookie": "s=secret-cookie"},
        )
        refused = await c.post(
            "/v1/models/clf:predict",
            json={"instances": [[999.0] * FEATURES]},
            headers=bearer(setup.keys["alice"]),
        )
        assert refused.status_code == 422
        forbidden = await c.post(
            "/v1/models/lin:predict",
            json={"instances": [[0.0] * FEATURES]},
            headers=bearer(setup.keys["alice"]),
        )
        assert forbidden.status_code == 403
    await app.gw.close()
    text = "".join(p.read_text() for p in (tmp_path / "captures").rglob("*.jsonl"))
    assert len(text.splitlines()) == 1
    for secret in (setup.keys["alice"], "secret-cookie", "alice", "authorization", "999"):
        assert secret not in text.lower()


async def test_rows_are_sampled(tmp_path: Path) -> None:
    setup = _setup(tmp_path, sample=0.25)
    app = build_app(setup.config)
    async with client(app) as c:
        for i in range(0, 400, 40):
            rows = setup.X[i : i + 40].tolist()
            r = await c.post(
                "/v1/models/clf:predict", json={"instances": rows}, headers=bearer(setup.keys["bob"])
            )
            assert r.status_code == 200
    await app.gw.close()
    assert 40 <= len(_captured(tmp_path)["clf"]) <= 160  # 400 rows at 25%: 100 expected


async def test_the_background_thread_writes_without_a_shutdown(tmp_path: Path) -> None:
    import time

    setup = _setup(tmp_path, flush_interval_s=0.05)
    app = build_app(setup.config)
    async with client(app) as c:
        await c.post(
            "/v1/models/clf:predict",
            json={"instances": [setup.X[0].tolist()]},
            headers=bearer(setup.keys["alice"]),
        )
    deadline = time.monotonic() + 5
    while not list((tmp_path / "captures").rglob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(_captured(tmp_path)["clf"]) == 1
    await app.gw.close()


async def test_feature_names_are_checked(tmp_path: Path) -> None:
    X = write_models(tmp_path)
    models = base_config(tmp_path, X)["models"]
    models[0] |= {"feature_names": ["a", "prediction"]}
    with pytest.raises(ConfigError, match="prediction"):
        make_setup(tmp_path, models=models)
    models[0] |= {"feature_names": ["a", "b"]}  # the model takes 6: refused at load, with the reason
    setup = make_setup(tmp_path, models=models)
    gw = build_app(setup.config).gw
    assert "clf" in gw.refused and "feature_names" in gw.refused["clf"]
    await gw.close()

"""The Serve → Monitor hand-off end to end: the gateway captures the rows it serves, the monitor builds a
baseline from one period of that capture and checks later periods against it, naming the input that
drifted; the model's output is monitored beside its inputs."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from bastion.cli.app import cli
from bastion.gateway.app import build_app
from tests.gateway_helpers import Setup, base_config, bearer, client, make_setup, write_models

pytestmark = pytest.mark.anyio
NAMES = ["age", "tenure", "spend", "visits", "score", "region"]


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


def _setup(root: Path) -> Setup:
    X = write_models(root)
    doc = base_config(root, X)
    doc["models"][0] |= {"feature_names": NAMES, "capture": {"directory": "captures"}}
    plenty = {"capacity": 1_000_000, "per_second": 1_000}
    limits = {"identity": plenty, "identity_model": plenty, "failed_auth": doc["limits"]["failed_auth"]}
    return make_setup(root, models=doc["models"], limits=limits)


async def _serve(setup: Setup, rows: np.ndarray) -> str:
    """Serve ``rows`` (64 per request) through a fresh gateway, shut it down (the capture is flushed)
    and return the instant after, as the boundary of the next period."""
    app = build_app(setup.config)
    async with client(app) as c:
        for start in range(0, len(rows), 64):
            batch = rows[start : start + 64].tolist()
            r = await c.post(
                "/v1/models/clf:predict", json={"instances": batch}, headers=bearer(setup.keys["bob"])
            )
            assert r.status_code == 200, r.text
    await app.gw.close()
    time.sleep(0.01)  # the next period's first row is strictly later
    return dt.datetime.now(dt.UTC).isoformat()


def _monitor(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["monitor", *args, "--format", "json"])
    return result.exit_code, json.loads(result.output) if result.output.strip() else {}


async def test_captured_traffic_baselines_and_drift(tmp_path: Path) -> None:
    setup = _setup(tmp_path)
    X = setup.X
    captures, baseline = tmp_path / "captures", tmp_path / "baseline"
    t1 = await _serve(setup, X[:800])
    t2 = await _serve(setup, X[800:1400])
    shifted = X[1400:2000].copy()
    shifted[:, 2] += 3 * X[:, 2].std()  # "spend" moves by three standard deviations
    await _serve(setup, shifted)

    base = ["--capture", str(captures), "--model", "clf"]
    code, _ = _monitor("baseline", *base, "--until", t1, "--out", str(baseline))
    assert code == 0

    code, clean = _monitor("check", "--baseline", str(baseline), *base, "--since", t1, "--until", t2)
    assert (code, clean["status"]) == (0, "OK"), clean.get("violations")
    assert clean["rows"] == 600

    code, drifted = _monitor("check", "--baseline", str(baseline), *base, "--since", t2)
    assert (code, drifted["status"]) == (1, "ALARM")
    assert drifted["rows"] == 600
    assert "spend" in drifted["drifted_columns"]
    assert not {"age", "tenure", "visits"} & set(drifted["drifted_columns"])
    assert not any(name.startswith("_") for name in drifted["columns"])  # metadata is not a feature
    outputs = [name for name in drifted["columns"] if name.startswith("prediction")]
    assert outputs, sorted(drifted["columns"])  # the model's output is monitored beside its inputs

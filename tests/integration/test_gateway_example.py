"""examples/gateway works as its README says: the script makes both models, `bastion tokens create` issues
keys for the configured identities, and each identity gets exactly what its role grants."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from bastion.cli.app import cli
from bastion.gateway.app import build_app
from bastion.gateway.config import load_config
from tests.gateway_helpers import bearer, client

pytestmark = pytest.mark.anyio
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateway"


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gateway_example_models", EXAMPLE / "make_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_example_serves_two_models_to_identities_by_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_GATEWAY_SECRET", "example-secret-" + "x" * 32)
    work = tmp_path / "gateway"
    shutil.copytree(
        EXAMPLE, work, ignore=shutil.ignore_patterns("*.joblib", "*.json", "captures", "__pycache__")
    )
    data = _script().make_models(work)
    config_path = work / "bastion.yaml"

    runner = CliRunner()
    keys = {}
    for identity in ("web-app", "risk-service", "analyst", "auditor", "staging-bot"):
        result = runner.invoke(cli, ["tokens", "create", "--config", str(config_path), "-i", identity])
        assert result.exit_code == 0, result.output
        keys[identity] = result.stdout.strip().splitlines()[-1]
    listed = runner.invoke(cli, ["tokens", "list", "--config", str(config_path)])
    assert listed.exit_code == 0 and "web-app" in listed.output
    assert not any(key in listed.output for key in keys.values())  # keys are shown once, never listed

    app = build_app(load_config(config_path))
    churn_rows = data["churn"][:3].tolist()
    fraud_rows = data["fraud"][:3].tolist()

    async def predict(who: str, model: str, rows: list[list[float]]) -> tuple[int, object]:
        r = await c.post(f"/v1/models/{model}:predict", json={"instances": rows}, headers=bearer(keys[who]))
        return r.status_code, r.json()

    async with client(app) as c:
        status, body = await predict("web-app", "churn", churn_rows)
        assert status == 200
        assert isinstance(body, dict) and all(p in (0, 1) for p in body["predictions"])  # labels only
        assert (await predict("web-app", "fraud", fraud_rows))[0] == 403
        status, body = await predict("risk-service", "fraud", fraud_rows)
        assert status == 200 and isinstance(body, dict)
        assert {entry["label"] for row in body["predictions"] for entry in row} <= {"ok", "review", "block"}
        status, body = await predict("analyst", "churn", churn_rows)  # probabilities for the analyst
        assert status == 200 and isinstance(body, dict) and len(body["predictions"][0]) == 2
        assert (await predict("analyst", "fraud", fraud_rows))[0] == 200
        assert (await predict("auditor", "churn", churn_rows))[0] == 403
        assert (await predict("staging-bot", "churn", churn_rows))[0] == 403
        audit = await c.get("/admin/audit?limit=5", headers=bearer(keys["auditor"]))
        assert audit.status_code == 200
        assert (await c.get("/admin/audit?limit=5", headers=bearer(keys["web-app"]))).status_code == 403
    await app.gw.close()

    verified = runner.invoke(cli, ["audit", "verify", str(work / "audit.jsonl")])
    assert verified.exit_code == 0, verified.output
    assert list((work / "captures" / "churn").glob("*/*.jsonl"))  # served rows captured for the monitor

"""The monitor's gateway action end to end: an alarm that goes to ALARM blocks (or throttles) the model at a
real gateway served on a loopback port, and going back to OK restores it; the token stays in the
environment, and a failing action is recorded without stopping the others."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from bastion.errors import UsageError
from bastion.gateway.app import build_app
from bastion.gateway.model_state import ModelState
from bastion.monitor.actions import GatewayAction, gateway_reason, set_gateway_state
from bastion.monitor.alarms import AlarmConfig, AlarmState
from bastion.monitor.store import MonitorStore
from tests.gateway_helpers import Setup, bearer, free_port, serve_on_loopback
from tests.unit.test_gateway_model_state import setup_with_operator

TOKEN_ENV = "BASTION_TEST_GATEWAY_TOKEN"  # noqa: S105 - the name of an environment variable


@pytest.fixture()
def gateway(tmp_path: Path) -> Iterator[tuple[Setup, str]]:
    (tmp_path / "gw").mkdir()
    setup = setup_with_operator(tmp_path / "gw")
    with serve_on_loopback(build_app(setup.config)) as url:
        yield setup, url


def _predict(url: str, setup: Setup) -> httpx.Response:
    rows = {"instances": setup.X[:3].tolist()}
    return httpx.post(f"{url}/v1/models/clf:predict", json=rows, headers=bearer(setup.keys["alice"]))


def test_alarm_blocks_the_model_and_ok_restores_it(
    gateway: tuple[Setup, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup, url = gateway
    token = setup.keys["olga"]  # mlops-engineer: manage on clf in prod
    monkeypatch.setenv(TOKEN_ENV, token)
    store = MonitorStore(tmp_path / "monitor.db")
    action = GatewayAction(url, "clf", TOKEN_ENV)  # on_alarm block, on_ok normal
    store.put_alarm(AlarmConfig("churn-inputs", gateways=(action,)))
    assert _predict(url, setup).status_code == 200

    alarm = store.record("churn-inputs", "ALARM", {"rows": 500, "drifted_columns": ["tenure", "charges"]})
    assert alarm.state_after is AlarmState.ALARM
    [result] = alarm.actions
    assert (result.kind, result.ok, result.detail) == ("gateway", True, "HTTP 200: block")
    assert result.target == f"{url}/admin/models/clf/state"
    refused = _predict(url, setup)
    assert refused.status_code == 503 and refused.json()["error"] == "model-suspended"
    assert refused.json()["message"] == (
        "this model is suspended: alarm churn-inputs: ALARM (drifted: tenure, charges)"
    )
    meta = httpx.get(f"{url}/v1/models/clf", headers=bearer(setup.keys["bob"]))
    assert meta.status_code == 200  # metadata stays readable

    ok = store.record("churn-inputs", "OK", {"rows": 500, "drifted_columns": []})
    assert ok.state_after is AlarmState.OK and ok.actions[0].detail == "HTTP 200: normal"
    assert _predict(url, setup).status_code == 200

    events = setup.events("model-state")
    assert [(e["from"], e["to"], e["caller"]) for e in events] == [
        ("normal", "block", "olga"),
        ("block", "normal", "olga"),
    ]
    assert events[1]["reason"] == "alarm churn-inputs: OK"
    # the token lives only in the environment: not in the stored configuration or the recorded results
    assert token.encode() not in (tmp_path / "monitor.db").read_bytes()
    assert all(token not in a.detail for e in store.history("churn-inputs") for a in e.actions)
    assert [len(e.actions) for e in store.history("churn-inputs")] == [1, 1]


def test_throttle_on_alarm_with_a_factor(
    gateway: tuple[Setup, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup, url = gateway
    monkeypatch.setenv(TOKEN_ENV, setup.keys["olga"])
    action = GatewayAction(url, "clf", TOKEN_ENV, on_alarm=ModelState.THROTTLE, factor=20)
    store = MonitorStore(tmp_path / "monitor.db")
    store.put_alarm(AlarmConfig("a", gateways=(action,)))
    # INSUFFICIENT_DATA -> ALARM: throttled; the gateway answers labels only
    assert store.record("a", "ALARM", {"drifted_columns": ["x"]}).actions[0].detail == "HTTP 200: throttle"
    state = httpx.get(f"{url}/admin/models/clf/state", headers=bearer(setup.keys["olga"])).json()
    assert (state["state"], state["factor"]) == ("throttle", 20.0)
    labels = _predict(url, setup).json()["predictions"]
    assert all(isinstance(v, int) for v in labels)
    # ALARM -> INSUFFICIENT_DATA is a transition too, but not one the gateway action acts on
    evaluation = store.record("a", "INSUFFICIENT_DATA", {})
    assert evaluation.state_after is AlarmState.INSUFFICIENT_DATA
    assert [(a.ok, a.detail) for a in evaluation.actions] == [(True, "no change on INSUFFICIENT_DATA")]
    state = httpx.get(f"{url}/admin/models/clf/state", headers=bearer(setup.keys["olga"])).json()
    assert state["state"] == "throttle"
    assert [e["to"] for e in setup.events("model-state")] == ["throttle"]


def test_failing_gateway_actions_are_recorded_and_never_stop_the_others(
    gateway: tuple[Setup, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup, url = gateway
    monkeypatch.setenv(TOKEN_ENV, setup.keys["olga"])
    monkeypatch.setenv("BASTION_TEST_CONSUMER_TOKEN", setup.keys["alice"])
    monkeypatch.delenv("BASTION_TEST_UNSET_TOKEN", raising=False)
    actions = (
        GatewayAction(f"http://127.0.0.1:{free_port()}", "clf", TOKEN_ENV, timeout_s=2),  # nothing listens
        GatewayAction(url, "clf", "BASTION_TEST_UNSET_TOKEN"),
        GatewayAction(url, "clf", "BASTION_TEST_CONSUMER_TOKEN"),  # a model-consumer may not manage
        GatewayAction(url, "nope", TOKEN_ENV),
        GatewayAction("https://127.0.0.1:9", "clf", TOKEN_ENV, ca_file=str(tmp_path / "missing.pem")),
        GatewayAction(url, "clf", TOKEN_ENV),  # the one that works, last
    )
    store = MonitorStore(tmp_path / "monitor.db")
    store.put_alarm(AlarmConfig("b", gateways=actions))
    results = store.record("b", "ALARM", {"drifted_columns": ["x"]}).actions
    assert [r.ok for r in results] == [False, False, False, False, False, True]
    assert results[0].detail.startswith("unreachable")
    assert results[1].detail == "$BASTION_TEST_UNSET_TOKEN is not set"
    assert results[2].detail == "HTTP 403 forbidden"
    assert results[3].detail == "HTTP 404 unknown-model"
    assert results[4].detail.startswith("cannot read ca_file")
    assert _predict(url, setup).status_code == 503
    recorded = store.history("b")[-1].actions
    assert [(r.kind, r.ok, r.detail) for r in recorded] == [(r.kind, r.ok, r.detail) for r in results]


def test_gateway_action_validation() -> None:
    GatewayAction("https://gateway.example:8443/prefix/", "churn", "TOKEN")
    GatewayAction("http://localhost:8080", "churn", "TOKEN")
    GatewayAction("http://[::1]:8080", "churn", "TOKEN")
    assert (
        GatewayAction("https://g.example/", "churn", "T").endpoint
        == "https://g.example/admin/models/churn/state"
    )
    bad: list[dict[str, Any]] = [
        {"url": "http://gateway.example", "model": "m", "token_env": "T"},  # plain http off loopback
        {"url": "ftp://127.0.0.1", "model": "m", "token_env": "T"},
        {"url": "https://user:pw@g.example", "model": "m", "token_env": "T"},
        {"url": "https://g.example?token=x", "model": "m", "token_env": "T"},
        {"url": "https://g.example", "model": "../m", "token_env": "T"},
        {"url": "https://g.example", "model": "m", "token_env": "NOT-A-NAME"},
        {"url": "https://g.example", "model": "m", "token_env": "T", "on_alarm": "normal"},
        {"url": "https://g.example", "model": "m", "token_env": "T", "on_alarm": "pause"},
        {"url": "https://g.example", "model": "m", "token_env": "T", "timeout_s": 0},
        {"url": "https://g.example", "model": "m", "token_env": "T", "factor": 5},  # block: no factor
        {"url": "https://g.example", "model": "m", "token_env": "T", "on_alarm": "throttle", "factor": 0},
        {"url": "https://g.example", "model": "m", "token_env": "T", "token": "bst_secret"},  # unknown field
        {"url": "https://g.example", "model": "m"},
        {"url": "https://g.example", "model": "m", "token_env": "T", "timeout_s": True},
    ]
    for doc in bad:
        with pytest.raises(UsageError):
            GatewayAction.from_json(doc)
    wrapped = {
        "gateway": {
            "url": "http://127.0.0.1:8080",
            "model": "churn",
            "token_env": "T",
            "on_alarm": "throttle",
        }
    }
    action = GatewayAction.from_json(wrapped)
    assert action.on_alarm is ModelState.THROTTLE and GatewayAction.from_json(action.to_json()) == action


def test_reason_names_the_alarm_and_fits_the_gateway() -> None:
    assert gateway_reason({"alarm": "a", "new_state": "ALARM", "check": {}}) == "alarm a: ALARM"
    many = [f"feature_{i:03d}" for i in range(40)]
    text = gateway_reason({"alarm": "a", "new_state": "ALARM", "check": {"drifted_columns": many}})
    assert len(text) <= 200 and text.startswith("alarm a: ALARM (drifted: feature_000, ") and "more)" in text
    odd = gateway_reason({"alarm": "a", "new_state": "ALARM", "check": {"drifted_columns": ["x\ny"]}})
    assert odd == "alarm a: ALARM (drifted: x?y)" and odd.isprintable()


def test_other_transitions_change_nothing() -> None:
    action = GatewayAction("http://127.0.0.1:9", "m", "T")
    result = set_gateway_state(action, {"alarm": "a", "old_state": "OK", "new_state": "INSUFFICIENT_DATA"})
    assert result.ok and result.detail == "no change on INSUFFICIENT_DATA"


def test_cli_sets_and_lists_a_gateway_action(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.cli.monitor import monitor

    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "home"))
    spec = {"url": "http://127.0.0.1:8080", "model": "churn", "token_env": "BASTION_GATEWAY_TOKEN"}
    runner = CliRunner()
    created = runner.invoke(monitor, ["alarm-set", "inputs", "--gateway", json.dumps({"gateway": spec})])
    assert created.exit_code == 0, created.output
    listed = json.loads(runner.invoke(monitor, ["alarms", "--format", "json"]).output)
    [gateway] = listed["alarms"][0]["gateways"]
    assert gateway == {
        **spec,
        "on_alarm": "block",
        "on_ok": "normal",
        "timeout_s": 5.0,
        "ca_file": None,
        "factor": None,
    }
    insecure = runner.invoke(
        monitor, ["alarm-set", "x", "--gateway", json.dumps({**spec, "url": "http://g.example"})]
    )
    assert insecure.exit_code != 0 and "https" in insecure.output


def test_cli_reads_and_sets_a_models_state(
    gateway: tuple[Setup, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``bastion gateway state``: the same endpoint and client as the alarm action, by hand."""
    from bastion.cli.gateway import gateway as gateway_cli

    setup, url = gateway
    runner = CliRunner()
    monkeypatch.setenv("BASTION_GATEWAY_TOKEN", setup.keys["olga"])
    done = runner.invoke(gateway_cli, ["state", "clf", "block", "--reason", "incident 42", "--url", url])
    assert done.exit_code == 0, done.output
    answer = json.loads(done.output)
    assert (answer["model"], answer["state"], answer["previous"]) == ("clf", "block", "normal")
    assert _predict(url, setup).status_code == 503
    read = runner.invoke(gateway_cli, ["state", "clf", "--url", url])
    assert read.exit_code == 0 and json.loads(read.output)["reason"] == "incident 42"
    throttle = ["state", "clf", "throttle", "--reason", "r", "--factor", "50", "--url", url]
    assert json.loads(runner.invoke(gateway_cli, throttle).output)["factor"] == 50.0
    assert (
        runner.invoke(gateway_cli, ["state", "clf", "normal", "--reason", "over", "--url", url]).exit_code
        == 0
    )
    assert _predict(url, setup).status_code == 200
    assert setup.keys["olga"] not in done.output + read.output

    for args, message in (
        (["state", "clf", "block", "--url", url], "--reason is required"),
        (["state", "clf", "block", "--reason", "r", "--factor", "5", "--url", url], "--factor is for"),
        (["state", "clf", "--reason", "r", "--url", url], "go with a STATE"),
        (["state", "clf", "--url", "http://example.com"], "must use https"),
    ):
        result = runner.invoke(gateway_cli, args)
        assert result.exit_code != 0 and message in str(result.exception), (args, result.exception)
    monkeypatch.setenv("BASTION_GATEWAY_TOKEN", setup.keys["alice"])  # a consumer: may not manage
    refused = runner.invoke(gateway_cli, ["state", "clf", "block", "--reason", "r", "--url", url])
    assert refused.exit_code != 0 and "HTTP 403 forbidden" in str(refused.exception)
    monkeypatch.delenv("BASTION_GATEWAY_TOKEN")
    unset = runner.invoke(gateway_cli, ["state", "clf", "--url", url])
    assert "$BASTION_GATEWAY_TOKEN is not set" in str(unset.exception)

"""The alarm state machine, the recorded evaluations, and real webhook and command actions."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import UsageError
from bastion.monitor.actions import post_webhook, run_command, validate_webhook
from bastion.monitor.alarms import AlarmConfig, AlarmState, MissingData, evaluate
from bastion.monitor.store import MonitorStore

OK, ALARM, INSUFFICIENT = AlarmState.OK, AlarmState.ALARM, AlarmState.INSUFFICIENT_DATA


def _state(
    points: list[bool | None], m: int = 2, n: int = 3, policy: str = "missing", now: AlarmState = OK
) -> AlarmState:
    return evaluate(AlarmConfig("a", n, m, MissingData(policy)), points, now).state


def test_m_of_n() -> None:
    assert _state([True, False, True]) is ALARM
    assert _state([True, False, False]) is OK
    assert _state([True, True, False, False]) is OK  # only the last N=3 count
    assert _state([False, True, True]) is ALARM


def test_insufficient_data_until_enough_points() -> None:
    assert _state([]) is INSUFFICIENT
    assert _state([True]) is INSUFFICIENT  # 1 breach + 2 missing could still reach 2
    assert _state([False, False]) is OK  # 2 fine of 3: even a breaching third cannot reach 2
    assert _state([None, None, None]) is INSUFFICIENT


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("missing", INSUFFICIENT), ("ignore", ALARM), ("breaching", ALARM), ("not-breaching", OK)],
)
def test_missing_data_policies(policy: str, expected: AlarmState) -> None:
    assert _state([True, None, None], policy=policy, now=ALARM) is expected


def test_bad_alarm_configs_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="between 1 and"):
        AlarmConfig("a", evaluation_periods=2, datapoints_to_alarm=3)
    with pytest.raises(UsageError, match="name"):
        AlarmConfig("../etc")
    with pytest.raises(UsageError, match="http"):
        validate_webhook("file:///etc/passwd")


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []  # noqa: RUF012 - shared by the test server on purpose

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        status = 500 if self.path == "/fail" else 204
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver.received
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_reaches_a_real_server(receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = receiver
    result = post_webhook(url + "/hook", {"alarm": "x", "new_state": "ALARM"})
    assert result.ok and result.detail == "HTTP 204"
    assert received == [{"alarm": "x", "new_state": "ALARM"}]
    failed = post_webhook(url + "/fail", {"alarm": "x"})
    assert not failed.ok and failed.detail == "HTTP 500"


def test_unreachable_webhook_is_a_recorded_failure() -> None:
    result = post_webhook("http://127.0.0.1:9/nothing", {"a": 1}, timeout=2)
    assert not result.ok and "unreachable" in result.detail


def test_store_records_transitions_and_runs_actions(
    tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = receiver
    marker = tmp_path / "retrain.json"
    script = f"import os; open({str(marker)!r}, 'w').write(os.environ['BASTION_ALARM_STATE'])"
    hook = f'{sys.executable} -c "{script}"'
    store = MonitorStore(tmp_path / "monitor.db")
    store.put_alarm(AlarmConfig("drift", 3, 2, MissingData.MISSING, (url,), (hook,)))
    assert store.get_alarm("drift").state is INSUFFICIENT

    steps = [
        ("OK", INSUFFICIENT, 0),  # [-, -, ok]: two missing points could still breach
        ("OK", OK, 2),  # [-, ok, ok]: an alarm is now impossible -> webhook + command
        ("ALARM", OK, 0),  # [ok, ok, breach]
        ("ALARM", ALARM, 2),  # [ok, breach, breach] -> 2 of 3
        ("INSUFFICIENT_DATA", ALARM, 0),  # [breach, breach, -]
        ("INSUFFICIENT_DATA", INSUFFICIENT, 2),  # [breach, -, -]: undecidable
    ]
    for status, expected, actions in steps:
        evaluation = store.record("drift", status, {"rows": 100, "drifted_columns": ["x"]})
        assert evaluation.state_after is expected, (status, evaluation.reason)
        assert len(evaluation.actions) == actions and all(a.ok for a in evaluation.actions)
    assert marker.read_text() == "INSUFFICIENT_DATA"
    assert [r["new_state"] for r in received] == ["OK", "ALARM", "INSUFFICIENT_DATA"]
    assert received[1]["old_state"] == "OK" and received[1]["check"]["drifted_columns"] == ["x"]
    history = store.history("drift")
    assert [e.status for e in history] == [s for s, _, _ in steps]  # normal evaluations are recorded too
    assert [len(e.actions) for e in history] == [a for _, _, a in steps]
    assert store.list_alarms()[0].state is INSUFFICIENT


def test_command_hook_failure_is_recorded(tmp_path: Path) -> None:
    payload = {"alarm": "a", "new_state": "ALARM", "old_state": "OK", "reason": "r"}
    missing = run_command("definitely-not-a-command-bastion", payload)
    assert not missing.ok and "not found" in missing.detail
    failing = run_command(f'{sys.executable} -c "import sys; sys.exit(3)"', payload)
    assert not failing.ok and failing.detail.startswith("exit 3")


def test_unknown_alarm_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no alarm named"):
        MonitorStore(tmp_path / "m.db").record("nope", "OK", {})

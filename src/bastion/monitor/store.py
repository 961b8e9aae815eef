"""The monitor's record: alarms, every evaluation (normal ones too) and every action run, in SQLite.

The database lives at ``$BASTION_HOME/monitor.db`` (``~/.bastion`` by default). Recording an
evaluation appends a datapoint, re-evaluates the alarm (:mod:`bastion.monitor.alarms`) and, on a
state change, runs the alarm's actions and records their results, all in one call.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.core.home import bastion_home
from bastion.errors import InputError, UsageError
from bastion.monitor.actions import ActionResult, GatewayAction, post_webhook, run_command, set_gateway_state
from bastion.monitor.alarms import AlarmConfig, AlarmState, MissingData, evaluate

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alarms (
    name TEXT PRIMARY KEY, config TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alarm TEXT NOT NULL REFERENCES alarms(name) ON DELETE CASCADE,
    at TEXT NOT NULL, status TEXT NOT NULL, datapoint INTEGER, state_before TEXT NOT NULL,
    state_after TEXT NOT NULL, reason TEXT NOT NULL, summary TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_by_alarm ON evaluations(alarm, id);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    evaluation INTEGER NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,
    kind TEXT NOT NULL, target TEXT NOT NULL, ok INTEGER NOT NULL, detail TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class AlarmRecord:
    config: AlarmConfig
    state: AlarmState
    reason: str
    updated: str


@dataclass(frozen=True)
class Evaluation:
    id: int
    alarm: str
    at: str
    status: str  # the check's status: OK, ALARM or INSUFFICIENT_DATA
    datapoint: bool | None
    state_before: AlarmState
    state_after: AlarmState
    reason: str
    actions: tuple[ActionResult, ...] = ()

    @property
    def changed(self) -> bool:
        return self.state_before is not self.state_after


def _config_json(config: AlarmConfig) -> str:
    return json.dumps(
        {
            "evaluation_periods": config.evaluation_periods,
            "datapoints_to_alarm": config.datapoints_to_alarm,
            "missing_data": config.missing_data.value,
            "webhooks": list(config.webhooks),
            "commands": list(config.commands),
            "gateways": [g.to_json() for g in config.gateways],
        }
    )


def _config_from(name: str, text: str) -> AlarmConfig:
    data = json.loads(text)
    return AlarmConfig(
        name=name,
        evaluation_periods=int(data["evaluation_periods"]),
        datapoints_to_alarm=int(data["datapoints_to_alarm"]),
        missing_data=MissingData(data["missing_data"]),
        webhooks=tuple(data["webhooks"]),
        commands=tuple(data["commands"]),
        gateways=tuple(GatewayAction.from_json(g) for g in data.get("gateways", [])),
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


class MonitorStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or bastion_home() / "monitor.db"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise InputError(
                f"cannot open the monitor store {self.path}: {exc}",
                hint="set BASTION_HOME to a writable folder",
            ) from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            with db:
                yield db
        finally:
            db.close()

    def put_alarm(self, config: AlarmConfig) -> AlarmRecord:
        """Create an alarm (state INSUFFICIENT_DATA) or update its settings (state kept)."""
        with self._connect() as db:
            row = db.execute("SELECT state, reason FROM alarms WHERE name = ?", (config.name,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO alarms VALUES (?, ?, ?, ?, ?)",
                    (
                        config.name,
                        _config_json(config),
                        AlarmState.INSUFFICIENT_DATA.value,
                        "created",
                        _now(),
                    ),
                )
            else:
                db.execute("UPDATE alarms SET config = ? WHERE name = ?", (_config_json(config), config.name))
        return self.get_alarm(config.name)

    def get_alarm(self, name: str) -> AlarmRecord:
        with self._connect() as db:
            row = db.execute(
                "SELECT config, state, reason, updated FROM alarms WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            raise UsageError(f"no alarm named {name!r}", hint=f"create it: bastion monitor alarm-set {name}")
        return AlarmRecord(_config_from(name, row[0]), AlarmState(row[1]), row[2], row[3])

    def list_alarms(self) -> list[AlarmRecord]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT name, config, state, reason, updated FROM alarms ORDER BY name"
            ).fetchall()
        return [AlarmRecord(_config_from(r[0], r[1]), AlarmState(r[2]), r[3], r[4]) for r in rows]

    def delete_alarm(self, name: str) -> None:
        self.get_alarm(name)
        with self._connect() as db:
            db.execute("DELETE FROM alarms WHERE name = ?", (name,))

    def record(
        self,
        name: str,
        status: str,
        summary: dict[str, Any],
        *,
        webhook: Callable[[str, dict[str, Any]], ActionResult] = post_webhook,
        command: Callable[[str, dict[str, Any]], ActionResult] = run_command,
        gateway: Callable[[GatewayAction, dict[str, Any]], ActionResult] = set_gateway_state,
    ) -> Evaluation:
        """Record one evaluation of ``name`` (check status OK / ALARM / INSUFFICIENT_DATA) and act on it."""
        points = {"ALARM": True, "OK": False, "INSUFFICIENT_DATA": None}
        if status not in points:
            raise UsageError(f"unknown check status {status!r}")
        alarm = self.get_alarm(name)
        n = alarm.config.evaluation_periods
        with self._connect() as db:
            rows = db.execute(
                "SELECT datapoint FROM evaluations WHERE alarm = ? ORDER BY id DESC LIMIT ?", (name, n - 1)
            ).fetchall()
        history: list[bool | None] = [None if r[0] is None else bool(r[0]) for r in reversed(rows)]
        datapoint = points[status]
        decision = evaluate(alarm.config, [*history, datapoint], alarm.state)
        at = _now()
        results: list[ActionResult] = []
        if decision.state is not alarm.state:
            payload = {
                "alarm": name,
                "old_state": alarm.state.value,
                "new_state": decision.state.value,
                "reason": decision.reason,
                "at": at,
                "check": summary,
            }
            results += [webhook(url, payload) for url in alarm.config.webhooks]
            results += [command(cmd, payload) for cmd in alarm.config.commands]
            results += [gateway(g, payload) for g in alarm.config.gateways]
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO evaluations"
                " (alarm, at, status, datapoint, state_before, state_after, reason, summary)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    at,
                    status,
                    None if datapoint is None else int(datapoint),
                    alarm.state.value,
                    decision.state.value,
                    decision.reason,
                    json.dumps(summary, sort_keys=True),
                ),
            )
            evaluation_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT INTO actions (evaluation, kind, target, ok, detail) VALUES (?, ?, ?, ?, ?)",
                [(evaluation_id, r.kind, r.target, int(r.ok), r.detail) for r in results],
            )
            db.execute(
                "UPDATE alarms SET state = ?, reason = ?, updated = ? WHERE name = ?",
                (decision.state.value, decision.reason, at, name),
            )
        return Evaluation(
            evaluation_id,
            name,
            at,
            status,
            datapoint,
            alarm.state,
            decision.state,
            decision.reason,
            tuple(results),
        )

    def history(self, name: str, limit: int = 50) -> list[Evaluation]:
        self.get_alarm(name)
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, at, status, datapoint, state_before, state_after, reason FROM evaluations"
                " WHERE alarm = ? ORDER BY id DESC LIMIT ?",
                (name, limit),
            ).fetchall()
            actions: dict[int, list[ActionResult]] = {}
            for ev, kind, target, ok, detail in db.execute(
                "SELECT evaluation, kind, target, ok, detail FROM actions WHERE evaluation IN"
                " (SELECT id FROM evaluations WHERE alarm = ?) ORDER BY id",
                (name,),
            ):
                actions.setdefault(ev, []).append(ActionResult(kind, target, bool(ok), detail))
        return [
            Evaluation(
                r[0],
                name,
                r[1],
                r[2],
                None if r[3] is None else bool(r[3]),
                AlarmState(r[4]),
                AlarmState(r[5]),
                r[6],
                tuple(actions.get(r[0], [])),
            )
            for r in reversed(rows)
        ]

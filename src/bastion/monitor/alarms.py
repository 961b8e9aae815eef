"""Alarm state machine: OK / ALARM / INSUFFICIENT_DATA from the last N datapoints, M of which must breach.

Each evaluation of a monitor (one ``bastion monitor check --monitor NAME``) is one datapoint:
``True`` when it breached (the check said ALARM), ``False`` when it did not, ``None`` when the period
had no usable data (the check said INSUFFICIENT_DATA). Missing datapoints follow the alarm's policy,
named as in CloudWatch:

* ``missing``       missing points do not count; if the present ones cannot decide, INSUFFICIENT_DATA;
* ``ignore``        the same, but an undecidable window keeps the current state;
* ``breaching``     missing points count as breaching;
* ``not-breaching`` missing points count as fine.

The window decides ALARM when at least M points breach, OK when so many points are fine that even
breaching missing ones could not reach M, and is undecidable otherwise.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from bastion.errors import UsageError
from bastion.monitor.actions import GatewayAction


class AlarmState(enum.Enum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class MissingData(enum.Enum):
    MISSING = "missing"
    IGNORE = "ignore"
    BREACHING = "breaching"
    NOT_BREACHING = "not-breaching"


@dataclass(frozen=True)
class AlarmConfig:
    name: str
    evaluation_periods: int = 1  # N: how many recent datapoints are looked at
    datapoints_to_alarm: int = 1  # M: how many of them must breach
    missing_data: MissingData = MissingData.MISSING
    webhooks: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    gateways: tuple[GatewayAction, ...] = ()  # model states set at a Bastion gateway

    def __post_init__(self) -> None:
        if not self.name or not all(ch.isalnum() or ch in "-_." for ch in self.name):
            raise UsageError(f"alarm name {self.name!r} must be letters, digits, '-', '_' or '.'")
        if self.evaluation_periods < 1:
            raise UsageError("evaluation periods (N) must be at least 1")
        if not 1 <= self.datapoints_to_alarm <= self.evaluation_periods:
            raise UsageError(
                f"datapoints to alarm (M={self.datapoints_to_alarm}) must be between 1 and "
                f"the evaluation periods (N={self.evaluation_periods})"
            )


@dataclass(frozen=True)
class Decision:
    state: AlarmState
    reason: str


def evaluate(config: AlarmConfig, datapoints: Sequence[bool | None], current: AlarmState) -> Decision:
    """The alarm's new state from its datapoints (oldest first); only the last N are used."""
    n, m = config.evaluation_periods, config.datapoints_to_alarm
    padding: list[bool | None] = [None] * (n - len(datapoints[-n:]))
    window = padding + list(datapoints[-n:])
    policy = config.missing_data
    if policy is MissingData.BREACHING:
        window = [True if d is None else d for d in window]
    elif policy is MissingData.NOT_BREACHING:
        window = [False if d is None else d for d in window]
    breaching = sum(1 for d in window if d is True)
    fine = sum(1 for d in window if d is False)
    missing = n - breaching - fine
    summary = (
        f"{breaching} of the last {n} datapoints breaching ({fine} fine, {missing} missing; alarm at {m})"
    )
    if breaching >= m:
        return Decision(AlarmState.ALARM, summary)
    if breaching + missing < m:
        return Decision(AlarmState.OK, summary)
    if policy is MissingData.IGNORE:
        return Decision(current, summary + "; undecidable, state kept")
    return Decision(AlarmState.INSUFFICIENT_DATA, summary + "; undecidable")

"""Actions run when an alarm changes state: a webhook notification or a command hook.

Both return an :class:`ActionResult` that the store records; a failed action is a recorded result,
never a swallowed exception, and never stops the other actions. Webhooks POST a JSON document to an
``http``/``https`` URL (other schemes are refused); commands are split with ``shlex`` and run without
a shell, with the transition in ``BASTION_ALARM_*`` environment variables and the JSON document on
standard input.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from bastion.errors import UsageError

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ActionResult:
    kind: str  # "webhook" | "command"
    target: str
    ok: bool
    detail: str


def validate_webhook(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UsageError(f"webhook {url!r} must be an http:// or https:// URL")
    return url


def validate_command(command: str) -> str:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"command hook {command!r} cannot be parsed: {exc}") from None
    if not argv:
        raise UsageError("a command hook cannot be empty")
    return command


def post_webhook(url: str, payload: dict[str, Any], timeout: float = TIMEOUT_S) -> ActionResult:
    validate_webhook(url)
    body = json.dumps(payload, sort_keys=True).encode()
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "bastion-monitor"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return ActionResult("webhook", url, False, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        return ActionResult("webhook", url, False, f"unreachable: {getattr(exc, 'reason', exc)}")
    return ActionResult("webhook", url, 200 <= status < 300, f"HTTP {status}")


def run_command(command: str, payload: dict[str, Any], timeout: float = 60.0) -> ActionResult:
    argv = shlex.split(validate_command(command))
    env = dict(os.environ)
    env.update(
        BASTION_ALARM_NAME=str(payload["alarm"]),
        BASTION_ALARM_STATE=str(payload["new_state"]),
        BASTION_ALARM_PREVIOUS_STATE=str(payload["old_state"]),
        BASTION_ALARM_REASON=str(payload["reason"]),
    )
    try:
        done = subprocess.run(  # noqa: S603 - argv from the alarm's owner, no shell
            argv,
            input=json.dumps(payload).encode(),
            capture_output=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except FileNotFoundError:
        return ActionResult("command", command, False, f"command not found: {argv[0]}")
    except subprocess.TimeoutExpired:
        return ActionResult("command", command, False, f"timed out after {timeout:g} s")
    except OSError as exc:
        return ActionResult("command", command, False, f"could not start: {exc}")
    tail = (done.stderr or done.stdout).decode(errors="replace").strip()[-200:]
    return ActionResult(
        "command", command, done.returncode == 0, f"exit {done.returncode}" + (f": {tail}" if tail else "")
    )

"""Actions run when an alarm changes state: a webhook notification, a command hook, or a gateway state.

Each returns an :class:`ActionResult` that the store records; a failed action is a recorded result,
never a swallowed exception, and never stops the other actions. Webhooks POST a JSON document to an
``http``/``https`` URL (other schemes are refused); commands are split with ``shlex`` and run without
a shell, with the transition in ``BASTION_ALARM_*`` environment variables and the JSON document on
standard input. A :class:`GatewayAction` PUTs a model's state at a Bastion gateway
(``/admin/models/{name}/state``): ``on_alarm`` (block or throttle) on a transition to ALARM, ``on_ok``
on a transition to OK. Its bearer token is read from the named environment variable when it runs,
never stored or recorded; plain ``http`` is accepted only for a loopback host.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

from bastion.core.net import is_loopback_host
from bastion.errors import UsageError
from bastion.gateway.model_state import MAX_FACTOR, MAX_REASON, ModelState

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ActionResult:
    kind: str  # "webhook" | "command" | "gateway"
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


# -- the gateway action ------------------------------------------------------------------------------------

_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # the gateway's model-name pattern
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_GATEWAY_KEYS = frozenset(
    {"url", "model", "token_env", "on_alarm", "on_ok", "timeout_s", "ca_file", "factor"}
)


@dataclass(frozen=True)
class GatewayAction:
    """Set ``model``'s state at the gateway at ``url`` when the alarm goes to ALARM (``on_alarm``) or back to
    OK (``on_ok``), as an identity holding ``manage`` whose bearer token is in ``$token_env``."""

    url: str
    model: str
    token_env: str
    on_alarm: ModelState = ModelState.BLOCK
    on_ok: ModelState = ModelState.NORMAL
    timeout_s: float = 5.0
    ca_file: str | None = None
    factor: float | None = None  # the row cost when the state set is throttle (default: the gateway's, 10)

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise UsageError(f"gateway url {self.url!r} must be an https:// URL")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise UsageError("gateway url must not carry credentials, a query or a fragment")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise UsageError(
                f"gateway url {self.url!r} must use https (plain http only on a loopback address)"
            )
        if not _MODEL.match(self.model):
            raise UsageError(f"gateway model {self.model!r} is not a model name")
        if not _ENV.match(self.token_env):
            raise UsageError(f"token_env {self.token_env!r} must name an environment variable")
        if self.on_alarm is ModelState.NORMAL:
            raise UsageError("on_alarm must be block or throttle")
        if not 0 < self.timeout_s <= 60:
            raise UsageError("timeout_s must be more than 0 and at most 60 seconds")
        if self.factor is not None and not 1 <= self.factor <= MAX_FACTOR:
            raise UsageError(f"factor must be from 1 to {MAX_FACTOR:g}")
        if self.factor is not None and ModelState.THROTTLE not in (self.on_alarm, self.on_ok):
            raise UsageError("factor is for a throttle state")
        object.__setattr__(self, "url", self.url.rstrip("/"))

    @property
    def endpoint(self) -> str:
        return f"{self.url}/admin/models/{self.model}/state"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["on_alarm"], data["on_ok"] = self.on_alarm.value, self.on_ok.value
        return data

    @classmethod
    def from_json(cls, data: Any) -> GatewayAction:
        """From ``{"url", "model", "token_env", ...}`` or ``{"gateway": {...}}``; unknown fields refused."""
        if isinstance(data, dict) and data.keys() == {"gateway"}:
            data = data["gateway"]
        if not isinstance(data, dict):
            raise UsageError("a gateway action is a JSON object")
        unknown = sorted(data.keys() - _GATEWAY_KEYS)
        missing = sorted({"url", "model", "token_env"} - data.keys())
        if unknown or missing:
            raise UsageError(f"gateway action: unknown fields {unknown}, missing fields {missing}")
        try:
            return cls(
                url=_text(data["url"], "url"),
                model=_text(data["model"], "model"),
                token_env=_text(data["token_env"], "token_env"),
                on_alarm=ModelState(data.get("on_alarm", "block")),
                on_ok=ModelState(data.get("on_ok", "normal")),
                timeout_s=_number(data.get("timeout_s", 5.0), "timeout_s"),
                ca_file=None if data.get("ca_file") is None else _text(data["ca_file"], "ca_file"),
                factor=None if data.get("factor") is None else _number(data["factor"], "factor"),
            )
        except ValueError as exc:  # an unknown state
            raise UsageError(f"gateway action: {exc}; states are normal, throttle, block") from None


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"gateway action: {name} must be a non-empty string")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"gateway action: {name} must be a number")
    return float(value)


def parse_gateway_action(text: str) -> GatewayAction:
    """A gateway action from its JSON text (the CLI's ``--gateway``)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"gateway action is not JSON: {exc}") from None
    return GatewayAction.from_json(data)


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def gateway_reason(payload: dict[str, Any]) -> str:
    """``alarm NAME: STATE`` and the drifted features, within the gateway's 200 characters."""
    head = _printable(f"alarm {payload['alarm']}: {payload['new_state']}")
    check = payload.get("check")
    drifted = check.get("drifted_columns") if isinstance(check, dict) else None
    names = [_printable(str(c)) for c in drifted] if isinstance(drifted, list) else []
    if not names:
        return head[:MAX_REASON]
    for shown in range(len(names), 0, -1):
        rest = len(names) - shown
        text = f"{head} (drifted: {', '.join(names[:shown])}{f', +{rest} more' if rest else ''})"
        if len(text) <= MAX_REASON:
            return text
    return f"{head} ({len(names)} drifted features)"[:MAX_REASON]


def set_gateway_state(action: GatewayAction, payload: dict[str, Any]) -> ActionResult:
    """PUT the state the transition in ``payload`` asks for; any other transition changes nothing."""
    new_state = str(payload["new_state"])
    wanted = {"ALARM": action.on_alarm, "OK": action.on_ok}.get(new_state)
    if wanted is None:
        return ActionResult("gateway", action.endpoint, True, f"no change on {new_state}")
    body: dict[str, Any] = {"state": wanted.value, "reason": gateway_reason(payload)}
    if wanted is ModelState.THROTTLE and action.factor is not None:
        body["factor"] = action.factor
    result, _ = request_state(action, body)
    return result


def request_state(action: GatewayAction, body: dict[str, Any] | None) -> tuple[ActionResult, Any]:
    """PUT ``body`` to the model's state endpoint (GET it when ``body`` is None), as the identity whose token
    is in ``$token_env``; the outcome and the gateway's JSON answer (None when there is none)."""
    token = os.environ.get(action.token_env, "")
    if not token:
        return ActionResult("gateway", action.endpoint, False, f"${action.token_env} is not set"), None
    request = urllib.request.Request(  # noqa: S310 - scheme checked in GatewayAction
        action.endpoint,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "PUT",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "User-Agent": "bastion-monitor",
        },
    )
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]  # never through a proxy
    if action.url.startswith("https:"):
        try:
            context = ssl.create_default_context(cafile=action.ca_file)
        except (OSError, ssl.SSLError) as exc:
            return ActionResult("gateway", action.endpoint, False, f"cannot read ca_file: {exc}"), None
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)  # redirects of a PUT are refused by urllib, not followed
    try:
        with opener.open(request, timeout=action.timeout_s) as response:
            status = int(response.status)
            answer = _json_answer(response.read(65_536))
    except urllib.error.HTTPError as exc:
        return ActionResult("gateway", action.endpoint, False, f"HTTP {exc.code}{_error_code(exc)}"), None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return ActionResult("gateway", action.endpoint, False, f"unreachable: {reason}"), None
    what = "read" if body is None else body["state"]
    return ActionResult("gateway", action.endpoint, 200 <= status < 300, f"HTTP {status}: {what}"), answer


def _json_answer(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _error_code(exc: urllib.error.HTTPError) -> str:
    """The gateway's stable ``error`` code from a refusal's JSON body, if there is one."""
    try:
        code = json.loads(exc.read(4096)).get("error")
    except (ValueError, AttributeError, OSError):
        return ""
    return f" {code}" if isinstance(code, str) and _MODEL.match(code) else ""

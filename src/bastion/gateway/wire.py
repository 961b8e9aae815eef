"""Wire formats at the HTTP edge: strict JSON in, JSON errors out.

Strict JSON means: UTF-8 only, no duplicate keys, no ``NaN`` / ``Infinity``, no number that overflows to
infinity, integers of bounded length, bounded nesting. Anything else is a 400, decided before any model
sees it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from bastion.gateway.errors import HttpError

MAX_INT_DIGITS = 32
MAX_DEPTH = 32


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise HttpError(400, "duplicate-key", f"duplicate key {key[:64]!r} in JSON object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise HttpError(400, "non-finite-number", f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise HttpError(400, "non-finite-number", "number out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise HttpError(400, "number-too-long", "integer literal too long")
    return int(text)


def _depth(text: str) -> int:
    """Maximum bracket nesting, ignoring brackets inside strings (cheap, linear, before parsing)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def loads_strict(body: bytes) -> Any:
    """Parse ``body`` as strict JSON or raise ``HttpError(400)``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "malformed-json", "body is not UTF-8") from None
    if _depth(text) > MAX_DEPTH:
        raise HttpError(400, "malformed-json", f"JSON nested deeper than {MAX_DEPTH}")
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except json.JSONDecodeError as exc:
        raise HttpError(
            400, "malformed-json", f"malformed JSON at line {exc.lineno} column {exc.colno}"
        ) from None


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def error_body(status: int, code: str, message: str, request_id: str) -> bytes:
    return dumps({"error": code, "message": message, "status": status, "request_id": request_id})

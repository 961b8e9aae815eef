"""Canonical JSON: one byte string per value, so identical inputs give identical statements.

Members sorted, no insignificant whitespace, UTF-8, no floats (a float's text form is not canonical
across implementations, so we refuse them rather than sign something another tool re-encodes).
"""

from __future__ import annotations

import json
from typing import Any


def _check(value: Any, path: str) -> None:
    if isinstance(value, float):
        raise ValueError(f"floats are not allowed in signed JSON (at {path})")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"non-string key at {path}")
            _check(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]")


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON bytes (sorted members, compact, UTF-8)."""
    _check(value, "$")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

"""The hash chain behind Bastion's tamper-evident logs (gateway audit, secrets access audit).

Each record carries ``prev_hash`` and ``hash`` = sha256(prev_hash + canonical JSON of the record
without its ``hash``); ``bastion audit verify`` recomputes the chain.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS = "0" * 64


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def chain_hash(prev_hash: str, record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(body)).hexdigest()

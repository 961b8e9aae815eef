"""The hash chain behind Bastion's tamper-evident logs (gateway audit, secrets access audit).

Each record carries ``prev_hash`` and ``hash`` = sha256(prev_hash + canonical JSON of the record
without its ``hash``); ``bastion audit verify`` recomputes the chain.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import IO, Any

GENESIS = "0" * 64


# Built once: json.dumps with options builds a new encoder per call, and the gateway calls this per request.
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def canonical(record: dict[str, Any]) -> bytes:
    return _ENCODE(record).encode()


def chain_hash(prev_hash: str, record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(body)).hexdigest()


def last_link(handle: IO[bytes]) -> tuple[str, int]:
    """Where an append-only chain file continues: its last record's ``hash`` and the next ``seq``
    (``GENESIS``, 0 for an empty file). Reads only the file's tail. Raises ValueError when the last
    record is unreadable: a broken chain must not be continued."""
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    if size == 0:
        return GENESIS, 0
    handle.seek(max(0, size - 65536))
    lines = [line for line in handle.read().splitlines() if line.strip()]
    try:
        last = json.loads(lines[-1])
        return str(last["hash"]), int(last["seq"]) + 1
    except (ValueError, KeyError, IndexError, TypeError):
        raise ValueError("the last record of the chain is unreadable") from None

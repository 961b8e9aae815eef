"""The audit trail: one JSON Lines record per request (refused ones included) and per security event,
hash-chained so that an edited, inserted, reordered or removed record is detected.

    hash = sha256(prev_hash || canonical(record without "hash"))

``canonical`` is JSON with sorted keys, no spaces, UTF-8. The first record's ``prev_hash`` is 64 zeros, and
``seq`` counts from 0; a log reopened after a restart continues the chain from its last record. Each line
is the canonical record with its ``hash`` member appended (``{...,"hash":"..."}``): encoded once, hashed,
written. Truncating the tail cannot be seen from the file alone: anchor the latest ``hash`` elsewhere.
Credentials are never written: callers pass identities, not tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bastion.core.chain import GENESIS, canonical, chain_hash, last_link
from bastion.errors import InputError

ACCESS_FIELDS = (
    "requestId",
    "ip",
    "caller",
    "user",
    "requestTime",
    "httpMethod",
    "resourcePath",
    "status",
    "protocol",
    "responseLength",
)


_second: tuple[int, str] = (-1, "")


def utc_now() -> str:
    """The current UTC time as ISO 8601 with milliseconds (``2026-01-31T12:00:00.123Z``); the formatted
    second is cached, so this costs one clock read per call."""
    global _second  # a one-entry cache; swapping the tuple is atomic
    now = time.time()
    whole = int(now)
    cached, text = _second
    if cached != whole:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = (whole, text)
    return f"{text}.{int((now - whole) * 1000):03d}Z"


class AuditSink(Protocol):
    """Where records go: ``AuditLog`` (JSON Lines) or ``audit_sql.SqlAuditLog`` (SQLite, PostgreSQL)."""

    def append(self, record: dict[str, Any]) -> dict[str, Any]: ...
    def recent(self, limit: int) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


class AuditLog:
    """Append-only, hash-chained JSON Lines file. Thread-safe; flushes every record."""

    def __init__(self, path: Path, *, fsync: bool = False, keep: int = 1000) -> None:
        self.path = path
        self.fsync = fsync
        self._lock = threading.Lock()
        self._recent: deque[dict[str, Any]] = deque(maxlen=keep)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._prev, self._seq = self._tail()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._handle = os.fdopen(fd, "ab")

    def _tail(self) -> tuple[str, int]:
        """Continue the chain: the last record's hash and next sequence number."""
        if not self.path.exists():
            return GENESIS, 0
        try:
            with self.path.open("rb") as handle:
                return last_link(handle)
        except ValueError:
            raise InputError(
                f"{self.path}: the last audit record is unreadable; refusing to continue a broken chain",
                hint="run `bastion audit verify` on it and move it aside",
            ) from None

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            entry = dict(record)
            entry.pop("hash", None)
            entry["seq"] = self._seq
            entry["prev_hash"] = prev = self._prev
            body = canonical(entry)  # encoded once: hashed, then written with the hash appended
            digest = hashlib.sha256(prev.encode("ascii") + body).hexdigest()
            entry["hash"] = digest
            self._handle.write(b'%s,"hash":"%s"}\n' % (body[:-1], digest.encode("ascii")))
            self._handle.flush()
            if self.fsync:
                os.fsync(self._handle.fileno())
            self._prev, self._seq = digest, self._seq + 1
            self._recent.append(entry)
            return entry

    def recent(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._recent)[-limit:]

    def close(self) -> None:
        """Flush and close; closing twice (the lifespan and the owner both do) is harmless."""
        with self._lock:
            if self._handle.closed:
                return
            self._handle.flush()
            self._handle.close()


@dataclass(frozen=True)
class ChainProblem:
    line: int
    detail: str


@dataclass(frozen=True)
class ChainReport:
    path: str
    records: int
    problems: tuple[ChainProblem, ...]
    last_hash: str

    @property
    def ok(self) -> bool:
        return not self.problems


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        with path.open("rb") as handle:
            yield from enumerate(handle, start=1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def verify_chain(path: Path, *, max_problems: int = 20) -> ChainReport:
    """Recompute every link. A problem names the first line where the chain breaks and why."""
    prev, expected_seq, count = GENESIS, 0, 0
    problems: list[ChainProblem] = []
    for number, raw in _lines(path):
        if len(problems) >= max_problems:
            break
        if not raw.strip():
            problems.append(ChainProblem(number, "blank line inside the log"))
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            problems.append(ChainProblem(number, "not JSON"))
            continue
        if not isinstance(record, dict) or not isinstance(record.get("hash"), str):
            problems.append(ChainProblem(number, "not an audit record (no hash)"))
            continue
        count += 1
        if record.get("seq") != expected_seq:
            problems.append(
                ChainProblem(
                    number,
                    f"sequence {record.get('seq')!r} where {expected_seq} was expected "
                    "(a record was removed, inserted or reordered)",
                )
            )
        if record.get("prev_hash") != prev:
            problems.append(ChainProblem(number, "prev_hash does not match the previous record's hash"))
        if chain_hash(str(record.get("prev_hash")), record) != record["hash"]:
            problems.append(ChainProblem(number, "hash does not match the record's content (edited)"))
        prev = record["hash"]
        expected_seq = (record["seq"] if isinstance(record.get("seq"), int) else expected_seq) + 1
    return ChainReport(str(path), count, tuple(problems), prev)

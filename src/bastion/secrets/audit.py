"""The secrets audit trail: one JSON Lines record per access, successful or not, never a value.

    {"time", "action", "name", "caller", "outcome", "reason"?, "version"?, "program"?, "pid",
     "seq", "prev_hash", "hash"}

Records are hash-chained exactly like the gateway's audit log
(``hash = sha256(prev_hash || canonical(record without "hash"))``, first ``prev_hash`` 64 zeros), so
``bastion audit verify $BASTION_HOME/secrets/audit.jsonl`` detects an edited, removed or reordered
record. Appends from concurrent processes are serialised with an exclusive lock on the file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from bastion.core.chain import canonical, chain_hash, last_link
from bastion.secrets.errors import StoreFormatError


def caller() -> str:
    """The OS user running Bastion (from the process's uid where the platform has one)."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, AttributeError):
        try:
            return getpass.getuser()
        except OSError:
            return "unknown"


@contextlib.contextmanager
def _locked(handle: IO[bytes]) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: appends are still whole lines, the chain may fork under races
        yield
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _tail(handle: IO[bytes], path: Path) -> tuple[str, int]:
    try:
        return last_link(handle)
    except ValueError:
        raise StoreFormatError(
            f"{path}: the last audit record is unreadable; refusing to continue a broken chain",
            hint="run `bastion audit verify` on it and move it aside",
        ) from None


class AuditLog:
    """Append-only, hash-chained record of every secrets access."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(
        self,
        action: str,
        name: str | None,
        outcome: str,
        *,
        reason: str | None = None,
        **details: str | int,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "action": action,
            "name": name,
            "caller": caller(),
            "outcome": outcome,
            "pid": os.getpid(),
        }
        if reason is not None:
            entry["reason"] = reason
        entry.update(details)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+b") as handle, _locked(handle):
            prev, seq = _tail(handle, self.path)
            entry["seq"], entry["prev_hash"] = seq, prev
            entry["hash"] = chain_hash(prev, entry)
            handle.write(canonical(entry) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        return entry

    def records(self) -> list[dict[str, Any]]:
        """Every record, oldest first (for tests and `bastion secrets audit`)."""
        if not self.path.exists():
            return []
        out = []
        for number, line in enumerate(self.path.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise StoreFormatError(f"{self.path}:{number}: not a JSON audit record") from None
            if not isinstance(record, dict):
                raise StoreFormatError(f"{self.path}:{number}: not a JSON audit record")
            out.append(record)
        return out

"""The encrypted local secrets store under ``$BASTION_HOME/secrets/`` (default ``~/.bastion/secrets``)::

    store.json     the store: scrypt parameters, a key check, and per secret its versions, each one
                   sealed with its own data key (see ``bastion.secrets.envelope``); mode 0600
    store.lock     serialises writers
    audit.jsonl    every set / get / run / rotate / delete / passphrase change, success or failure

Names, version numbers and dates are readable without the passphrase (``list``); values never are.
Every operation that touches a value is written to the audit log before the value is handed out,
and an audit record that cannot be written stops the operation (fail closed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.core.home import bastion_home
from bastion.errors import BastionError
from bastion.secrets import envelope
from bastion.secrets.audit import AuditLog
from bastion.secrets.errors import (
    SecretNameError,
    SecretNotFoundError,
    SecretsPassphraseError,
    StoreFormatError,
)

PASSPHRASE_ENV = "BASTION_SECRETS_PASSPHRASE"  # noqa: S105 - the name of a variable, not a secret
MAX_VALUE_BYTES = 64 * 1024
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Variables that change how the child program itself is found or loaded: a store must not set them.
_REFUSED_NAMES = frozenset(
    {PASSPHRASE_ENV, "PATH", "HOME", "SHELL", "IFS", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"}
    | {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "NODE_OPTIONS", "PERL5LIB", "RUBYLIB", "BASH_ENV"}
)


def check_name(name: str) -> None:
    """A secret name is an environment-variable name (it is injected as one), 1-128 characters."""
    if not _NAME.match(name):
        raise SecretNameError(
            f"invalid secret name {name!r}: letters, digits and '_', not starting with a digit, 1-128 "
            "characters (it becomes an environment variable)"
        )
    if name in _REFUSED_NAMES or name.startswith("DYLD_"):
        raise SecretNameError(f"{name!r} cannot be a secret name: it changes how programs are loaded")


def check_value(value: str) -> bytes:
    raw = value.encode("utf-8")
    if not raw:
        raise BastionError("refusing to store an empty secret")
    if b"\0" in raw:
        raise BastionError("a secret cannot contain a NUL byte (it could not be an environment variable)")
    if len(raw) > MAX_VALUE_BYTES:
        raise BastionError(f"a secret is limited to {MAX_VALUE_BYTES} bytes")
    return raw


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class VersionInfo:
    version: int
    created: str


@dataclass(frozen=True)
class SecretInfo:
    """What ``list`` shows: never a value."""

    name: str
    versions: tuple[VersionInfo, ...]

    @property
    def current(self) -> VersionInfo:
        return self.versions[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "current_version": self.current.version,
            "versions": [{"version": v.version, "created": v.created} for v in self.versions],
        }


class SecretStore:
    """Create, read, rotate and delete secrets; every access is audited."""

    def __init__(self, root: Path | None = None, *, scrypt_n: int = envelope.SCRYPT_N) -> None:
        self.root = root or bastion_home() / "secrets"
        self.path = self.root / "store.json"
        self.audit = AuditLog(self.root / "audit.jsonl")
        self.scrypt_n = scrypt_n

    # --- reading without the passphrase -------------------------------------------------------

    def exists(self) -> bool:
        return self.path.exists()

    def list(self) -> tuple[SecretInfo, ...]:
        if not self.exists():
            return ()
        doc = self._load()
        return tuple(self._info(name, doc) for name in sorted(doc["secrets"]))

    def info(self, name: str) -> SecretInfo:
        check_name(name)
        return self._info(name, self._load())

    # --- operations on values (audited) -------------------------------------------------------

    def set(self, name: str, value: str, passphrase: str) -> VersionInfo:
        """Store a new secret (version 1); creates the store, with this passphrase, if there is none."""
        with self.audited("set", name) as note:
            check_name(name)
            raw = check_value(value)
            with self._write_lock():
                doc = self._load() if self.exists() else self._new_doc(passphrase)
                master = self._unlock(doc, passphrase)
                if name in doc["secrets"]:
                    raise BastionError(
                        f"a secret named {name!r} exists", hint=f"use `bastion secrets rotate {name}`"
                    )
                version = self._add_version(doc, master, name, raw)
                self._save(doc)
            note["version"] = version.version
            return version

    def rotate(self, name: str, value: str, passphrase: str) -> VersionInfo:
        """Add a new version; the previous ones stay readable (``get --version``) until deleted."""
        with self.audited("rotate", name) as note:
            check_name(name)
            raw = check_value(value)
            with self._write_lock():
                doc = self._load()
                master = self._unlock(doc, passphrase)
                self._entry(doc, name)
                version = self._add_version(doc, master, name, raw)
                self._save(doc)
            note["version"] = version.version
            return version

    def get(self, name: str, passphrase: str, *, version: int | None = None) -> str:
        with self.audited("get", name) as note:
            value, number = self._read(self._load(), name, passphrase, version)
            note["version"] = number
        return value

    def environment(self, passphrase: str, names: Sequence[str] = (), *, program: str = "") -> dict[str, str]:
        """Current values of ``names`` (all secrets when empty), for injection into one process.

        Audited as ``run``, one record per secret (and one for a failure), with the program's name.
        """
        with self.audited("run", ",".join(names) or "*", program=program, record_success=False):
            doc = self._load()
            wanted = list(dict.fromkeys(names)) or sorted(doc["secrets"])
            for name in wanted:
                check_name(name)
                self._entry(doc, name)
            master = self._unlock(doc, passphrase)
        out: dict[str, str] = {}
        for name in wanted:
            with self.audited("run", name, program=program) as note:
                out[name], note["version"] = self._read(doc, name, passphrase, None, master=master)
        return out

    def delete(self, name: str, passphrase: str, *, version: int | None = None, old: bool = False) -> int:
        """Delete a secret (every version), one ``version``, or (``old``) all but the current one.

        Returns how many versions were removed. Needs the passphrase, so that only its holders can.
        """
        with self.audited("delete", name) as note:
            check_name(name)
            with self._write_lock():
                doc = self._load()
                self._unlock(doc, passphrase)
                versions = self._entry(doc, name)["versions"]
                if version is not None:
                    keep = [v for v in versions if v["version"] != version]
                    if len(keep) == len(versions):
                        raise SecretNotFoundError(f"secret {name!r} has no version {version}")
                elif old:
                    keep = versions[-1:]
                else:
                    keep = []
                removed = len(versions) - len(keep)
                if keep:
                    doc["secrets"][name]["versions"] = keep
                else:
                    del doc["secrets"][name]
                self._save(doc)
            note["removed"] = removed
            if version is not None:
                note["version"] = version
            return removed

    def change_passphrase(self, passphrase: str, new_passphrase: str) -> int:
        """Re-wrap every data key under a master key from ``new_passphrase`` (values untouched)."""
        with self.audited("passphrase", None) as note:
            with self._write_lock():
                doc = self._load()
                master = self._unlock(doc, passphrase)
                kdf = envelope.new_kdf(self.scrypt_n)
                new_master = envelope.derive_master(new_passphrase, kdf)
                count = 0
                for name, entry in doc["secrets"].items():
                    for v in entry["versions"]:
                        envelope.rewrap(master, new_master, name, v["version"], v)
                        count += 1
                doc["kdf"], doc["check"] = kdf.to_dict(), envelope.make_check(new_master)
                self._save(doc)
            note["rewrapped"] = count
            return count

    # --- internals ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def audited(
        self, action: str, name: str | None, *, record_success: bool = True, **details: str | int
    ) -> Iterator[dict[str, Any]]:
        """Record the outcome of the block; a failure is recorded with its (value-free) message.

        The CLI also wraps what it does before calling the store (asking for the passphrase or the
        value) with ``record_success=False``, so a refused attempt is audited too.
        """
        note: dict[str, Any] = dict(details)
        try:
            yield note
        except BastionError as exc:
            self.audit.record(action, name, "failure", reason=exc.message, **note)
            raise
        if record_success:
            self.audit.record(action, name, "success", **note)

    def _new_doc(self, passphrase: str) -> dict[str, Any]:
        kdf = envelope.new_kdf(self.scrypt_n)
        master = envelope.derive_master(passphrase, kdf)
        return {
            "format": envelope.FORMAT,
            "kdf": kdf.to_dict(),
            "check": envelope.make_check(master),
            "secrets": {},
        }

    def _load(self) -> dict[str, Any]:
        if not self.exists():
            raise SecretNotFoundError(
                f"there is no secrets store at {self.root}", hint="create it with `bastion secrets set NAME`"
            )
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreFormatError(f"cannot read the secrets store {self.path}: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != envelope.FORMAT:
            raise StoreFormatError(f"{self.path} is not a {envelope.FORMAT} secrets store")
        secrets = doc.get("secrets")
        if not isinstance(secrets, dict):
            raise StoreFormatError(f"{self.path}: 'secrets' is not an object")
        for name, entry in secrets.items():
            versions = entry.get("versions") if isinstance(entry, dict) else None
            if not _NAME.match(str(name)) or not isinstance(versions, list) or not versions:
                raise StoreFormatError(f"{self.path}: malformed entry {str(name)[:64]!r}")
            for v in versions:
                if not isinstance(v, dict) or not isinstance(v.get("version"), int):
                    raise StoreFormatError(f"{self.path}: malformed version of {name!r}")
        return doc

    def _unlock(self, doc: dict[str, Any], passphrase: str) -> bytes:
        if not passphrase:
            raise SecretsPassphraseError(
                "the secrets store needs a passphrase", hint=f"set {PASSPHRASE_ENV} or run on a terminal"
            )
        master = envelope.derive_master(passphrase, envelope.KdfParams.from_dict(doc.get("kdf")))
        envelope.verify_check(master, doc.get("check"))
        return master

    @staticmethod
    def _entry(doc: dict[str, Any], name: str) -> dict[str, Any]:
        entry: dict[str, Any] | None = doc["secrets"].get(name)
        if entry is None:
            raise SecretNotFoundError(
                f"no secret named {name!r}", hint="list them with `bastion secrets list`"
            )
        return entry

    def _info(self, name: str, doc: dict[str, Any]) -> SecretInfo:
        versions = self._entry(doc, name)["versions"]
        return SecretInfo(name, tuple(VersionInfo(v["version"], str(v.get("created", ""))) for v in versions))

    def _read(
        self,
        doc: dict[str, Any],
        name: str,
        passphrase: str,
        version: int | None,
        *,
        master: bytes | None = None,
    ) -> tuple[str, int]:
        check_name(name)
        if master is None:
            master = self._unlock(doc, passphrase)
        versions = self._entry(doc, name)["versions"]
        chosen = (
            versions[-1] if version is None else next((v for v in versions if v["version"] == version), None)
        )
        if chosen is None:
            raise SecretNotFoundError(f"secret {name!r} has no version {version}")
        raw = envelope.open_value(master, name, chosen["version"], chosen)
        try:
            return raw.decode("utf-8"), int(chosen["version"])
        except UnicodeDecodeError:
            raise StoreFormatError(f"secret {name!r} does not decrypt to UTF-8 text") from None

    def _add_version(self, doc: dict[str, Any], master: bytes, name: str, raw: bytes) -> VersionInfo:
        versions = doc["secrets"].setdefault(name, {"versions": []})["versions"]
        number = max((v["version"] for v in versions), default=0) + 1
        created = _now()
        versions.append(
            {"version": number, "created": created, **envelope.seal_value(master, name, number, raw)}
        )
        return VersionInfo(number, created)

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.root / "store.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                import fcntl
            except ImportError:  # not POSIX: single writer assumed
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _save(self, doc: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".store.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

"""Signing keys: the keyring under ``BASTION_HOME``, its trust file, and each key's lifecycle.

Layout under ``BASTION_HOME`` (default ``~/.bastion``)::

    trust.json            every known public key: name, id, algorithm, status, expiry, scopes;
                          optionally signed by a pinned root key (see ``bastion.evidence.trustsig``)
    keys/<key-id>.key     our own private keys, sealed: scrypt + AES-256-GCM bound to the key id, mode 0600

A key id is the SHA-256 of the key's SubjectPublicKeyInfo PEM, hex: the same value OpenSSF
model-signing writes as the bundle's ``publicKey.hint``, so one identifier works in both tools.
Statuses: ``active`` (signs and verifies), ``retired`` (replaced by ``keys rotate``: verifies old
evidence, no longer signs), ``disabled`` (compromised or revoked: nothing it signed verifies).
``enable`` undoes a mistaken ``disable``, but never brings back a key whose name has moved on to
another active key. ``export_private`` writes a private key only encrypted: PKCS#8 PEM under PBES2
(PBKDF2-HMAC-SHA256, ``EXPORT_PBKDF2_ROUNDS`` rounds, AES-256-CBC), which OpenSSL and
``cryptography`` open, to a new file of mode 0600.

Key material (generation, key ids, sealing and reading keys) is in ``bastion.evidence.keymaterial``,
the encrypted export in ``bastion.evidence.pkcs8``; their public names are importable from here too.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.core.home import bastion_home
from bastion.errors import UsageError
from bastion.evidence.errors import KeyNotFoundError, PassphraseError, TrustFileError
from bastion.evidence.keymaterial import SCRYPT_N as SCRYPT_N
from bastion.evidence.keymaterial import SEALED_FORMAT as SEALED_FORMAT
from bastion.evidence.keymaterial import KeyAlgorithm as KeyAlgorithm
from bastion.evidence.keymaterial import algorithm_of as algorithm_of
from bastion.evidence.keymaterial import compute_key_id as compute_key_id
from bastion.evidence.keymaterial import encrypt_private_key as encrypt_private_key
from bastion.evidence.keymaterial import generate_private_key as generate_private_key
from bastion.evidence.keymaterial import is_encrypted as is_encrypted
from bastion.evidence.keymaterial import load_private_key as load_private_key
from bastion.evidence.keymaterial import load_public_key as load_public_key
from bastion.evidence.keymaterial import public_pem as public_pem
from bastion.evidence.pkcs8 import EXPORT_PBKDF2_ROUNDS as EXPORT_PBKDF2_ROUNDS
from bastion.evidence.pkcs8 import encrypted_pkcs8_pem as encrypted_pkcs8_pem

if TYPE_CHECKING:
    from bastion.evidence.keymaterial import PrivateKey as PrivateKey
    from bastion.evidence.keymaterial import PublicKey as PublicKey
    from bastion.evidence.signers import Signer
    from bastion.evidence.trustsig import TrustSignature

TRUST_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SCOPES = ("*", "dir", "file", "env", "git", "image", "trust")  # trust: signs only the trust file


class KeyStatus(enum.Enum):
    ACTIVE = "active"
    RETIRED = "retired"
    DISABLED = "disabled"


home = bastion_home  # where keys, the trust file and the store live


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class KeyInfo:
    """One public key Bastion knows, and what it is trusted for."""

    name: str
    key_id: str
    algorithm: KeyAlgorithm
    public_pem: str
    created: str
    status: KeyStatus = KeyStatus.ACTIVE
    expires: str | None = None
    scopes: tuple[str, ...] = ("*",)
    has_private: bool = False

    @property
    def short_id(self) -> str:
        return self.key_id[:16]

    def expired(self, at: dt.datetime) -> bool:
        return self.expires is not None and at >= _parse_iso(self.expires)

    def allows(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key_id": self.key_id,
            "algorithm": self.algorithm.value,
            "public_key": self.public_pem,
            "created": self.created,
            "status": self.status.value,
            "expires": self.expires,
            "scopes": list(self.scopes),
            "has_private": self.has_private,
        }

    @classmethod
    def from_dict(cls, data: Any) -> KeyInfo:
        if not isinstance(data, dict):
            raise TrustFileError("a trust file entry is not an object")
        known = {"name", "key_id", "algorithm", "public_key", "created", "status", "expires", "scopes"}
        unknown = set(data) - known - {"has_private"}
        if unknown:
            raise TrustFileError(f"unknown fields in trust file entry: {sorted(unknown)}")
        try:
            info = cls(
                name=str(data["name"]),
                key_id=str(data["key_id"]),
                algorithm=KeyAlgorithm(data["algorithm"]),
                public_pem=str(data["public_key"]),
                created=str(data["created"]),
                status=KeyStatus(data.get("status", "active")),
                expires=data.get("expires"),
                scopes=tuple(str(s) for s in data.get("scopes", ["*"])),
                has_private=bool(data.get("has_private", False)),
            )
            if info.expires is not None:
                _parse_iso(info.expires)
        except (KeyError, ValueError, TypeError) as exc:
            raise TrustFileError(f"malformed trust file entry: {exc}") from None
        if compute_key_id(info.public_pem.encode()) != info.key_id:
            raise TrustFileError(f"trust file entry {info.name!r}: key id does not match its public key")
        return info


# --- the keyring and trust file --------------------------------------------------------------------


class Keyring:
    """Our keys and the public keys we trust, under one ``BASTION_HOME``."""

    def __init__(
        self, root: Path | None = None, *, trust_root: str | None = None, check_signature: bool = True
    ) -> None:
        """``trust_root``: the key id of the root that must have signed the trust file (default
        ``$BASTION_TRUST_ROOT``; unset: an unsigned trust file is accepted, see ``trustsig``).
        ``check_signature=False`` only for ``keys trust sign``, which reads the file it re-signs."""
        from bastion.evidence.trustsig import pinned_root

        self.root = root or home()
        self.trust_path = self.root / "trust.json"
        self.keys_dir = self.root / "keys"
        self.trust_root = pinned_root(trust_root)
        self._check_signature = check_signature

    # reading
    def _raw(self) -> dict[str, Any] | None:
        """The parsed trust file, its signature not yet checked; None when there is none."""
        if not self.trust_path.exists():
            return None
        try:
            data = json.loads(self.trust_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TrustFileError(f"cannot read the trust file {self.trust_path}: {exc}") from None
        if (
            not isinstance(data, dict)
            or data.get("version") != TRUST_VERSION
            or not isinstance(data.get("keys"), list)
        ):
            raise TrustFileError(f"{self.trust_path} is not a version-{TRUST_VERSION} Bastion trust file")
        return data

    def entries(self) -> tuple[KeyInfo, ...]:
        """Every key in the trust file, once its signature (if any, or if required) verified."""
        data = self._raw()
        if data is None:
            return ()
        if self._check_signature:
            from bastion.evidence.trustsig import check_trust_signature

            check_trust_signature(data, self.trust_root, str(self.trust_path))
        return tuple(KeyInfo.from_dict(entry) for entry in data["keys"])

    def trust_signature(self) -> TrustSignature | None:
        """Who signed the trust file (None: unsigned and allowed to be); raises if it does not verify."""
        from bastion.evidence.trustsig import check_trust_signature

        data = self._raw()
        if data is None:
            return None
        return check_trust_signature(data, self.trust_root, str(self.trust_path))

    def sign_trust(self, signer: Signer) -> TrustSignature:
        """Sign the trust file as it is with ``signer`` (the pinned root, when one is pinned)."""
        from bastion.evidence.trustsig import check_trust_signature, sign_trust_data

        data = self._raw()
        if data is None:
            raise TrustFileError(f"there is no trust file at {self.trust_path} to sign")
        for entry in data["keys"]:
            KeyInfo.from_dict(entry)  # never sign a malformed entry
        signed = sign_trust_data(data, signer, self.trust_root)
        self._write_raw(signed)
        result = check_trust_signature(signed, self.trust_root, str(self.trust_path))
        assert result is not None
        return result

    def find(self, name_or_id: str) -> KeyInfo:
        """The active key of that name, else the key whose id (or id prefix >= 8) matches."""
        entries = self.entries()
        by_name = [e for e in entries if e.name == name_or_id]
        active = [e for e in by_name if e.status is KeyStatus.ACTIVE]
        if active:
            return active[-1]
        if by_name:
            return by_name[-1]
        if len(name_or_id) >= 8:
            by_id = [e for e in entries if e.key_id.startswith(name_or_id.lower())]
            if len(by_id) == 1:
                return by_id[0]
        raise KeyNotFoundError(
            f"no key named {name_or_id!r} in {self.trust_path}", hint="list them with `bastion keys list`"
        )

    def by_id(self, key_id: str) -> KeyInfo | None:
        return next((e for e in self.entries() if e.key_id == key_id), None)

    def private_key_path(self, info: KeyInfo) -> Path:
        return self.keys_dir / f"{info.key_id}.key"

    def load_private(self, name: str, passphrase: str | None) -> tuple[KeyInfo, PrivateKey]:
        info = self.find(name)
        path = self.private_key_path(info)
        if not info.has_private or not path.exists():
            raise KeyNotFoundError(f"key {info.name!r} ({info.short_id}) has no private key here")
        return info, load_private_key(path.read_bytes(), passphrase, source=f"{info.name!r}")

    # writing
    def _write(self, entries: tuple[KeyInfo, ...]) -> None:
        """Write the keys; any signature is dropped (it no longer matches): re-sign afterwards."""
        self._write_raw({"version": TRUST_VERSION, "keys": [e.to_dict() for e in entries]})

    def _write_raw(self, payload: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.trust_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.trust_path)

    def generate(
        self,
        name: str,
        passphrase: str,
        *,
        algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256,
        expires_in_days: int | None = None,
        scopes: tuple[str, ...] = ("*",),
        scrypt_n: int = SCRYPT_N,
        replace_active: bool = False,
    ) -> KeyInfo:
        _check_name(name)
        _check_scopes(scopes)
        entries = self.entries()
        if not replace_active and any(e.name == name and e.status is KeyStatus.ACTIVE for e in entries):
            raise UsageError(f"an active key named {name!r} exists", hint="use `bastion keys rotate`")
        key = generate_private_key(algorithm)
        pem = public_pem(key)
        created = now_utc()
        info = KeyInfo(
            name=name,
            key_id=compute_key_id(pem),
            algorithm=algorithm,
            public_pem=pem.decode(),
            created=iso(created),
            expires=iso(created + dt.timedelta(days=expires_in_days)) if expires_in_days else None,
            scopes=scopes,
            has_private=True,
        )
        encrypted = encrypt_private_key(key, passphrase, scrypt_n=scrypt_n)
        self.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.private_key_path(info)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(encrypted)
        if replace_active:
            entries = tuple(
                replace(e, status=KeyStatus.RETIRED) if e.name == name and e.status is KeyStatus.ACTIVE else e
                for e in entries
            )
        self._write((*entries, info))
        return info

    def rotate(self, name: str, passphrase: str, **options: Any) -> tuple[KeyInfo, KeyInfo]:
        old = self.find(name)
        if old.status is not KeyStatus.ACTIVE:
            raise UsageError(f"key {name!r} has no active version to rotate")
        options.setdefault("algorithm", old.algorithm)
        options.setdefault("scopes", old.scopes)
        new = self.generate(name, passphrase, replace_active=True, **options)
        return replace(old, status=KeyStatus.RETIRED), new

    def enable(self, name_or_id: str) -> KeyInfo:
        """Make a disabled key active again; refused for keys that were never disabled, and for one
        whose name has another active key now (it was rotated out or replaced: stays disabled)."""
        entries = self.entries()
        disabled = [e for e in entries if e.name == name_or_id and e.status is KeyStatus.DISABLED]
        if len(disabled) > 1:
            ids = ", ".join(e.short_id for e in disabled)
            raise UsageError(
                f"{len(disabled)} disabled keys are named {name_or_id!r} ({ids})",
                hint="name one by its key id",
            )
        target = disabled[0] if disabled else self.find(name_or_id)
        if target.status is KeyStatus.RETIRED:
            raise UsageError(
                f"key {target.name!r} ({target.short_id}) was retired by rotation, not disabled; "
                "it still verifies what it signed and is not brought back to sign",
            )
        if target.status is KeyStatus.ACTIVE:
            raise UsageError(f"key {target.name!r} ({target.short_id}) is not disabled")
        successor = next((e for e in entries if e.name == target.name and e.status is KeyStatus.ACTIVE), None)
        if successor is not None:
            raise UsageError(
                f"key {target.name!r} ({target.short_id}) has been replaced by the active key "
                f"{successor.short_id}; a rotated-out or replaced key is not re-enabled",
                hint=f"disable {successor.short_id} first if the old key is to be the active one again",
            )
        return self.set_status(target.key_id, KeyStatus.ACTIVE)

    def export_private(
        self, name_or_id: str, passphrase: str | None, export_passphrase: str, output: Path
    ) -> KeyInfo:
        """Write the private key to ``output`` (a new file, mode 0600) as encrypted PKCS#8 PEM."""
        info = self.find(name_or_id)
        if info.status is KeyStatus.DISABLED:
            raise UsageError(
                f"key {info.name!r} ({info.short_id}) is disabled (compromised or revoked): not exported",
                hint="if it was disabled by mistake, `bastion keys enable` it first",
            )
        if output.exists() or output.is_symlink():
            raise UsageError(f"{output} exists; refusing to overwrite it")
        if not export_passphrase:
            raise PassphraseError("refusing to export a private key without a passphrase to encrypt it under")
        info, key = self.load_private(info.key_id, passphrase)
        pem = encrypted_pkcs8_pem(key, export_passphrase)
        try:
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            raise UsageError(f"{output} exists; refusing to overwrite it") from None
        except OSError as exc:
            raise UsageError(f"cannot create {output}: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
        except OSError:
            output.unlink(missing_ok=True)
            raise
        return info

    def set_status(self, name_or_id: str, status: KeyStatus) -> KeyInfo:
        target = self.find(name_or_id)
        updated = replace(target, status=status)
        self._write(tuple(updated if e.key_id == target.key_id else e for e in self.entries()))
        return updated

    def import_public(
        self, name: str, pem: bytes, *, scopes: tuple[str, ...] = ("*",), expires: str | None = None
    ) -> KeyInfo:
        _check_name(name)
        _check_scopes(scopes)
        key = load_public_key(pem, source=f"public key for {name!r}")
        canonical = public_pem(key)
        key_id = compute_key_id(canonical)
        if self.by_id(key_id) is not None:
            raise UsageError(f"key {key_id[:16]} is already in the trust file")
        if expires is not None:
            try:
                _parse_iso(expires)
            except ValueError:
                raise UsageError(f"--expires must look like 2030-01-31T00:00:00Z, not {expires!r}") from None
        info = KeyInfo(
            name=name,
            key_id=key_id,
            algorithm=algorithm_of(key),
            public_pem=canonical.decode(),
            created=iso(now_utc()),
            expires=expires,
            scopes=scopes,
        )
        self._write((*self.entries(), info))
        return info


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise UsageError(f"invalid key name {name!r}: letters, digits, '.', '_' and '-', 1-64 characters")


def _check_scopes(scopes: tuple[str, ...]) -> None:
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise UsageError(f"invalid scopes {bad or '(none)'}: choose from {', '.join(SCOPES)}")

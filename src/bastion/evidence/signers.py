"""Signers behind one interface, chosen by URI, so a KMS or PKCS#11 signer can be added later.

    NAME / key:NAME    a key from the keyring under BASTION_HOME (passphrase-protected)
    file:PATH          a PEM private key file (PKCS#8, encrypted or not)
    env:VAR            a PEM private key held in an environment variable

ECDSA P-256 signatures are deterministic (RFC 6979) and DER-encoded, as OpenSSF model-signing writes
them; Ed25519 is deterministic by design. So the same key and statement always give the same bundle.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.errors import UsageError
from bastion.evidence.errors import KeyNotFoundError
from bastion.evidence.keys import (
    KeyAlgorithm,
    Keyring,
    KeyStatus,
    algorithm_of,
    compute_key_id,
    is_encrypted,
    load_private_key,
    public_pem,
)

if TYPE_CHECKING:
    from bastion.evidence.keys import PrivateKey, PublicKey

PassphraseProvider = Callable[[str], str | None]
"""Called with a description of the key; returns its passphrase (or None)."""


class Signer(abc.ABC):
    """Signs bytes with one key; knows that key's id and public half."""

    @property
    @abc.abstractmethod
    def key_id(self) -> str: ...

    @property
    @abc.abstractmethod
    def algorithm(self) -> KeyAlgorithm: ...

    @property
    @abc.abstractmethod
    def public_pem(self) -> bytes: ...

    @abc.abstractmethod
    def sign(self, data: bytes) -> bytes: ...


class LocalKeySigner(Signer):
    """A private key held in this process's memory."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self._algorithm = algorithm_of(key)
        self._public_pem = public_pem(key)

    @property
    def key_id(self) -> str:
        return compute_key_id(self._public_pem)

    @property
    def algorithm(self) -> KeyAlgorithm:
        return self._algorithm

    @property
    def public_pem(self) -> bytes:
        return self._public_pem

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(data)
        return self._key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))

    def __repr__(self) -> str:  # never show key material
        return f"LocalKeySigner({self._algorithm.value}, {self.key_id[:16]})"


def verify_signature(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` is a valid signature of ``data`` by ``key``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def signer_from_uri(uri: str, passphrase: PassphraseProvider, *, keyring: Keyring | None = None) -> Signer:
    """Build the signer ``uri`` names (see the module docstring)."""
    scheme, sep, rest = uri.partition(":")
    if sep and scheme == "file":
        path = Path(rest).expanduser()
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise KeyNotFoundError(f"cannot read the private key file {path}: {exc.strerror}") from None
        return LocalKeySigner(load_private_key(pem, _maybe(pem, passphrase, str(path)), source=str(path)))
    if sep and scheme == "env":
        value = os.environ.get(rest)
        if not value:
            raise KeyNotFoundError(f"environment variable {rest!r} holds no private key")
        pem = value.encode()
        return LocalKeySigner(load_private_key(pem, _maybe(pem, passphrase, f"${rest}"), source=f"${rest}"))
    if sep and scheme not in ("key",):
        raise UsageError(f"unknown signer URI scheme {scheme!r}", hint="use NAME, file:PATH or env:VAR")
    name = rest if sep else uri
    ring = keyring or Keyring()
    info = ring.find(name)
    if info.status is not KeyStatus.ACTIVE:
        raise UsageError(f"key {info.name!r} ({info.short_id}) is {info.status.value} and cannot sign")
    _, key = ring.load_private(info.key_id, passphrase(f"key {info.name!r}"))
    return LocalKeySigner(key)


def _maybe(blob: bytes, passphrase: PassphraseProvider, source: str) -> str | None:
    return passphrase(source) if is_encrypted(blob) else None

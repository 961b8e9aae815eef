"""Envelope encryption for the secrets store.

    master key  = scrypt(passphrase, salt; N, r=8, p=1)                      32 bytes, never stored
    check       = AES-256-GCM(master key, "bastion-secrets-v1 key check")   tells a wrong passphrase apart
    data key    = 32 random bytes, one per secret version
    wrapped key = AES-256-GCM(master key, data key;  aad = name, version, "data-key")
    ciphertext  = AES-256-GCM(data key,  value;     aad = name, version, "value")

Binding the name and version into both AADs means a ciphertext moved to another secret or version
fails authentication instead of decrypting under the wrong name. Changing the passphrase only
re-wraps the data keys; values are never re-encrypted.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from bastion.secrets.errors import SecretsIntegrityError, SecretsPassphraseError, StoreFormatError

FORMAT = "bastion-secrets-v1"
SCRYPT_N = 2**17  # 128 MiB, ~0.3 s: OWASP guidance for scrypt (N=2^17, r=8, p=1)
_CHECK = b"bastion-secrets-v1 key check"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise StoreFormatError(f"the secrets store is malformed: {what} is not base64") from None


@dataclass(frozen=True)
class KdfParams:
    salt: bytes
    n: int = SCRYPT_N
    r: int = 8
    p: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"name": "scrypt", "n": self.n, "r": self.r, "p": self.p, "salt": b64(self.salt)}

    @classmethod
    def from_dict(cls, data: Any) -> KdfParams:
        if not isinstance(data, dict) or data.get("name") != "scrypt":
            raise StoreFormatError("the secrets store names an unknown key-derivation function")
        try:
            n, r, p = int(data["n"]), int(data["r"]), int(data["p"])
        except (KeyError, TypeError, ValueError):
            raise StoreFormatError("the secrets store has malformed scrypt parameters") from None
        if not (2**14 <= n <= 2**22 and n & (n - 1) == 0 and r == 8 and 1 <= p <= 4):
            raise StoreFormatError(f"scrypt parameters out of range (n={n}, r={r}, p={p})")
        salt = unb64(data.get("salt"), "the salt")
        if len(salt) < 16:
            raise StoreFormatError("the secrets store's salt is too short")
        return cls(salt=salt, n=n, r=r, p=p)


def new_kdf(n: int = SCRYPT_N) -> KdfParams:
    return KdfParams(salt=os.urandom(16), n=n)


def derive_master(passphrase: str, kdf: KdfParams) -> bytes:
    if not passphrase:
        raise SecretsPassphraseError("an empty passphrase would leave the secrets unprotected")
    return Scrypt(salt=kdf.salt, length=32, n=kdf.n, r=kdf.r, p=kdf.p).derive(passphrase.encode("utf-8"))


def make_check(master: bytes) -> dict[str, str]:
    nonce = os.urandom(12)
    return {"nonce": b64(nonce), "ciphertext": b64(AESGCM(master).encrypt(nonce, _CHECK, FORMAT.encode()))}


def verify_check(master: bytes, check: Any) -> None:
    if not isinstance(check, dict):
        raise StoreFormatError("the secrets store has no key check")
    nonce = unb64(check.get("nonce"), "the key check nonce")
    sealed = unb64(check.get("ciphertext"), "the key check")
    try:
        ok = AESGCM(master).decrypt(nonce, sealed, FORMAT.encode()) == _CHECK
    except (InvalidTag, ValueError):
        ok = False
    if not ok:
        raise SecretsPassphraseError(
            "wrong passphrase for the secrets store (or its key check was altered)",
            hint="the passphrase comes from BASTION_SECRETS_PASSPHRASE or the prompt",
        )


def _aad(name: str, version: int, part: str) -> bytes:
    return f"{FORMAT}\0{name}\0{version}\0{part}".encode()


def seal_value(master: bytes, name: str, version: int, value: bytes) -> dict[str, str]:
    """Encrypt one value under a fresh data key, and wrap that key with the master key."""
    data_key = AESGCM.generate_key(bit_length=256)
    key_nonce, nonce = os.urandom(12), os.urandom(12)
    return {
        "wrapped_key": b64(AESGCM(master).encrypt(key_nonce, data_key, _aad(name, version, "data-key"))),
        "key_nonce": b64(key_nonce),
        "nonce": b64(nonce),
        "ciphertext": b64(AESGCM(data_key).encrypt(nonce, value, _aad(name, version, "value"))),
    }


def open_value(master: bytes, name: str, version: int, sealed: dict[str, Any]) -> bytes:
    """Unwrap the data key and decrypt; any altered byte (or a moved ciphertext) is an integrity error."""
    try:
        wrapped = unb64(sealed["wrapped_key"], "a wrapped data key")
        key_nonce = unb64(sealed["key_nonce"], "a key nonce")
        nonce = unb64(sealed["nonce"], "a nonce")
        ciphertext = unb64(sealed["ciphertext"], "a ciphertext")
    except KeyError as exc:
        raise StoreFormatError(f"secret {name!r} version {version} lacks {exc}") from None
    try:
        data_key = AESGCM(master).decrypt(key_nonce, wrapped, _aad(name, version, "data-key"))
        return AESGCM(data_key).decrypt(nonce, ciphertext, _aad(name, version, "value"))
    except (InvalidTag, ValueError):
        raise SecretsIntegrityError(
            f"secret {name!r} version {version} failed authentication: the store was altered or corrupted",
            hint="restore $BASTION_HOME/secrets/store.json from a backup, or set the secret again",
        ) from None


def rewrap(old_master: bytes, new_master: bytes, name: str, version: int, sealed: dict[str, Any]) -> None:
    """Re-wrap one data key under a new master key (in place); the value ciphertext is untouched."""
    aad = _aad(name, version, "data-key")
    try:
        data_key = AESGCM(old_master).decrypt(
            unb64(sealed["key_nonce"], "a key nonce"), unb64(sealed["wrapped_key"], "a wrapped key"), aad
        )
    except (InvalidTag, ValueError, KeyError):
        raise SecretsIntegrityError(
            f"the data key of secret {name!r} version {version} failed authentication"
        ) from None
    key_nonce = os.urandom(12)
    sealed["key_nonce"] = b64(key_nonce)
    sealed["wrapped_key"] = b64(AESGCM(new_master).encrypt(key_nonce, data_key, aad))

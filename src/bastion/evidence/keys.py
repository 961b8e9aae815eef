"""Signing keys: generation, encryption at rest, key ids, and the trust file.

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
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.core.home import bastion_home
from bastion.errors import UsageError
from bastion.evidence.errors import KeyNotFoundError, PassphraseError, TrustFileError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey, EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from bastion.evidence.signers import Signer
    from bastion.evidence.trustsig import TrustSignature

    PrivateKey = EllipticCurvePrivateKey | Ed25519PrivateKey
    PublicKey = EllipticCurvePublicKey | Ed25519PublicKey

TRUST_VERSION = 1
SCRYPT_N = 2**17  # 128 MiB, ~0.3 s: OWASP guidance for scrypt (N=2^17, r=8, p=1)
SEALED_FORMAT = "bastion-sealed-key-v1"
EXPORT_PBKDF2_ROUNDS = 600_000  # OWASP guidance for PBKDF2-HMAC-SHA256 (OpenSSL's default is 2,048)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SCOPES = ("*", "dir", "file", "env", "git", "image", "trust")  # trust: signs only the trust file


class KeyAlgorithm(enum.Enum):
    ECDSA_P256 = "ecdsa-p256"
    ED25519 = "ed25519"


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


# --- key material ---------------------------------------------------------------------------------


def generate_private_key(algorithm: KeyAlgorithm) -> PrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if algorithm is KeyAlgorithm.ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def public_pem(key: PrivateKey | PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    public = (
        key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) else key
    )
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def compute_key_id(pem: bytes) -> str:
    return hashlib.sha256(pem).hexdigest()


def algorithm_of(key: PrivateKey | PublicKey) -> KeyAlgorithm:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return KeyAlgorithm.ED25519
    if (
        isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey)
        and key.curve.name == "secp256r1"
    ):
        return KeyAlgorithm.ECDSA_P256
    raise UsageError("unsupported key type: Bastion signs with ECDSA P-256 or Ed25519")


def encrypt_private_key(key: PrivateKey, passphrase: str, *, scrypt_n: int = SCRYPT_N) -> bytes:
    """Seal a private key: scrypt(passphrase) -> AES-256-GCM over its PKCS#8 DER, bound to its key id."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    if not passphrase:
        raise PassphraseError("an empty passphrase would leave the private key unprotected")
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt, nonce = os.urandom(16), os.urandom(12)
    secret = Scrypt(salt=salt, length=32, n=scrypt_n, r=8, p=1).derive(passphrase.encode("utf-8"))
    key_id = compute_key_id(public_pem(key))
    sealed = AESGCM(secret).encrypt(nonce, der, key_id.encode())
    envelope = {
        "format": SEALED_FORMAT,
        "key_id": key_id,
        "kdf": {"name": "scrypt", "n": scrypt_n, "r": 8, "p": 1, "salt": base64.b64encode(salt).decode()},
        "cipher": "aes-256-gcm",
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    return (json.dumps(envelope, indent=2) + "\n").encode()


def _unseal(blob: bytes, passphrase: str | None, source: str) -> bytes:
    import base64
    import binascii

    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    try:
        envelope = json.loads(blob)
        kdf = envelope["kdf"]
        if (
            envelope["format"] != SEALED_FORMAT
            or kdf["name"] != "scrypt"
            or envelope["cipher"] != "aes-256-gcm"
        ):
            raise ValueError("unknown format")
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        if not (2**14 <= n <= 2**22 and r == 8 and 1 <= p <= 4):
            raise ValueError("scrypt parameters out of range")
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(envelope["nonce"], validate=True)
        sealed = base64.b64decode(envelope["ciphertext"], validate=True)
        key_id = str(envelope["key_id"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise KeyNotFoundError(f"{source} is not a Bastion sealed private key: {exc}") from None
    if not passphrase:
        raise PassphraseError(
            f"the private key {source} is encrypted and no passphrase was given",
            hint="set BASTION_KEY_PASSPHRASE or run interactively to be prompted",
        )
    secret = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))
    try:
        return AESGCM(secret).decrypt(nonce, sealed, key_id.encode())
    except InvalidTag:
        raise PassphraseError(
            f"wrong passphrase for the private key {source} (or the file was altered)"
        ) from None


def load_private_key(blob: bytes, passphrase: str | None, *, source: str) -> PrivateKey:
    """Open a Bastion sealed key or a PEM (PKCS#8 / traditional, encrypted or not) private key."""
    from cryptography.hazmat.primitives import serialization

    if blob.lstrip().startswith(b"{"):
        der = _unseal(blob, passphrase, source)
        key = serialization.load_der_private_key(der, None)
        algorithm_of(key)  # type: ignore[arg-type]
        return key  # type: ignore[return-value]
    encrypted = is_encrypted(blob)
    if encrypted and not passphrase:
        raise PassphraseError(
            f"the private key {source} is encrypted and no passphrase was given",
            hint="set BASTION_KEY_PASSPHRASE or run interactively to be prompted",
        )
    try:
        key = serialization.load_pem_private_key(
            blob, passphrase.encode() if encrypted and passphrase else None
        )
    except ValueError as exc:
        if encrypted:
            raise PassphraseError(f"wrong passphrase for the private key {source}") from None
        raise KeyNotFoundError(f"{source} is not a PEM private key: {exc}") from None
    except TypeError as exc:
        raise PassphraseError(f"cannot open the private key {source}: {exc}") from None
    algorithm_of(key)  # type: ignore[arg-type]
    return key  # type: ignore[return-value]


def is_encrypted(blob: bytes) -> bool:
    """Whether opening this private key needs a passphrase."""
    head = blob.lstrip()[:200]
    return (
        head.startswith(b"{") or b"ENCRYPTED" in head.split(b"\n", 1)[0] or b"Proc-Type: 4,ENCRYPTED" in head
    )


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


_OID_PBES2 = bytes.fromhex("06092a864886f70d01050d")  # 1.2.840.113549.1.5.13
_OID_PBKDF2 = bytes.fromhex("06092a864886f70d01050c")  # 1.2.840.113549.1.5.12
_OID_HMAC_SHA256 = bytes.fromhex("06082a864886f70d0209")  # 1.2.840.113549.2.9
_OID_AES256_CBC = bytes.fromhex("060960864801650304012a")  # 2.16.840.1.101.3.4.1.42


def encrypted_pkcs8_pem(key: PrivateKey, passphrase: str, *, rounds: int = EXPORT_PBKDF2_ROUNDS) -> bytes:
    """The private key as an ``ENCRYPTED PRIVATE KEY`` PEM (RFC 5958 / RFC 8018 PBES2).

    Written here rather than with ``BestAvailableEncryption``, whose PBKDF2 runs OpenSSL's 2,048
    rounds: far too few for a key that leaves the machine."""
    import base64

    from cryptography.hazmat.primitives import hashes, padding, serialization
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    if not passphrase:
        raise PassphraseError("refusing to export a private key without a passphrase to encrypt it under")
    plain = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt, iv = os.urandom(16), os.urandom(16)
    secret = PBKDF2HMAC(hashes.SHA256(), 32, salt, rounds).derive(passphrase.encode("utf-8"))
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
    sealed = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    integer = _der(0x02, rounds.to_bytes((rounds.bit_length() + 8) // 8, "big"))
    prf = _der(0x30, _OID_HMAC_SHA256 + b"\x05\x00")
    kdf = _der(0x30, _OID_PBKDF2 + _der(0x30, _der(0x04, salt) + integer + prf))
    scheme = _der(0x30, _OID_AES256_CBC + _der(0x04, iv))
    algorithm = _der(0x30, _OID_PBES2 + _der(0x30, kdf + scheme))
    der = _der(0x30, algorithm + _der(0x04, sealed))
    text = base64.b64encode(der).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return (
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
        + "\n".join(lines)
        + "\n-----END ENCRYPTED PRIVATE KEY-----\n"
    ).encode()


def load_public_key(pem: bytes, *, source: str) -> PublicKey:
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise KeyNotFoundError(f"{source} is not a PEM public key: {exc}") from None
    algorithm_of(key)  # type: ignore[arg-type]
    return key  # type: ignore[return-value]


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

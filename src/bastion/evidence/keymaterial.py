"""Key material: generating signing keys, their ids, and reading and sealing private and public keys.

Bastion signs with ECDSA P-256 or Ed25519. A key id is the SHA-256 of the key's SubjectPublicKeyInfo PEM,
hex. Our own private keys are sealed at rest (``SEALED_FORMAT``: scrypt + AES-256-GCM over the PKCS#8 DER,
bound to the key id); PEM private keys (PKCS#8 or traditional, encrypted or not) are read as well.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from typing import TYPE_CHECKING

from bastion.errors import UsageError
from bastion.evidence.errors import KeyNotFoundError, PassphraseError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey, EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    PrivateKey = EllipticCurvePrivateKey | Ed25519PrivateKey
    PublicKey = EllipticCurvePublicKey | Ed25519PublicKey

SCRYPT_N = 2**17  # 128 MiB, ~0.3 s: OWASP guidance for scrypt (N=2^17, r=8, p=1)
SEALED_FORMAT = "bastion-sealed-key-v1"


class KeyAlgorithm(enum.Enum):
    ECDSA_P256 = "ecdsa-p256"
    ED25519 = "ed25519"


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


def load_public_key(pem: bytes, *, source: str) -> PublicKey:
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise KeyNotFoundError(f"{source} is not a PEM public key: {exc}") from None
    algorithm_of(key)  # type: ignore[arg-type]
    return key  # type: ignore[return-value]

"""Exporting a private key encrypted: PKCS#8 PEM under PBES2 (RFC 5958 / RFC 8018).

PBKDF2-HMAC-SHA256 with ``EXPORT_PBKDF2_ROUNDS`` rounds and AES-256-CBC, which OpenSSL and ``cryptography``
open. The DER is written here because ``BestAvailableEncryption`` runs only OpenSSL's 2,048 rounds.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from bastion.evidence.errors import PassphraseError

if TYPE_CHECKING:
    from bastion.evidence.keymaterial import PrivateKey

EXPORT_PBKDF2_ROUNDS = 600_000  # OWASP guidance for PBKDF2-HMAC-SHA256 (OpenSSL's default is 2,048)


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

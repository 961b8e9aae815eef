"""The trust file's own signature: a detached DSSE signature by a designated root key.

Without it, whoever can write ``BASTION_HOME`` can add a trusted key. With it, the trust file
carries a ``signature`` member::

    "signature": {
      "payloadType": "application/vnd.bastion.trust.v1+json",
      "public_key": "<the root key's PEM>",
      "signatures": [{"keyid": "<root key id>", "sig": "<base64>"}]
    }

The signed payload is the canonical JSON (sorted members, compact) of the file's ``version`` and
``keys``, so re-indenting the file changes nothing while any edit to a key entry breaks the
signature. The root is *pinned* by its key id (the SHA-256 of its public-key PEM, as for every
Bastion key) through ``BASTION_TRUST_ROOT`` or ``--trust-root``, never taken from the file itself.

Rules, from ``check_trust_signature``:

* a root is pinned: the file must be signed by exactly that key, or it is refused;
* no root is pinned: an unsigned file is accepted (as before), but a signature that does not
  verify is refused anyway: the file was changed after it was signed.

Every change Bastion makes to the trust file (generate, rotate, disable, import) drops the
signature; ``bastion keys trust sign`` signs it again.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bastion.evidence.canonical import canonical_json
from bastion.evidence.dsse import DsseSignature, pae
from bastion.evidence.errors import TrustFileError
from bastion.evidence.keys import algorithm_of, compute_key_id, load_public_key
from bastion.evidence.signers import verify_signature

if TYPE_CHECKING:
    from bastion.evidence.signers import Signer

TRUST_PAYLOAD_TYPE = "application/vnd.bastion.trust.v1+json"
TRUST_ROOT_ENV = "BASTION_TRUST_ROOT"
_HINT = "sign it with `bastion keys trust sign --key ROOT` (the key whose id is pinned)"


@dataclass(frozen=True)
class TrustSignature:
    """A trust file signature that verified: which root signed it, and whether that root is pinned."""

    root_key_id: str
    algorithm: str
    pinned: bool


def pinned_root(explicit: str | None = None) -> str | None:
    """The pinned root key id: ``explicit`` (a command-line flag), else ``$BASTION_TRUST_ROOT``."""
    value = explicit if explicit is not None else os.environ.get(TRUST_ROOT_ENV)
    if value is None or not value.strip():
        return None
    pin = value.strip().lower().removeprefix("sha256:")
    if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
        raise TrustFileError(
            f"the pinned trust root {value!r} is not a key id (64 hex digits)",
            hint="`bastion keys show ROOT` prints it as key_id",
        )
    return pin


def signed_payload(data: dict[str, Any]) -> bytes:
    """What the root signs: the canonical JSON of the trust file's version and keys."""
    try:
        return canonical_json({"version": data.get("version"), "keys": data.get("keys")})
    except ValueError as exc:
        raise TrustFileError(f"the trust file cannot be signed: {exc}") from None


def check_trust_signature(data: dict[str, Any], pin: str | None, source: str) -> TrustSignature | None:
    """Verify the ``signature`` member of a parsed trust file; None when it is unsigned and may be."""
    block = data.get("signature")
    if block is None:
        if pin is not None:
            raise TrustFileError(
                f"the trust file {source} is not signed, and a signed one is required "
                f"(the trust root {pin[:16]} is pinned)",
                hint=_HINT,
            )
        return None
    public_pem, signatures = _parse_block(block, source)
    key = load_public_key(public_pem.encode(), source=f"the trust root in {source}")
    root_id = compute_key_id(public_pem.encode())
    if pin is not None and not hmac.compare_digest(root_id, pin):
        raise TrustFileError(
            f"the trust file {source} is signed by {root_id[:16]}, not by the pinned root {pin[:16]}",
            hint=_HINT,
        )
    message = pae(TRUST_PAYLOAD_TYPE, signed_payload(data))
    if not any(s.keyid == root_id and verify_signature(key, s.sig, message) for s in signatures):
        raise TrustFileError(
            f"the trust file {source} does not match its signature: it was changed after it was signed",
            hint="check who edited it; if the change is intended, " + _HINT,
        )
    return TrustSignature(root_id, algorithm_of(key).value, pinned=pin is not None)


def sign_trust_data(data: dict[str, Any], signer: Signer, pin: str | None) -> dict[str, Any]:
    """``data`` with a fresh ``signature`` member by ``signer`` (which must be the pinned root, if any)."""
    if pin is not None and not hmac.compare_digest(signer.key_id, pin):
        raise TrustFileError(
            f"key {signer.key_id[:16]} is not the pinned trust root {pin[:16]}; it cannot sign the trust file"
        )
    signature = signer.sign(pae(TRUST_PAYLOAD_TYPE, signed_payload(data)))
    signed = {k: v for k, v in data.items() if k != "signature"}
    signed["signature"] = {
        "payloadType": TRUST_PAYLOAD_TYPE,
        "public_key": signer.public_pem.decode(),
        "signatures": [{"keyid": signer.key_id, "sig": base64.b64encode(signature).decode("ascii")}],
    }
    return signed


def _parse_block(block: Any, source: str) -> tuple[str, list[DsseSignature]]:
    if not isinstance(block, dict) or set(block) != {"payloadType", "public_key", "signatures"}:
        raise TrustFileError(
            f"the signature in {source} is malformed (expected payloadType, public_key, signatures)"
        )
    if block["payloadType"] != TRUST_PAYLOAD_TYPE:
        raise TrustFileError(f"the signature in {source} is not a Bastion trust file signature")
    public_pem, raw = block["public_key"], block["signatures"]
    if not isinstance(public_pem, str) or not isinstance(raw, list) or not raw:
        raise TrustFileError(f"the signature in {source} has no public key or no signature")
    signatures = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("keyid"), str):
            raise TrustFileError(f"a signature in {source} has no key id")
        try:
            sig = base64.b64decode(str(item.get("sig", "")), validate=True)
        except (binascii.Error, ValueError):
            raise TrustFileError(f"a signature in {source} is not valid base64") from None
        signatures.append(DsseSignature(item["keyid"], sig))
    return public_pem, signatures

"""DSSE envelopes (https://github.com/secure-systems-lab/dsse, protocol v1.0).

The signature covers the pre-authentication encoding (PAE) of the payload type and payload, never
the JSON around it, so re-serialising an envelope cannot change what was signed.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from bastion.evidence.errors import BundleFormatError
from bastion.evidence.signers import Signer

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """``DSSEv1 SP LEN(type) SP type SP LEN(payload) SP payload``."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class DsseSignature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload: bytes
    payload_type: str
    signatures: tuple[DsseSignature, ...]

    def signed_bytes(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def to_dict(self) -> dict[str, Any]:
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [
                {"sig": base64.b64encode(s.sig).decode("ascii"), "keyid": s.keyid} for s in self.signatures
            ],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Envelope:
        if not isinstance(data, dict):
            raise BundleFormatError("the DSSE envelope is not a JSON object")
        _only(data, {"payload", "payloadType", "signatures"}, "DSSE envelope")
        payload_type = data.get("payloadType")
        if not isinstance(payload_type, str) or not payload_type:
            raise BundleFormatError("the DSSE envelope has no payloadType")
        raw_sigs = data.get("signatures")
        if not isinstance(raw_sigs, list) or not raw_sigs:
            raise BundleFormatError("the DSSE envelope carries no signature")
        signatures = []
        for raw in raw_sigs:
            if not isinstance(raw, dict):
                raise BundleFormatError("a DSSE signature is not a JSON object")
            _only(raw, {"sig", "keyid"}, "DSSE signature")
            keyid = raw.get("keyid", "")
            if not isinstance(keyid, str):
                raise BundleFormatError("a DSSE signature's keyid is not a string")
            signatures.append(DsseSignature(keyid, _b64(raw.get("sig"), "signature")))
        return cls(_b64(data.get("payload"), "payload"), payload_type, tuple(signatures))


def sign_envelope(payload: bytes, signer: Signer, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> Envelope:
    signature = signer.sign(pae(payload_type, payload))
    return Envelope(payload, payload_type, (DsseSignature(signer.key_id, signature),))


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise BundleFormatError(f"the DSSE {what} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BundleFormatError(f"the DSSE {what} is not valid base64 (truncated or corrupted?)") from None


def _only(data: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise BundleFormatError(f"unknown fields in the {what}: {sorted(unknown)}")

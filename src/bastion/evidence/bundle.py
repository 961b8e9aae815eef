"""Sigstore bundle v0.3 JSON holding one DSSE envelope, as OpenSSF model-signing reads and writes it.

Only key-based bundles (``verificationMaterial.publicKey.hint``) are produced and accepted; keyless
bundles with certificates need a Sigstore trust root and are refused with a clear error. Several
bundles of one artifact may be kept one per line in a ``.intoto.jsonl`` file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.evidence.canonical import canonical_json
from bastion.evidence.dsse import Envelope
from bastion.evidence.errors import BundleFormatError

MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_ACCEPTED = {MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3"}
MAX_BUNDLE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Bundle:
    envelope: Envelope
    key_hint: str | None

    def to_dict(self) -> dict[str, Any]:
        material: dict[str, Any] = {"publicKey": {"hint": self.key_hint or ""}, "tlogEntries": []}
        return {
            "mediaType": MEDIA_TYPE,
            "verificationMaterial": material,
            "dsseEnvelope": self.envelope.to_dict(),
        }

    def to_json(self) -> bytes:
        """Canonical JSON on one line, so bundles can be concatenated into ``.intoto.jsonl``."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> Bundle:
        if not isinstance(data, dict):
            raise BundleFormatError("the bundle is not a JSON object")
        unknown = set(data) - {"mediaType", "verificationMaterial", "dsseEnvelope", "messageSignature"}
        if unknown:
            raise BundleFormatError(f"unknown fields in the bundle: {sorted(unknown)}")
        if data.get("mediaType") not in _ACCEPTED:
            raise BundleFormatError(
                f"unsupported bundle media type {data.get('mediaType')!r}", hint=f"expected {MEDIA_TYPE}"
            )
        if "dsseEnvelope" not in data:
            raise BundleFormatError(
                "the bundle holds no DSSE envelope (message signatures are not supported)"
            )
        material = data.get("verificationMaterial")
        if not isinstance(material, dict):
            raise BundleFormatError("the bundle has no verificationMaterial")
        if "certificate" in material or "x509CertificateChain" in material:
            raise BundleFormatError(
                "keyless (certificate) bundles are not supported yet", hint="verify them with sigstore-python"
            )
        public_key = material.get("publicKey")
        if not isinstance(public_key, dict):
            raise BundleFormatError("the bundle's verificationMaterial has no publicKey")
        hint = public_key.get("hint")
        if hint is not None and not isinstance(hint, str):
            raise BundleFormatError("the bundle's publicKey.hint is not a string")
        return cls(Envelope.from_dict(data["dsseEnvelope"]), hint or None)


def parse_bundles(text: bytes, *, source: str) -> tuple[Bundle, ...]:
    """One bundle (JSON, possibly pretty-printed) or several (JSON Lines)."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleFormatError(f"{source} is not UTF-8 text") from None
    try:
        return (Bundle.from_dict(json.loads(decoded)),)
    except json.JSONDecodeError as whole_error:
        lines = [line for line in decoded.splitlines() if line.strip()]
        if len(lines) < 2:
            raise BundleFormatError(
                f"{source} is not valid JSON (truncated or corrupted?): {whole_error}"
            ) from None
        bundles = []
        for number, line in enumerate(lines, 1):
            try:
                bundles.append(Bundle.from_dict(json.loads(line)))
            except json.JSONDecodeError as exc:
                raise BundleFormatError(f"{source} line {number} is not valid JSON: {exc}") from None
        return tuple(bundles)


def read_bundles(path: Path) -> tuple[Bundle, ...]:
    try:
        if path.stat().st_size > MAX_BUNDLE_BYTES:
            raise BundleFormatError(f"{path} is larger than {MAX_BUNDLE_BYTES} bytes; refusing to parse it")
        data = path.read_bytes()
    except OSError as exc:
        raise BundleFormatError(f"cannot read the bundle {path}: {exc.strerror}") from None
    return parse_bundles(data, source=str(path))

"""in-toto Statement v1 (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md).

Statements are encoded as canonical JSON, so identical inputs give byte-identical payloads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bastion.core import Digest, Subject
from bastion.evidence.canonical import canonical_json
from bastion.evidence.errors import BundleFormatError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


@dataclass(frozen=True)
class Statement:
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [
                {"name": s.name, "digest": {d.algorithm: d.hex for d in s.digests}} for s in self.subjects
            ],
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_bytes(cls, payload: bytes) -> Statement:
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleFormatError(f"the signed payload is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BundleFormatError("the signed payload is not a JSON object")
        if data.get("_type") != STATEMENT_TYPE:
            raise BundleFormatError(
                f"the signed payload is not an in-toto Statement v1: {data.get('_type')!r}"
            )
        unknown = set(data) - {"_type", "subject", "predicateType", "predicate"}
        if unknown:
            raise BundleFormatError(f"unknown fields in the statement: {sorted(unknown)}")
        predicate_type = data.get("predicateType")
        predicate = data.get("predicate", {})
        if not isinstance(predicate_type, str) or not isinstance(predicate, dict):
            raise BundleFormatError("the statement's predicateType or predicate is malformed")
        raw_subjects = data.get("subject")
        if not isinstance(raw_subjects, list) or not raw_subjects:
            raise BundleFormatError("the statement has no subject")
        subjects = []
        for raw in raw_subjects:
            if not isinstance(raw, dict) or not isinstance(raw.get("digest"), dict):
                raise BundleFormatError("a statement subject is malformed")
            digests = []
            for algorithm, value in sorted(raw["digest"].items()):
                try:
                    digests.append(Digest(str(algorithm), str(value).lower()))
                except ValueError:
                    continue  # unknown algorithms are allowed by the spec; we just cannot check them
            if not digests:
                raise BundleFormatError(f"subject {raw.get('name')!r} carries no digest Bastion can check")
            subjects.append(Subject(str(raw.get("name", "")), tuple(digests)))
        return cls(tuple(subjects), predicate_type, predicate)

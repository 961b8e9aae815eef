"""Content digests and the subjects they identify."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

_ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}
_CHUNK = 1 << 20


@dataclass(frozen=True, order=True)
class Digest:
    """A named content digest, such as ``sha256:ab12...``."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        length = _ALGORITHMS.get(self.algorithm)
        if length is None:
            raise ValueError(f"unsupported digest algorithm {self.algorithm!r}")
        if len(self.hex) != length or any(c not in "0123456789abcdef" for c in self.hex):
            raise ValueError(f"malformed {self.algorithm} digest {self.hex!r}")

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        algorithm, sep, value = text.partition(":")
        if not sep:
            raise ValueError(f"digest {text!r} has no algorithm prefix")
        return cls(algorithm, value.lower())

    @classmethod
    def of_bytes(cls, data: bytes | memoryview, algorithm: str = "sha256") -> Digest:
        import hashlib  # imported on use: the scan start-up path never hashes

        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    @classmethod
    def of_stream(cls, stream: BinaryIO, algorithm: str = "sha256") -> Digest:
        import hashlib

        h = hashlib.new(algorithm)
        while chunk := stream.read(_CHUNK):
            h.update(chunk)
        return cls(algorithm, h.hexdigest())


@dataclass(frozen=True)
class Subject:
    """A named artifact and its digests (the in-toto notion of a subject)."""

    name: str
    digests: tuple[Digest, ...] = field(default_factory=tuple)

    def digest(self, algorithm: str = "sha256") -> Digest | None:
        return next((d for d in self.digests if d.algorithm == algorithm), None)

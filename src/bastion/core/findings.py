"""Findings, problems and the other per-artifact results a scan produces.

A *finding* is something Bastion decided is wrong with an artifact. A *problem* is a part of an
artifact Bastion could not judge (unreadable, truncated, over a limit): it is never silently
treated as clean. *Skipped* records what was deliberately not scanned and why.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Severity(enum.Enum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls(text.lower())
        except ValueError:
            choices = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {text!r} (choose from {choices})") from None


_RANK = {s: i for i, s in enumerate(Severity)}


class Category(enum.Enum):
    MODEL = "model"
    SECRET = "secret"  # noqa: S105 - a category name, not a credential
    PII = "pii"
    UNSAFE_CODE = "unsafe_code"
    DEPENDENCY = "dependency"
    DOCKERFILE = "dockerfile"


class ProblemKind(enum.Enum):
    UNREADABLE = "unreadable"
    TRUNCATED = "truncated"
    MALFORMED = "malformed"
    LIMIT_EXCEEDED = "limit_exceeded"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class Finding:
    """One thing wrong with an artifact, located as precisely as the format allows."""

    rule_id: str
    category: Category
    kind: str
    severity: Severity
    file: str
    message: str
    remediation: str
    line: int | None = None
    member: str | None = None
    offset: int | None = None
    callable: str | None = None
    atlas: tuple[str, ...] = ()
    cwe: tuple[str, ...] = ()
    count: int = 1

    def location(self) -> str:
        parts = [self.file]
        if self.member:
            parts.append(self.member)
        text = "!".join(parts)
        if self.line is not None:
            text += f":{self.line}"
        if self.offset is not None:
            text += f"@{self.offset}"
        return text


@dataclass(frozen=True)
class Problem:
    """A part of an artifact that could not be judged. Any problem makes the verdict 'error'."""

    kind: ProblemKind
    file: str
    message: str
    member: str | None = None
    offset: int | None = None


@dataclass(frozen=True)
class Skipped:
    """A file deliberately left out, with the reason (not a model, excluded, tensor data...)."""

    file: str
    reason: str
    member: str | None = None


@dataclass(frozen=True)
class ScannedArtifact:
    """An artifact (file or archive member) that a scanner judged, and the format it was read as."""

    file: str
    format: str
    size: int
    member: str | None = None
    sha256: str | None = None
    extras: tuple[tuple[str, str], ...] = field(default_factory=tuple)

"""The result of a scan, its verdict and the exit code that goes with it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from bastion import __version__
from bastion.core.findings import Finding, Problem, ScannedArtifact, Severity, Skipped


class Verdict(enum.Enum):
    SAFE = "safe"
    UNSAFE = "unsafe"
    ERROR = "error"
    UNSUPPORTED = "unsupported"


EXIT_CODES: dict[Verdict, int] = {
    Verdict.SAFE: 0,
    Verdict.UNSAFE: 1,
    Verdict.ERROR: 2,
    Verdict.UNSUPPORTED: 3,
}


@dataclass(frozen=True)
class ToolInfo:
    name: str
    version: str
    uri: str = "https://github.com/bastion-mlsecops/bastion"


@dataclass(frozen=True)
class ScanReport:
    """Everything one scan found, could not decide, scanned and skipped."""

    roots: tuple[str, ...]
    findings: tuple[Finding, ...] = ()
    problems: tuple[Problem, ...] = ()
    scanned: tuple[ScannedArtifact, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    tools: tuple[ToolInfo, ...] = (ToolInfo("bastion", __version__),)
    duration_s: float = 0.0
    fail_on: Severity = Severity.HIGH
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity >= self.fail_on)

    @property
    def verdict(self) -> Verdict:
        """Unsafe beats error beats unsupported: a known payload is reported even if a later part broke."""
        if self.blocking:
            return Verdict.UNSAFE
        if self.problems:
            return Verdict.ERROR
        if not self.scanned:
            return Verdict.UNSUPPORTED
        return Verdict.SAFE

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def with_fail_on(self, fail_on: Severity) -> ScanReport:
        from dataclasses import replace

        return replace(self, fail_on=fail_on)

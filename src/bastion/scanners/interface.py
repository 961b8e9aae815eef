"""The contract between the scan engine and the per-format scanners.

A format scanner is a function ``scan_xxx(data, loc, ctx)``:

* ``data`` is a ``memoryview`` over the artifact's bytes (a zero-copy view of an mmapped file or
  of an archive member). Slice it, never copy the whole of it without need, never execute it.
* ``loc`` says where the bytes come from (file relative to the scanned root, member inside
  archives and streams).
* ``ctx`` is the :class:`ScanContext`: the sink for findings and problems, the resource limits,
  and ``ctx.scan_nested`` to hand embedded artifacts (a pickle inside a zip member, a zip inside
  a tar...) back to format detection.

Scanners raise :class:`FormatError` (or a subclass) when the bytes do not parse; the engine turns
it into a *problem* (could not decide), keeping every finding reported before the failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bastion.core import Category, Finding, Problem, ProblemKind, ScannedArtifact, Severity, Skipped


class FormatError(Exception):
    """The bytes do not parse as the format they were sniffed as."""

    kind = ProblemKind.MALFORMED

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class TruncatedError(FormatError):
    kind = ProblemKind.TRUNCATED


class LimitExceeded(FormatError):
    kind = ProblemKind.LIMIT_EXCEEDED


@dataclass(frozen=True)
class Limits:
    """Resource budgets. Hitting one yields a problem (exit 2), never a hang or a crash."""

    max_file_bytes: int = 64 * 1024**3
    max_member_bytes: int = 4 * 1024**3  # decompressed size of one archive member / stream
    max_decompression_ratio: int = 200
    max_archive_members: int = 100_000
    max_nesting_depth: int = 8  # archives in archives, pickles in pickles
    max_pickle_opcodes: int = 5_000_000
    max_pickle_memo: int = 1_000_000
    max_header_bytes: int = 100 * 1024**2  # safetensors / GGUF / npy headers, configs
    max_files: int = 1_000_000


@dataclass(frozen=True)
class Location:
    """Where some bytes come from: a file under the scanned root and a path inside it."""

    file: str
    member: str | None = None

    def child(self, member: str) -> Location:
        return replace(self, member=member if self.member is None else f"{self.member}!{member}")

    def __str__(self) -> str:
        return self.file if self.member is None else f"{self.file}!{self.member}"


@dataclass(frozen=True)
class Rule:
    """A detection rule: everything of a finding that does not depend on where it was found."""

    rule_id: str
    kind: str
    severity: Severity
    title: str
    remediation: str
    atlas: tuple[str, ...] = ("AML.T0011.000", "AML.M0011", "AML.M0014")
    cwe: tuple[str, ...] = ()
    category: Category = Category.MODEL


RULES: dict[str, Rule] = {}


def rule(
    rule_id: str,
    kind: str,
    severity: Severity,
    title: str,
    remediation: str,
    *,
    atlas: tuple[str, ...] = ("AML.T0011.000", "AML.M0011", "AML.M0014"),
    cwe: tuple[str, ...] = (),
    category: Category = Category.MODEL,
) -> Rule:
    """Declare a rule (at module level) and register it for SARIF's rule table and the docs."""
    r = Rule(rule_id, kind, severity, title, remediation, atlas, cwe, category)
    existing = RULES.get(rule_id)
    if existing is not None and existing != r:
        raise ValueError(f"rule {rule_id} declared twice with different contents")
    RULES[rule_id] = r
    return r


NestedScanner = Callable[[memoryview, Location, "ScanContext", int], None]


@dataclass
class ScanContext:
    """Collects the results of scanning one top-level file (thread-confined; merged by the engine)."""

    limits: Limits = field(default_factory=Limits)
    findings: list[Finding] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    scanned: list[ScannedArtifact] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    nested: NestedScanner | None = None
    allowlists: tuple[str, ...] = ()  # extra allowlist catalogue files from the organisation

    def finding(
        self,
        loc: Location,
        r: Rule,
        message: str,
        *,
        offset: int | None = None,
        callable: str | None = None,
        line: int | None = None,
        severity: Severity | None = None,
        count: int = 1,
    ) -> None:
        self.findings.append(
            Finding(
                rule_id=r.rule_id,
                category=r.category,
                kind=r.kind,
                severity=severity or r.severity,
                file=loc.file,
                member=loc.member,
                offset=offset,
                callable=callable,
                line=line,
                message=message,
                remediation=r.remediation,
                atlas=r.atlas,
                cwe=r.cwe,
                count=count,
            )
        )

    def problem(self, loc: Location, kind: ProblemKind, message: str, *, offset: int | None = None) -> None:
        self.problems.append(
            Problem(kind=kind, file=loc.file, member=loc.member, message=message, offset=offset)
        )

    def skip(self, loc: Location, reason: str) -> None:
        self.skipped.append(Skipped(file=loc.file, member=loc.member, reason=reason))

    def mark_scanned(self, loc: Location, fmt: str, size: int, **extras: str) -> None:
        self.scanned.append(
            ScannedArtifact(
                file=loc.file, member=loc.member, format=fmt, size=size, extras=tuple(sorted(extras.items()))
            )
        )

    def scan_nested(self, data: memoryview, loc: Location, depth: int) -> None:
        """Hand embedded bytes back to format detection (archives, nested pickles...)."""
        if self.nested is None:
            raise RuntimeError("ScanContext.nested is not wired; use bastion.scanners.engine")
        self.nested(data, loc, self, depth)


def parse_json_document(data: memoryview, ctx: ScanContext, what: str) -> object:
    """Parse an embedded JSON document (a Keras config, a skops schema) within the header limit.

    Every way it can be bad is a FormatError naming ``what``: too large, not UTF-8, not JSON, nested
    too deeply.
    """
    import json

    if len(data) > ctx.limits.max_header_bytes:
        raise LimitExceeded(f"{what} larger than {ctx.limits.max_header_bytes} bytes", offset=0)
    try:
        return json.loads(bytes(data).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FormatError(f"{what} is not UTF-8: {exc.reason}", offset=exc.start) from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"{what} is not valid JSON: {exc.msg}", offset=exc.pos) from None
    except RecursionError:
        raise LimitExceeded(f"{what} nests too deeply", offset=0) from None

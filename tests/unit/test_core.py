from __future__ import annotations

import pytest

from bastion.core import (
    Category,
    Digest,
    Finding,
    Problem,
    ProblemKind,
    ScannedArtifact,
    ScanReport,
    Severity,
    Verdict,
)


def _finding(sev: Severity) -> Finding:
    return Finding("BAS-M101", Category.MODEL, "k", sev, "f", "m", "r")


def test_severity_orders_and_parses() -> None:
    assert Severity.CRITICAL > Severity.HIGH > Severity.MEDIUM > Severity.LOW > Severity.INFO
    assert Severity.parse("HIGH") is Severity.HIGH
    with pytest.raises(ValueError, match="choose from"):
        Severity.parse("severe")


def test_digest_rejects_malformed_values() -> None:
    d = Digest.of_bytes(b"abc")
    assert str(d).startswith("sha256:ba7816bf")
    assert Digest.parse(str(d)) == d
    with pytest.raises(ValueError):
        Digest("sha256", "xyz")
    with pytest.raises(ValueError):
        Digest("md5", "0" * 32)
    with pytest.raises(ValueError):
        Digest.parse("abc")


def test_nothing_scanned_is_unsupported_not_safe() -> None:
    assert ScanReport(roots=("x",)).verdict is Verdict.UNSUPPORTED
    assert ScanReport(roots=("x",)).exit_code == 3


def test_problem_makes_error_and_blocks_safe() -> None:
    scanned = (ScannedArtifact("f", "pickle", 1),)
    problem = (Problem(ProblemKind.TRUNCATED, "f", "cut"),)
    assert ScanReport(roots=(), scanned=scanned).verdict is Verdict.SAFE
    assert ScanReport(roots=(), scanned=scanned, problems=problem).exit_code == 2


def test_payload_beats_problem() -> None:
    report = ScanReport(
        roots=(),
        scanned=(ScannedArtifact("f", "pickle", 1),),
        problems=(Problem(ProblemKind.TRUNCATED, "f", "cut"),),
        findings=(_finding(Severity.CRITICAL),),
    )
    assert report.verdict is Verdict.UNSAFE
    assert report.exit_code == 1


def test_fail_on_threshold() -> None:
    report = ScanReport(
        roots=(), scanned=(ScannedArtifact("f", "pickle", 1),), findings=(_finding(Severity.MEDIUM),)
    )
    assert report.verdict is Verdict.SAFE
    assert report.with_fail_on(Severity.MEDIUM).verdict is Verdict.UNSAFE

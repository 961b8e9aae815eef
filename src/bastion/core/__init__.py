"""The shared vocabulary of Bastion (stdlib only): digests, subjects, findings, reports."""

from bastion.core.digest import Digest, Subject
from bastion.core.findings import (
    Category,
    Finding,
    Problem,
    ProblemKind,
    ScannedArtifact,
    Severity,
    Skipped,
)
from bastion.core.report import EXIT_CODES, ScanReport, ToolInfo, Verdict

__all__ = [
    "EXIT_CODES",
    "Category",
    "Digest",
    "Finding",
    "Problem",
    "ProblemKind",
    "ScanReport",
    "ScannedArtifact",
    "Severity",
    "Skipped",
    "Subject",
    "ToolInfo",
    "Verdict",
]

"""The versioned JSON report (schema: ``bastion/render/scan-report.schema.json``, docs/output.md).

Compatibility: fields are only ever added within a major ``schema_version``; consumers must ignore
fields they do not know.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from bastion.core import Finding, Problem, ScannedArtifact, ScanReport, Severity, Skipped

SCHEMA_VERSION = "1.0"


def finding_to_dict(f: Finding) -> dict[str, Any]:
    return {
        "rule_id": f.rule_id,
        "category": f.category.value,
        "kind": f.kind,
        "severity": f.severity.value,
        "file": f.file,
        "line": f.line,
        "member": f.member,
        "offset": f.offset,
        "callable": f.callable,
        "message": f.message,
        "remediation": f.remediation,
        "atlas": list(f.atlas),
        "cwe": list(f.cwe),
        "count": f.count,
    }


def _problem(p: Problem) -> dict[str, Any]:
    return {
        "kind": p.kind.value,
        "file": p.file,
        "member": p.member,
        "offset": p.offset,
        "message": p.message,
    }


def _scanned(s: ScannedArtifact) -> dict[str, Any]:
    return {"file": s.file, "member": s.member, "format": s.format, "size": s.size, **dict(s.extras)}


def _skipped(s: Skipped) -> dict[str, Any]:
    return {"file": s.file, "member": s.member, "reason": s.reason}


def report_to_dict(report: ScanReport) -> dict[str, Any]:
    by_severity = Counter(f.severity.value for f in report.findings)
    return {
        "schema_version": SCHEMA_VERSION,
        "verdict": report.verdict.value,
        "exit_code": report.exit_code,
        "fail_on": report.fail_on.value,
        "roots": list(report.roots),
        "summary": {
            "files": report.extras.get("files", 0),
            "bytes": report.extras.get("bytes", 0),
            "scanned": len(report.scanned),
            "skipped": len(report.skipped),
            "problems": len(report.problems),
            "findings": {s.value: by_severity.get(s.value, 0) for s in reversed(Severity)},
            "duration_s": round(report.duration_s, 4),
        },
        "findings": [finding_to_dict(f) for f in _ordered(report.findings)],
        "problems": [_problem(p) for p in report.problems],
        "scanned": [_scanned(s) for s in report.scanned],
        "skipped": [_skipped(s) for s in report.skipped],
        "tools": [{"name": t.name, "version": t.version} for t in report.tools],
    }


def _ordered(findings: tuple[Finding, ...]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity.rank, f.file, f.member or "", f.offset or 0))


def render_json(report: ScanReport) -> str:
    return json.dumps(report_to_dict(report), indent=2, sort_keys=False) + "\n"

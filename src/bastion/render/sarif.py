"""SARIF 2.1.0 output, shaped for GitHub code scanning (rules with security-severity, one result
per finding, problems as tool execution notifications)."""

from __future__ import annotations

import json
from typing import Any

from bastion.core import Finding, ScanReport, Severity
from bastion.scanners.interface import RULES

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def _rule(f: Finding) -> dict[str, Any]:
    known = RULES.get(f.rule_id)
    title = known.title if known else f.kind
    return {
        "id": f.rule_id,
        "name": "".join(part.capitalize() for part in f.kind.replace("_", "-").split("-")),
        "shortDescription": {"text": title},
        "fullDescription": {"text": title},
        "help": {"text": f.remediation, "markdown": f"**Remediation:** {f.remediation}"},
        "defaultConfiguration": {"level": _LEVEL[known.severity if known else f.severity]},
        "properties": {
            "tags": ["security", f.category.value, *f.atlas, *f.cwe],
            "security-severity": _SECURITY_SEVERITY[known.severity if known else f.severity],
        },
    }


def _result(f: Finding, index: int) -> dict[str, Any]:
    where = f" in member '{f.member}'" if f.member else ""
    at = f" at offset {f.offset}" if f.offset is not None else ""
    physical: dict[str, Any] = {"artifactLocation": {"uri": f.file, "uriBaseId": "%SRCROOT%"}}
    if f.line is not None:
        physical["region"] = {"startLine": f.line}
    result: dict[str, Any] = {
        "ruleId": f.rule_id,
        "ruleIndex": index,
        "level": _LEVEL[f.severity],
        "message": {"text": f"{f.message}{where}{at}. {f.remediation}"},
        "locations": [{"physicalLocation": physical}],
        "partialFingerprints": {
            "bastion/v1": f"{f.rule_id}:{f.file}:{f.member or ''}:{f.callable or ''}:{f.offset or 0}"
        },
        "properties": {
            "severity": f.severity.value,
            "security-severity": _SECURITY_SEVERITY[f.severity],
            "category": f.category.value,
            "kind": f.kind,
            "count": f.count,
        },
    }
    for key in ("member", "offset", "callable"):
        value = getattr(f, key)
        if value is not None:
            result["properties"][key] = value
    if f.member:
        result["locations"][0]["logicalLocations"] = [
            {"fullyQualifiedName": f"{f.file}!{f.member}", "kind": "member"}
        ]
    return result


def report_to_sarif(report: ScanReport) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for f in report.findings:
        if f.rule_id not in index:
            index[f.rule_id] = len(rules)
            rules.append(_rule(f))
    tool = report.tools[0] if report.tools else None
    notifications = [
        {
            "level": "error",
            "message": {"text": f"could not decide: {p.message}"},
            "locations": [
                {"physicalLocation": {"artifactLocation": {"uri": p.file, "uriBaseId": "%SRCROOT%"}}}
            ],
            "properties": {"kind": p.kind.value, "member": p.member, "offset": p.offset},
        }
        for p in report.problems
    ]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bastion",
                        "version": tool.version if tool else "unknown",
                        "informationUri": tool.uri if tool else "https://github.com/bastion-mlsecops/bastion",
                        "rules": rules,
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": not report.problems,
                        "toolExecutionNotifications": notifications,
                        "properties": {"verdict": report.verdict.value},
                    }
                ],
                "results": [_result(f, index[f.rule_id]) for f in report.findings],
                "columnKind": "unicodeCodePoints",
            }
        ],
    }


def render_sarif(report: ScanReport) -> str:
    return json.dumps(report_to_sarif(report), indent=2) + "\n"

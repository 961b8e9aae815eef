"""Verdicts: per rule pass / warn / fail / error with reasons, evidence digests and remediation.

    overall  exit  when
    pass     0     every rule passed
    warn     0     some rule at level "warning" did not pass, or a failure is covered by a live waiver
    fail     1     the evidence did not verify (tampered, untrusted signer), or a rule at level "error" denied
    error    2     no evidence at all or evidence that could not be checked (malformed), or a rule could
                   not be evaluated

Once the evidence verified, a rule failure beats a rule error (a known denial is reported even if
another rule broke). Waivers never cover an error or a verification failure.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

from bastion import __version__


class Outcome(enum.Enum):
    PASS = "pass"  # noqa: S105 - an outcome, not a password
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"

    @property
    def exit_code(self) -> int:
        return {"pass": 0, "warn": 0, "fail": 1, "error": 2}[self.value]

    @property
    def allows(self) -> bool:
        return self in (Outcome.PASS, Outcome.WARN)


@dataclass(frozen=True)
class AppliedWaiver:
    reason: str
    owner: str
    expires: str


@dataclass(frozen=True)
class RuleVerdict:
    rule: str
    outcome: Outcome
    level: str
    reasons: tuple[str, ...]
    remediation: str | None
    evidence: tuple[str, ...]  # sha256 digests of the statements the rule read
    waiver: AppliedWaiver | None = None


@dataclass(frozen=True)
class Verdict:
    policy: str
    policy_sha256: str
    environment: str
    target: str
    subject_name: str
    subject_digest: str
    verification: str  # verified / failed / undecided
    verification_problems: tuple[str, ...]
    rules: tuple[RuleVerdict, ...]
    evidence: tuple[tuple[str, str], ...]  # (kind, digest)
    advisories_digest: str | None
    evaluated_at: str

    @property
    def outcome(self) -> Outcome:
        outcomes = {r.outcome for r in self.rules}
        if self.verification == "failed":
            return Outcome.FAIL
        if self.verification != "verified":  # no evidence, or evidence that could not be checked
            return Outcome.ERROR
        if Outcome.FAIL in outcomes:
            return Outcome.FAIL
        if Outcome.ERROR in outcomes or not self.rules:
            return Outcome.ERROR
        return Outcome.WARN if Outcome.WARN in outcomes else Outcome.PASS

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": "1.0",
            "policy": {"name": self.policy, "sha256": self.policy_sha256},
            "environment": self.environment,
            "target": self.target,
            "subject": {"name": self.subject_name, "digest": self.subject_digest},
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "verification": {"status": self.verification, "problems": list(self.verification_problems)},
            "rules": [
                {
                    "rule": r.rule,
                    "outcome": r.outcome.value,
                    "level": r.level,
                    "reasons": list(r.reasons),
                    "remediation": r.remediation,
                    "evidence": list(r.evidence),
                    "waiver": None
                    if r.waiver is None
                    else {"reason": r.waiver.reason, "owner": r.waiver.owner, "expires": r.waiver.expires},
                }
                for r in self.rules
            ],
            "evidence": [{"kind": k, "digest": d} for k, d in self.evidence],
            "advisories": {"snapshot_sha256": self.advisories_digest},
            "evaluated_at": self.evaluated_at,
            "tool": {"name": "bastion", "version": __version__},
        }


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def render_text(verdict: Verdict) -> str:
    marks = {Outcome.PASS: "PASS ", Outcome.WARN: "WARN ", Outcome.FAIL: "FAIL ", Outcome.ERROR: "ERROR"}
    lines = [
        f"policy {verdict.policy} ({verdict.environment}) on {verdict.target}",
        f"subject {verdict.subject_name} {verdict.subject_digest or '(none)'}",
        f"evidence: {verdict.verification}",
    ]
    lines += [f"  {p}" for p in verdict.verification_problems]
    for rule in verdict.rules:
        lines.append(f"{marks[rule.outcome]} {rule.rule} [{rule.level}]")
        lines += [f"        {reason}" for reason in rule.reasons]
        if rule.waiver is not None:
            w = rule.waiver
            lines.append(f"        waived by {w.owner} until {w.expires}: {w.reason}")
        if rule.outcome is not Outcome.PASS and rule.remediation:
            lines.append(f"        fix: {rule.remediation}")
    if verdict.advisories_digest:
        lines.append(f"advisory snapshot {verdict.advisories_digest}")
    lines.append(f"VERDICT: {verdict.outcome.value.upper()} (exit {verdict.exit_code})")
    return "\n".join(lines) + "\n"


def render_sarif(verdict: Verdict) -> dict[str, Any]:
    """SARIF 2.1.0: one result per rule that did not pass (plus the evidence gate when it failed)."""
    level = {Outcome.WARN: "warning", Outcome.FAIL: "error", Outcome.ERROR: "error"}
    rules = [
        {"id": r.rule, "shortDescription": {"text": r.rule}, "help": {"text": r.remediation or r.rule}}
        for r in verdict.rules
    ]
    location = {"physicalLocation": {"artifactLocation": {"uri": verdict.target.split(":", 1)[-1]}}}
    results = []
    if verdict.verification != "verified":
        rules.append(
            {
                "id": "evidence-verified",
                "shortDescription": {"text": "evidence verifies"},
                "help": {"text": "attest the artifact with a trusted key"},
            }
        )
        results.append(
            {
                "ruleId": "evidence-verified",
                "level": "error",
                "locations": [location],
                "message": {"text": "; ".join(verdict.verification_problems) or verdict.verification},
            }
        )
    for r in verdict.rules:
        if r.outcome is Outcome.PASS:
            continue
        text = "; ".join(r.reasons) or r.outcome.value
        results.append(
            {
                "ruleId": r.rule,
                "level": level[r.outcome],
                "message": {"text": text},
                "locations": [location],
                "properties": {"outcome": r.outcome.value, "evidence": list(r.evidence)},
            }
        )
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bastion-policy",
                        "version": __version__,
                        "informationUri": "https://github.com/bastion-mlsecops/bastion",
                        "rules": rules,
                    }
                },
                "results": results,
                "properties": {
                    "policy": verdict.policy,
                    "environment": verdict.environment,
                    "outcome": verdict.outcome.value,
                },
            }
        ],
    }

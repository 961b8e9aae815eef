"""The orchestration: verify evidence, project it, evaluate the compiled policy, apply levels and waivers.

``decide`` is pure given a ``VerificationResult``; ``verify_and_decide`` runs verification first;
``attest_verdict`` signs the verdict as an in-toto statement and stores it with the evidence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.policy.builtin import EVIDENCE_USED
from bastion.policy.document import Environment, Level, Policy, RuleSpec
from bastion.policy.engine import CompiledPolicy, RawResult
from bastion.policy.projection import (
    VERDICT_PREDICATE_TYPE,
    AdvisorySource,
    Projection,
    load_advisories,
    project,
)
from bastion.policy.verdict import AppliedWaiver, Outcome, RuleVerdict, Verdict, now_iso

if TYPE_CHECKING:
    from bastion.evidence.attest import HashOptions
    from bastion.evidence.bundle import Bundle
    from bastion.evidence.keys import Keyring
    from bastion.evidence.signers import Signer
    from bastion.evidence.store import EvidenceStore
    from bastion.evidence.targets import Target
    from bastion.evidence.verify import VerificationResult


def advisories_for(policy: Policy) -> AdvisorySource | None:
    """The policy's snapshot, else the default one when a rule needs it; None when there is none."""
    from bastion.scanners.workspace.advisories import default_snapshot

    if policy.advisories is not None:
        return load_advisories(policy.advisories)
    if any(r.id == "no-known-vulnerabilities" for r in policy.rules) and default_snapshot().is_file():
        return load_advisories(default_snapshot())
    return None


def decide(
    compiled: CompiledPolicy,
    result: VerificationResult,
    environment: Environment,
    *,
    target: Target | None = None,
    advisories: AdvisorySource | None = None,
    today: dt.date | None = None,
) -> Verdict:
    policy = compiled.policy
    projection = project(result, environment.value, target=target, advisories=advisories)
    raw = compiled.evaluate(projection.document)
    day = today or dt.datetime.now(dt.UTC).date()
    rules = tuple(
        _rule_verdict(rule, rule.level_for(environment), raw[rule.id], projection, policy, environment, day)
        for rule in policy.rules
        if rule.level_for(environment) is not Level.OFF
    )
    return Verdict(
        policy=policy.name,
        policy_sha256=policy.sha256,
        environment=environment.value,
        target=result.target,
        subject_name=projection.subject_name,
        subject_digest=projection.subject_digest,
        verification=result.status.value,
        verification_problems=tuple(dict.fromkeys(f"{p.cause.value}: {p.detail}" for p in result.problems)),
        rules=rules,
        evidence=tuple((e.kind, e.digest) for e in projection.evidence),
        advisories_digest=advisories.digest if advisories else None,
        evaluated_at=now_iso(),
    )


def _rule_verdict(
    rule: RuleSpec,
    level: Level,
    raw: RawResult,
    projection: Projection,
    policy: Policy,
    environment: Environment,
    today: dt.date,
) -> RuleVerdict:
    kinds = EVIDENCE_USED.get(rule.id) if rule.builtin else None
    used = tuple(e.digest for e in projection.evidence if kinds is None or e.kind in kinds)
    remediation = rule.remediation or raw.remediation
    if raw.error is not None:
        return RuleVerdict(
            rule.id, Outcome.ERROR, level.value, (f"could not evaluate: {raw.error}",), remediation, used
        )
    if raw.allow:
        return RuleVerdict(rule.id, Outcome.PASS, level.value, (), remediation, used)
    outcome = Outcome.FAIL if level is Level.ERROR else Outcome.WARN
    waiver = next(
        (w for w in policy.waivers if w.applies(rule.id, projection.subject_digest, environment, today)), None
    )
    applied = None
    if waiver is not None and projection.subject_digest:
        outcome = Outcome.WARN
        applied = AppliedWaiver(waiver.reason, waiver.owner, waiver.expires.isoformat())
    return RuleVerdict(rule.id, outcome, level.value, raw.reasons, remediation, used, applied)


def verify_and_decide(
    compiled: CompiledPolicy,
    target: Target,
    bundles: Sequence[Bundle],
    environment: Environment,
    *,
    keyring: Keyring | None = None,
    options: HashOptions | None = None,
    advisories: AdvisorySource | None = None,
) -> Verdict:
    from bastion.evidence.verify import verify

    result = verify(target, bundles, keyring, options=options)
    return decide(compiled, result, environment, target=target, advisories=advisories)


def evidence_bundles(store: EvidenceStore, subject_digest: str) -> tuple[Bundle, ...]:
    """Every stored attestation about this digest except earlier verdicts (a verdict is not evidence)."""
    from bastion.evidence.bundle import parse_bundles

    records = [r for r in store.query(digest=subject_digest) if r.predicate_type != VERDICT_PREDICATE_TYPE]
    return tuple(b for r in records for b in parse_bundles(store.bundle_bytes(r.id), source=r.id[:16]))


def attest_verdict(verdict: Verdict, signer: Signer, store: EvidenceStore | None = None) -> Bundle:
    """Sign the verdict (subject: the artifact's digest) and record it in ``store`` when given."""
    from bastion.core import Digest, Subject
    from bastion.errors import UsageError
    from bastion.evidence.attest import sign_statement
    from bastion.evidence.statement import Statement

    if not verdict.subject_digest:
        raise UsageError("a verdict about no verified artifact cannot be attested")
    subject = Subject(verdict.subject_name, (Digest.parse(verdict.subject_digest),))
    bundle = sign_statement(Statement((subject,), VERDICT_PREDICATE_TYPE, verdict.to_dict()), signer)
    if store is not None:
        store.add(bundle.to_json(), target=verdict.target)
    return bundle


def compile_policy(path: Path) -> CompiledPolicy:
    from bastion.policy.document import load_policy

    return CompiledPolicy(load_policy(path))

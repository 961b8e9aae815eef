"""Builders for the policy tests: real keys, real attestations, real verification (nothing mocked)."""

from __future__ import annotations

import json
from pathlib import Path

from bastion.evidence.attest import HashOptions, PredicateKind, attest, sign_statement
from bastion.evidence.bundle import Bundle
from bastion.evidence.keys import Keyring
from bastion.evidence.signers import Signer
from bastion.evidence.statement import Statement
from bastion.evidence.targets import parse_target
from bastion.policy import Environment, compile_policy
from bastion.policy.decide import verify_and_decide
from bastion.policy.projection import AdvisorySource
from bastion.policy.verdict import Verdict

ALL = (PredicateKind.MANIFEST, PredicateKind.BOM, PredicateKind.SCAN)


def write_policy(path: Path, rules: str, extra: str = "") -> Path:
    path.write_text(
        f"apiVersion: bastion/v1\nkind: Policy\nname: test\n{extra}rules:\n{rules}", encoding="utf-8"
    )
    return path


def evidence(model: Path, signer: Signer, kinds: tuple[PredicateKind, ...] = ALL) -> list[Bundle]:
    return [a.bundle for a in attest(parse_target(f"dir:{model}"), signer, kinds, HashOptions())]


def provenance(model: Path, signer: Signer, *, network: str = "none") -> Bundle:
    manifest = attest(parse_target(f"dir:{model}"), signer, (PredicateKind.MANIFEST,), HashOptions())[0]
    predicate = {
        "buildDefinition": {
            "buildType": "https://bastion.dev/train/v1",
            "internalParameters": {"network": network},
        },
        "runDetails": {"builder": {"id": "https://bastion.dev/isolated-runner"}},
    }
    return sign_statement(
        Statement(manifest.statement.subjects, "https://slsa.dev/provenance/v1", predicate), signer
    )


def judge(
    policy: Path,
    target: str,
    bundles: list[Bundle],
    ring: Keyring,
    env: Environment = Environment.PROD,
    advisories: AdvisorySource | None = None,
) -> Verdict:
    return verify_and_decide(
        compile_policy(policy), parse_target(target), bundles, env, keyring=ring, advisories=advisories
    )


def rule(verdict: Verdict, rule_id: str) -> tuple[str, tuple[str, ...]]:
    (found,) = [r for r in verdict.rules if r.rule == rule_id]
    return found.outcome.value, found.reasons


def make_venv(root: Path, packages: dict[str, str]) -> Path:
    site = root / "lib" / "python3.11" / "site-packages"
    for name, version in packages.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nLicense: MIT\n"
        )
        (info / "RECORD").write_text(f"{name}/__init__.py,,\n")
    return root


def osv_file(path: Path, package: str, fixed: str, severity: str = "HIGH") -> Path:
    record = {
        "id": "GHSA-test-0001",
        "summary": f"remote code execution in {package}",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
            }
        ],
        "database_specific": {"severity": severity},
    }
    path.write_text(json.dumps(record))
    return path

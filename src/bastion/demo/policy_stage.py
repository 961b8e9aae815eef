"""The demo's policy stage: gate the release under a prod policy; tampered and unsafe copies are refused."""

from __future__ import annotations

import os
import pathlib
import shutil

from rich.console import Console

DEMO_POLICY = """\
apiVersion: bastion/v1
kind: Policy
name: demo-prod
rules:
  - id: signed-by-trusted-key
  - id: digests-match
  - id: no-findings-above
    params: {severity: high}
  - id: no-unsafe-formats
    level: warning
    params: {formats: [pickle], environments: [prod]}
  - id: license-allowlist
    params: {allowed: [mit, apache-2.0]}
"""


def run_policy_stage(console: Console, workdir: pathlib.Path, model_dir: pathlib.Path) -> bool:
    """Gate three copies of ``model_dir`` under a prod policy: clean, tampered after signing, with a
    hostile pickle added. Returns True when the clean one is allowed and the other two are refused."""
    import secrets

    from bastion.demo.samples import hostile_pickle
    from bastion.evidence.attest import HashOptions, PredicateKind, attest
    from bastion.evidence.keys import Keyring
    from bastion.evidence.signers import signer_from_uri
    from bastion.evidence.store import EvidenceStore
    from bastion.evidence.targets import parse_target
    from bastion.policy import Environment, Outcome, attest_verdict, compile_policy, evidence_bundles
    from bastion.policy.decide import verify_and_decide
    from bastion.policy.verdict import Verdict

    home = workdir / "policy-home"
    passphrase = os.environ.get("BASTION_KEY_PASSPHRASE") or secrets.token_urlsafe(24)
    ring = Keyring(home)
    name = f"gate-{secrets.token_hex(4)}"
    ring.generate(name, passphrase)
    signer = signer_from_uri(name, lambda _: passphrase, keyring=ring)
    policy_path = workdir / "demo-prod-policy.yaml"
    policy_path.write_text(DEMO_POLICY, encoding="utf-8")
    compiled = compile_policy(policy_path)
    console.print(
        f"Policy [bold]demo-prod[/bold] compiled once: {len(compiled.policy.rules)} rules, env prod"
    )

    copies = {}
    for label in ("clean", "tampered", "unsafe"):
        copy = workdir / f"gate-{label}"
        if copy.exists():
            shutil.rmtree(copy)
        shutil.copytree(model_dir, copy, symlinks=True)
        copies[label] = copy
    (copies["unsafe"] / "extra-weights.pkl").write_bytes(hostile_pickle())

    store = EvidenceStore(f"sqlite:///{home / 'evidence.db'}")
    verdicts: dict[str, Verdict] = {}
    try:
        for label, copy in copies.items():
            target = parse_target(f"dir:{copy}")
            kinds = (PredicateKind.MANIFEST, PredicateKind.BOM, PredicateKind.SCAN)
            made = attest(target, signer, kinds, HashOptions())
            for a in made:
                store.add(a.bundle.to_json(), target=target.uri)
            if label == "tampered":
                victim = max((p for p in copy.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
                data = bytearray(victim.read_bytes())
                data[len(data) // 2] ^= 0x01
                victim.write_bytes(bytes(data))
            bundles = evidence_bundles(store, str(made[0].statement.subjects[0].digests[0]))
            verdict = verify_and_decide(compiled, target, bundles, Environment.PROD, keyring=ring)
            verdicts[label] = verdict
            colour = "green" if verdict.outcome.allows else "red"
            console.print(f"[bold]{label}[/bold] copy: [{colour}]{verdict.outcome.value.upper()}[/{colour}]")
            for problem in verdict.verification_problems:
                console.print(f"    evidence: {problem}")
            for rule in verdict.rules:
                if rule.outcome is not Outcome.PASS:
                    for reason in rule.reasons[:3]:
                        console.print(f"    {rule.outcome.value} {rule.rule}: {reason}")
            if verdict.subject_digest and verdict.verification == "verified":
                attest_verdict(verdict, signer, store)
    finally:
        store.close()
    refused_unsafe = any(
        r.rule == "no-findings-above" and r.outcome is Outcome.FAIL for r in verdicts["unsafe"].rules
    )
    return (
        verdicts["clean"].outcome.allows
        and verdicts["tampered"].outcome is Outcome.FAIL
        and verdicts["tampered"].verification == "failed"
        and verdicts["unsafe"].outcome is Outcome.FAIL
        and refused_unsafe
    )

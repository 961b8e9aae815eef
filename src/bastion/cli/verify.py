"""``bastion verify``: check a target against signed attestations and the trust file.

Exit codes: 0 verified, 1 verification failed, 2 could not decide. With ``--policy``, the exit code
is the policy verdict's (see ``bastion.cli.policy_verify``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bastion.cli.attest import hash_options, image_platform

_VERDICT = "https://github.com/bastion-mlsecops/bastion/policy-verdict/v1"  # verdicts are not evidence

if TYPE_CHECKING:
    from bastion.evidence.attest import HashOptions
    from bastion.evidence.bundle import Bundle
    from bastion.evidence.targets import Target


@click.command()
@click.argument("target")
@click.option(
    "--bundle",
    "-b",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Bundle (.json) or bundles (.jsonl); default: search the evidence store by the target's digests.",
)
@click.option("--key", "-k", "expected", help="Require this signer (key name or id).")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "sarif"]), default="text", show_default=True
)
@click.option(
    "--policy",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Evaluate this policy (YAML) over the verified evidence; exit with the verdict.",
)
@click.option(
    "--env",
    type=click.Choice(["dev", "staging", "prod"]),
    default="prod",
    show_default=True,
    help="Environment the policy is evaluated for.",
)
@click.option("--sign-verdict", "sign_verdict", help="Sign the verdict with this key and store it.")
@click.option(
    "--trust-root",
    "trust_root",
    metavar="KEY_ID",
    help="Refuse a trust file not signed by this root key (default: $BASTION_TRUST_ROOT).",
)
@click.option(
    "--platform",
    metavar="OS/ARCH[/VARIANT]",
    help="image: targets: which image of a multi-platform index (default: the only one).",
)
@hash_options
def verify(
    target: str,
    bundle: Path | None,
    expected: str | None,
    fmt: str,
    policy: Path | None,
    env: str,
    sign_verdict: str | None,
    trust_root: str | None,
    platform: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    allow_symlinks_outside: bool,
    workers: int | None,
) -> None:
    """Verify TARGET (dir:PATH, file:PATH, git:PATH[@REV], env:[VENV], image:TARBALL or a bare path).

    Exit codes: 0 verified, 1 verification failed, 2 could not decide. With --policy: 0 pass or warn,
    1 a rule failed or the evidence did not verify, 2 a rule could not be evaluated or no evidence.
    """
    from bastion.errors import UsageError
    from bastion.evidence.attest import HashOptions
    from bastion.evidence.bundle import read_bundles
    from bastion.evidence.image import choose_platform
    from bastion.evidence.keys import Keyring
    from bastion.evidence.targets import parse_target
    from bastion.evidence.trustsig import TRUST_ROOT_ENV
    from bastion.evidence.verify import verify as check

    if include or exclude:
        click.echo("note: --include/--exclude are taken from the signed manifest when verifying", err=True)
    if trust_root is not None:  # process-wide, so the --policy path and verdict signing honour it too
        os.environ[TRUST_ROOT_ENV] = trust_root
    ring = Keyring(trust_root=trust_root)
    ring.entries()  # refuse a trust file that is not signed as required before any work is done
    parsed = parse_target(target)
    with choose_platform(image_platform(parsed, platform)):
        options = HashOptions(workers=workers, allow_outside_symlinks=allow_symlinks_outside)
        if bundle is not None:
            bundles = read_bundles(bundle)
            source = str(bundle)
        else:
            bundles, source = _from_store(parsed, options)
        if policy is not None:
            from bastion.cli.policy_verify import decide_and_report, exit_with

            exit_with(decide_and_report(parsed, bundles, source, options, policy, env, fmt, sign_verdict))
        if fmt == "sarif" or sign_verdict:
            raise UsageError("--format sarif and --sign-verdict need --policy")
        result = check(parsed, bundles, ring, options=options, expected_signer=expected)
        if fmt == "json":
            payload = {
                "target": result.target,
                "status": result.status.value,
                "exit_code": result.exit_code,
                "evidence": source,
                "signers": [
                    {"name": s.name, "key_id": s.key_id, "status": s.status.value} for s in result.signers
                ],
                "predicates": [s.predicate_type for s in result.statements],
                "problems": [
                    {"cause": p.cause.value, "file": p.file, "detail": p.detail} for p in result.problems
                ],
                "notes": list(result.notes),
            }
            click.echo(json.dumps(payload, indent=2))
        else:
            for signer in result.signers:
                click.echo(f"signer: {signer.name} ({signer.short_id}, {signer.status.value})")
            for problem in result.problems:
                click.echo(f"  {problem.cause.value}: {problem.detail}")
            for note in result.notes:
                click.echo(f"  note: {note}")
            click.echo(f"{result.status.value.upper()}: {result.target} against {source}")
        sys.exit(result.exit_code)


def _from_store(target: Target, options: HashOptions) -> tuple[tuple[Bundle, ...], str]:
    """Attestations whose subject is the target as it is now, else (to say what changed) by name."""
    from bastion.evidence.attest import compute_manifest
    from bastion.evidence.bom import subject_for_target
    from bastion.evidence.bundle import parse_bundles
    from bastion.evidence.store import EvidenceStore
    from bastion.evidence.targets import TargetKind

    if target.kind in (TargetKind.DIR, TargetKind.FILE):
        subject = compute_manifest(target, options).subject
    else:
        subject = subject_for_target(target)
    store = EvidenceStore()
    try:
        records = [r for r in store.query(digest=str(subject.digests[0])) if r.predicate_type != _VERDICT]
        how = f"evidence store ({subject.digests[0]})"
        if not records:
            records = [r for r in store.query(name=subject.name) if r.predicate_type != _VERDICT][:1]
            how = f"evidence store (latest for {subject.name!r}: nothing matches the current digest)"
        bundles = tuple(b for r in records for b in parse_bundles(store.bundle_bytes(r.id), source=r.id[:16]))
    finally:
        store.close()
    return bundles, how

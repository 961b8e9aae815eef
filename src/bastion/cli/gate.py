"""``bastion gate PATH``: scan, attest (manifest + ML-BOM + scan), verify under a policy, one exit code.

Exit codes: 0 pass (or only warnings), 1 a rule failed, 2 a rule could not be evaluated or nothing
could be attested.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--policy", "-p", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--key", "-k", required=True, help="Signer for the attestations: key NAME, file:PEM or env:VAR."
)
@click.option("--env", type=click.Choice(["dev", "staging", "prod"]), default="prod", show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "sarif"]), default="text", show_default=True
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the verdict here."
)
@click.option(
    "--bundle-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the bundles (JSON Lines).",
)
@click.option(
    "--sign-verdict/--no-sign-verdict", default=True, show_default=True, help="Sign and store the verdict."
)
def gate(
    path: Path,
    policy: Path,
    key: str,
    env: str,
    fmt: str,
    output: Path | None,
    bundle_out: Path | None,
    sign_verdict: bool,
) -> None:
    """Gate PATH (a model folder or file): scan -> attest -> verify with --policy, for CI.

    Exit codes: 0 pass or warn, 1 a rule failed, 2 a rule could not be evaluated.
    """
    from bastion.cli.keys import get_passphrase
    from bastion.cli.policy_verify import decide_and_report, exit_with
    from bastion.evidence.attest import HashOptions, PredicateKind, attest, ignoring
    from bastion.evidence.signers import signer_from_uri
    from bastion.evidence.store import EvidenceStore
    from bastion.evidence.targets import parse_target
    from bastion.policy.decide import compile_policy, evidence_bundles

    compile_policy(policy)  # a malformed policy fails before anything is signed
    target = parse_target(str(path))
    options = ignoring(HashOptions(), target, bundle_out)
    signer = signer_from_uri(key, get_passphrase)
    kinds = (PredicateKind.MANIFEST, PredicateKind.BOM, PredicateKind.SCAN)
    attestations = attest(target, signer, kinds, options)
    if bundle_out is not None:
        bundle_out.write_bytes(b"".join(a.bundle.to_json() + b"\n" for a in attestations))
    scan = next(
        a.statement.predicate for a in attestations if a.statement.predicate_type.endswith("scan-report/v1")
    )
    counts = scan.get("summary", {}).get("findings", {})
    click.echo(
        f"scanned {target.uri}: verdict {scan.get('verdict')}, findings "
        + ", ".join(f"{k}={v}" for k, v in counts.items() if v),
        err=True,
    )
    subject = attestations[0].statement.subjects[0]
    store = EvidenceStore()
    try:
        for a in attestations:
            store.add(a.bundle.to_json(), target=target.uri)
        bundles = evidence_bundles(store, str(subject.digests[0]))
    finally:
        store.close()
    click.echo(f"attested {subject.name} {subject.digests[0]} ({len(attestations)} statements)", err=True)
    verdict = decide_and_report(
        target, bundles, "evidence store", options, policy, env, fmt, key if sign_verdict else None, output
    )
    exit_with(verdict)

"""The policy half of ``bastion verify --policy`` and ``bastion gate``: decide, render, sign, exit.

Exit codes: 0 pass (or only warnings), 1 a rule failed or the evidence did not verify, 2 a rule could
not be evaluated or there was no evidence.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from bastion.evidence.attest import HashOptions
    from bastion.evidence.bundle import Bundle
    from bastion.evidence.targets import Target
    from bastion.policy.verdict import Verdict

ENVIRONMENTS = ["dev", "staging", "prod"]


def decide_and_report(
    target: Target,
    bundles: Sequence[Bundle],
    source: str,
    options: HashOptions,
    policy: Path,
    env: str,
    fmt: str,
    sign_with: str | None,
    output: Path | None = None,
) -> Verdict:
    """Verify, evaluate, print (text / JSON / SARIF) and, with ``sign_with``, sign and store the verdict."""
    from bastion.policy import Environment, attest_verdict, compile_policy, verify_and_decide
    from bastion.policy.decide import advisories_for
    from bastion.policy.verdict import render_sarif, render_text

    compiled = compile_policy(policy)
    verdict = verify_and_decide(
        compiled,
        target,
        bundles,
        Environment(env),
        options=options,
        advisories=advisories_for(compiled.policy),
    )
    if fmt == "json":
        text = json.dumps({**verdict.to_dict(), "evidence_source": source}, indent=2) + "\n"
    elif fmt == "sarif":
        text = json.dumps(render_sarif(verdict), indent=2) + "\n"
    else:
        text = render_text(verdict)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    if sign_with is not None and verdict.subject_digest:
        from bastion.cli.keys import get_passphrase
        from bastion.evidence.signers import signer_from_uri
        from bastion.evidence.store import EvidenceStore

        store = EvidenceStore()
        try:
            bundle = attest_verdict(verdict, signer_from_uri(sign_with, get_passphrase), store)
        finally:
            store.close()
        click.echo(f"verdict signed and stored ({len(bundle.to_json())} bytes)", err=True)
    return verdict


def exit_with(verdict: Verdict) -> None:
    sys.exit(verdict.exit_code)

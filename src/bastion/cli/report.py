"""``bastion report posture TARGET``: ATLAS mitigations and NIST AI RMF functions evidenced or missing."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def report() -> None:
    """Reports over the evidence store."""


@report.command("posture")
@click.argument("target")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout)."
)
def posture(target: str, fmt: str, output: Path | None) -> None:
    """Which ATLAS mitigations (AML.M0005/7/11/13/14/16) and NIST AI RMF functions TARGET evidences."""
    from bastion.evidence.keys import Keyring
    from bastion.evidence.store import EvidenceStore
    from bastion.evidence.targets import parse_target
    from bastion.policy.posture import posture as build
    from bastion.policy.posture import render_html

    store = EvidenceStore()
    try:
        data = build(parse_target(target), store, Keyring())
    finally:
        store.close()
    if fmt == "json":
        text = json.dumps(data, indent=2) + "\n"
    elif fmt == "html":
        text = render_html(data)
    else:
        subject, status = data["subject"], data["evidence"]["status"]
        lines = [f"posture of {subject['name']} {subject['digest']} (evidence {status})"]
        for c in data["controls"]:
            lines.append(f"{c['status']:<10} {c['id']:<10} {c['name']}")
            if c["status"] != "evidenced":
                lines.append(f"{'':<21} to do: {c['todo']}")
        text = "\n".join(lines) + "\n"
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)

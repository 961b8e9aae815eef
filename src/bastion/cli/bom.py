"""``bastion bom``: a CycloneDX 1.6 SBOM / ML-BOM for a model, a commit, a Python environment or an image."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command()
@click.argument("target")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the BOM here (default: stdout).",
)
@click.option(
    "--platform",
    metavar="OS/ARCH[/VARIANT]",
    help="image: targets: which image of a multi-platform index (default: the only one).",
)
def bom(target: str, output: Path | None, platform: str | None) -> None:
    """Describe TARGET (dir:, file:, git:PATH[@REV], env:[VENV], image:TARBALL, a bare path) as CycloneDX.

    To sign it: bastion attest TARGET --predicate bom --key NAME.
    """
    from bastion.cli.attest import image_platform
    from bastion.evidence.bom import bom_for_target
    from bastion.evidence.image import choose_platform
    from bastion.evidence.targets import parse_target

    parsed = parse_target(target)
    with choose_platform(image_platform(parsed, platform)):
        document, subject = bom_for_target(parsed)
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output} for {subject.name} {subject.digests[0]}", err=True)

"""``bastion demo``: the product's showcase, on data and models it makes itself (no network)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from bastion.errors import UsageError


@click.command()
@click.option(
    "--workdir", type=click.Path(file_okay=False, path_type=Path), help="Keep the sample project here."
)
def demo(workdir: Path | None) -> None:
    """Make a sample ML project, then walk the lifecycle stages Bastion covers so far."""
    from rich.console import Console
    from rich.rule import Rule
    from rich.table import Table

    console = Console()
    try:
        from bastion.demo.samples import make_project
    except ImportError as exc:  # pragma: no cover - depends on extras
        raise UsageError(
            f"the demo needs the 'demo' extra: {exc}", hint="pip install 'bastion-mlsecops[demo]'"
        ) from None
    with tempfile.TemporaryDirectory(prefix="bastion-demo-") as tmp:
        root = (workdir or Path(tmp)) / "sample-project"
        console.print(Rule("[bold]Bastion demo[/bold]"))
        console.print(f"Sample project: {root}")
        try:
            described = make_project(root)
        except ImportError as exc:
            raise UsageError(
                f"the demo needs the 'demo' extra: {exc}", hint="pip install 'bastion-mlsecops[demo]'"
            ) from None
        table = Table(title="What the project holds", show_header=True)
        table.add_column("file")
        table.add_column("what it really is")
        for name, what in described.items():
            table.add_row(name, what)
        console.print(table)

        console.print(Rule("[bold]Package stage[/bold]: scan every model file without loading it"))
        from bastion.render.text import render_text
        from bastion.scanners.engine import scan_paths

        report = scan_paths([root])
        render_text(report)
        flagged = {f.file for f in report.blocking}
        expected_bad = {"evil.pkl", "gadget.pkl", "weights.safetensors", "checkpoint.pt"}
        missed = expected_bad - flagged
        false_alarms = flagged - expected_bad
        console.print(
            f"\nDetected {len(expected_bad & flagged)}/{len(expected_bad)} hostile files, "
            f"{len(false_alarms)} false alarms on benign files."
        )
        if missed or false_alarms:
            console.print(
                "[bold red]demo check failed[/bold red]: "
                f"missed={sorted(missed)} false={sorted(false_alarms)}"
            )
            sys.exit(1)
        console.print("[green]Package-stage defences behaved as expected.[/green]")

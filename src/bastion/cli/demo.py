"""``bastion demo``: the product's showcase, on data and models it makes itself (no network)."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bastion.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

_EXTRA_HINT = "pip install 'bastion-mlsecops[demo]'"


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
    with tempfile.TemporaryDirectory(prefix="bastion-demo-") as tmp:
        base = workdir or Path(tmp)
        root = base / "sample-project"
        console.print(Rule("[bold]Bastion demo[/bold]"))
        console.print(f"Sample project: {root}")
        try:
            from bastion.demo.samples import make_project

            described = make_project(root)
        except ImportError as exc:
            raise UsageError(f"the demo needs the 'demo' extra: {exc}", hint=_EXTRA_HINT) from None
        table = Table(title="What the project holds", show_header=True)
        table.add_column("file")
        table.add_column("what it really is")
        for name, what in described.items():
            table.add_row(name, what)
        console.print(table)

        from bastion.demo.evidence_stage import run_evidence_stage
        from bastion.demo.gateway_stage import run_gateway_stage
        from bastion.demo.monitor_stage import run_monitor_stage
        from bastion.demo.policy_stage import run_policy_stage
        from bastion.demo.workspace_stage import run_workspace_stage

        stages: list[tuple[str, str, Callable[[], bool]]] = [
            (
                "Train",
                "scan the workspace for secrets, personal data, unsafe code",
                lambda: run_workspace_stage(console, base),
            ),
            ("Package", "scan every model file without loading it", lambda: _package_stage(console, root)),
            (
                "Package",
                "sign the release, store the evidence, catch tampering",
                lambda: run_evidence_stage(console, base, root / "release"),
            ),
            (
                "Deploy",
                "gate the release under a prod policy: tampered and unsafe copies refused",
                lambda: run_policy_stage(console, base, root / "release"),
            ),
            (
                "Serve",
                "serve through the gateway: auth, roles, limits, extraction attack, audit chain",
                lambda: run_gateway_stage(console, base),
            ),
            (
                "Monitor",
                "baseline the training data, check a clean and a poisoned window",
                lambda: run_monitor_stage(console, base),
            ),
        ]
        results: list[tuple[str, str, bool]] = []
        for stage, what, run in stages:
            console.print(Rule(f"[bold]{stage} stage[/bold]: {what}"))
            results.append((stage, what, run()))

        summary = Table(title="Lifecycle walk", show_header=True)
        summary.add_column("stage")
        summary.add_column("what Bastion did")
        summary.add_column("defences")
        for stage, what, ok in results:
            summary.add_row(
                stage, what, "[green]as expected[/green]" if ok else "[bold red]FAILED[/bold red]"
            )
        console.print(summary)
        if not all(ok for _, _, ok in results):
            sys.exit(1)


def _package_stage(console: Console, root: Path) -> bool:
    from bastion.render.text import render_text
    from bastion.scanners.engine import scan_paths

    report = scan_paths([root], families=("model",))
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
            f"[bold red]missed[/bold red]={sorted(missed)} [bold red]false[/bold red]={sorted(false_alarms)}"
        )
    return not missed and not false_alarms

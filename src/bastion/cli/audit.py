"""``bastion audit verify FILE``: prove an audit log's hash chain is intact.

Exit codes: 0 intact, 1 the chain is broken (a record edited, removed, inserted or reordered), 2 unreadable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.group()
def audit() -> None:
    """Work with Bastion's tamper-evident audit logs."""


@audit.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def verify(file: Path, fmt: str) -> None:
    """Recompute FILE's hash chain. Exit 0 intact, 1 broken, 2 unreadable."""
    from bastion.errors import InputError
    from bastion.gateway.audit import verify_chain

    if not file.is_file():
        raise InputError(f"{file}: no such file")
    report = verify_chain(file)
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "path": report.path,
                    "ok": report.ok,
                    "records": report.records,
                    "last_hash": report.last_hash,
                    "problems": [{"line": p.line, "detail": p.detail} for p in report.problems],
                },
                indent=2,
            )
        )
    elif report.ok:
        click.echo(f"{file}: chain intact, {report.records} records, last hash {report.last_hash}")
    else:
        for p in report.problems:
            click.echo(f"{file}:{p.line}: {p.detail}")
        click.echo(f"{file}: chain BROKEN ({len(report.problems)} problem(s) in {report.records} records)")
    sys.exit(0 if report.ok else 1)

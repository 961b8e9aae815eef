"""``bastion audit verify``: prove an audit trail's hash chain is intact.

    bastion audit verify audit.jsonl                                   a JSON Lines file
    bastion audit verify --database sqlite:///audit.db                 a SQLite sink
    bastion audit verify --database postgresql://u@host/db --table T   a PostgreSQL sink (pg8000)

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
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--database", "url", help="SQLAlchemy URL of a SQLite or PostgreSQL audit sink.")
@click.option(
    "--table", default="bastion_audit", show_default=True, help="The audit table (with --database)."
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def verify(file: Path | None, url: str | None, table: str, fmt: str) -> None:
    """Recompute the hash chain of FILE or of a database table. Exit 0 intact, 1 broken, 2 unreadable."""
    from bastion.errors import InputError, UsageError
    from bastion.gateway.audit import ChainReport, verify_chain

    if (file is None) == (url is None):
        raise UsageError("give either an audit FILE or --database URL")
    report: ChainReport
    if url is not None:
        from bastion.gateway.audit_sql import verify_table

        report = verify_table(url, table)
    else:
        assert file is not None
        if not file.is_file():
            raise InputError(f"{file}: no such file")
        report = verify_chain(file)
    where = report.path
    unit = "row" if url is not None else "line"
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "path": report.path,
                    "ok": report.ok,
                    "records": report.records,
                    "last_hash": report.last_hash,
                    "problems": [{unit: p.line, "detail": p.detail} for p in report.problems],
                },
                indent=2,
            )
        )
    elif report.ok:
        click.echo(f"{where}: chain intact, {report.records} records, last hash {report.last_hash}")
    else:
        for p in report.problems:
            click.echo(f"{where}:{unit} {p.line}: {p.detail}" if url else f"{where}:{p.line}: {p.detail}")
        click.echo(f"{where}: chain BROKEN ({len(report.problems)} problem(s) in {report.records} records)")
    sys.exit(0 if report.ok else 1)

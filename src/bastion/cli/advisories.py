"""``bastion advisories``: manage the offline OSV advisory snapshot the dependency checks use."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def advisories() -> None:
    """Offline vulnerability advisories (OSV format) for the dependency checks. Never fetched at scan time."""


@advisories.command("import")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--snapshot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the snapshot here (default: $BASTION_HOME/advisories/snapshot.json).",
)
def import_(sources: tuple[Path, ...], snapshot: Path | None) -> None:
    """Load OSV advisories from SOURCES (JSON files, folders of them, or OSV's all.zip)."""
    from bastion.scanners.workspace.advisories import default_snapshot, import_osv

    meta = import_osv(list(sources), snapshot)
    target = snapshot or default_snapshot()
    total = sum(s["advisories"] for s in meta["sources"])
    click.echo(f"imported {total} PyPI advisories for {meta['packages']} packages into {target}")
    for s in meta["sources"]:
        click.echo(f"  {s['path']}  sha256:{s['sha256']}  ({s['advisories']} advisories)")


@advisories.command("status")
@click.option("--snapshot", type=click.Path(dir_okay=False, path_type=Path))
def status(snapshot: Path | None) -> None:
    """Show when the snapshot was imported and from what."""
    from bastion.errors import InputError
    from bastion.scanners.workspace.advisories import default_snapshot

    target = snapshot or default_snapshot()
    if not target.is_file():
        raise InputError(f"no advisory snapshot at {target}", hint="bastion advisories import OSV_FILE")
    doc = json.loads(target.read_text(encoding="utf-8"))
    click.echo(f"{target}: imported {doc.get('imported_at')}, {doc.get('packages')} packages")
    for s in doc.get("sources", []):
        click.echo(f"  {s['path']}  sha256:{s['sha256']}  ({s['advisories']} advisories)")

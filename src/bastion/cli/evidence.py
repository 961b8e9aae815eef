"""``bastion evidence``: list, show, export and import stored attestations."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

_FILTERS = [
    click.option("--digest", help="Subject digest (sha256:HEX or HEX)."),
    click.option("--name", help="Subject name."),
    click.option("--predicate-type", help="Predicate type URI."),
    click.option("--since", help="Stored at or after (2025-01-31T00:00:00Z)."),
    click.option("--until", help="Stored at or before."),
]


F = TypeVar("F", bound=Callable[..., Any])


def _filters(func: F) -> F:
    for option in reversed(_FILTERS):
        func = option(func)
    return func


@click.group()
def evidence() -> None:
    """The evidence store (SQLite under BASTION_HOME, or BASTION_DATABASE_URL)."""


@evidence.command(name="list")
@_filters
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_(fmt: str, **filters: Any) -> None:
    """List stored attestations, newest first."""
    from bastion.evidence.store import EvidenceStore

    store = EvidenceStore()
    try:
        records = store.query(**filters)
    finally:
        store.close()
    if fmt == "json":
        click.echo(
            json.dumps([r.__dict__ | {"subject_digests": list(r.subject_digests)} for r in records], indent=2)
        )
        return
    for r in records:
        click.echo(
            f"{r.id[:16]}  {r.created_at}  {r.subject_name}  {r.subject_digests[0][:23]}…  {r.predicate_type}"
        )
    if not records:
        click.echo("no attestation matches", err=True)


@evidence.command()
@click.argument("attestation_id")
@click.option("--bundle", "raw", is_flag=True, help="Print the stored bundle instead of the statement.")
def show(attestation_id: str, raw: bool) -> None:
    """Show one attestation's statement (decoded; not verified: use `bastion verify`)."""
    from bastion.evidence.bundle import parse_bundles
    from bastion.evidence.store import EvidenceStore

    store = EvidenceStore()
    try:
        record = store.get(attestation_id)
        data = store.bundle_bytes(record.id)
    finally:
        store.close()
    if raw:
        sys.stdout.write(data.decode("utf-8").strip() + "\n")
        return
    (bundle,) = parse_bundles(data, source=record.id[:16])
    statement = json.loads(bundle.envelope.payload)
    meta = {"id": record.id, "stored": record.created_at, "key_id": record.key_id, "target": record.target}
    click.echo(json.dumps({"attestation": meta, "statement": statement}, indent=2))


@evidence.command()
@_filters
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True)
def export(output: Path, **filters: Any) -> None:
    """Export matching attestations as JSON Lines (one Sigstore bundle per line)."""
    from bastion.evidence.store import EvidenceStore

    store = EvidenceStore()
    try:
        records = store.query(**filters)
        output.write_bytes(store.export(records))
    finally:
        store.close()
    click.echo(f"exported {len(records)} attestation(s) to {output}", err=True)


@evidence.command(name="import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def import_(files: tuple[Path, ...]) -> None:
    """Import bundles (.json) or exports (.jsonl). Signatures are checked later, by `bastion verify`."""
    from bastion.evidence.store import EvidenceStore

    store = EvidenceStore()
    try:
        count = sum(len(store.import_file(path)) for path in files)
    finally:
        store.close()
    click.echo(f"imported {count} attestation(s)", err=True)

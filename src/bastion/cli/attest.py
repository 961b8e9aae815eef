"""``bastion attest``: sign an in-toto statement about a target into a Sigstore bundle, and store it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from bastion.evidence.image import Platform
    from bastion.evidence.targets import Target

HASH_OPTIONS = [
    click.option("--include", multiple=True, help="Only these files (glob or folder, repeatable)."),
    click.option("--exclude", multiple=True, help="Leave these files out (glob or folder, repeatable)."),
    click.option(
        "--allow-symlinks-outside", is_flag=True, help="Follow symlinks whose target leaves the folder."
    ),
    click.option("--workers", "-j", type=click.IntRange(1, 256), help="Hashing threads (default: cores)."),
]


F = TypeVar("F", bound=Callable[..., Any])


def hash_options(func: F) -> F:
    for option in reversed(HASH_OPTIONS):
        func = option(func)
    return func


@click.command()
@click.argument("target")
@click.option("--key", "-k", "key", required=True, help="Signer: key NAME, file:PEM or env:VAR.")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Bundle file (default: stdout)."
)
@click.option(
    "--predicate",
    "predicates",
    multiple=True,
    type=click.Choice(["manifest", "bom", "scan"]),
    help="What to attest (repeatable; default: manifest for dir:, file:, git:; bom for env:, image:).",
)
@click.option(
    "--serialization",
    type=click.Choice(["files", "shards"]),
    default="files",
    show_default=True,
    help="files: what the model_signing CLI verifies; shards: hashes one big file on every core.",
)
@click.option("--shard-size", type=click.IntRange(1 << 20), default=256 << 20, show_default=True)
@click.option(
    "--hash",
    "algorithm",
    type=click.Choice(["sha256", "blake3"]),
    default="sha256",
    show_default=True,
    help="File digest; blake3 (files serialization only) needs the 'blake3' extra.",
)
@click.option(
    "--cache/--no-cache", default=False, help="Reuse digests of unchanged files (BASTION_HOME/cache)."
)
@click.option("--store/--no-store", default=True, show_default=True, help="Record it in the evidence store.")
@click.option(
    "--platform",
    metavar="OS/ARCH[/VARIANT]",
    help="image: targets: which image of a multi-platform index (default: the only one).",
)
@hash_options
def attest(
    target: str,
    key: str,
    output: Path | None,
    predicates: tuple[str, ...],
    serialization: str,
    shard_size: int,
    algorithm: str,
    cache: bool,
    store: bool,
    platform: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    allow_symlinks_outside: bool,
    workers: int | None,
) -> None:
    """Attest TARGET: dir:PATH, file:PATH, git:PATH[@REV], env:[VENV], image:TARBALL (or a bare path).

    Writes a Sigstore bundle v0.3 (JSON; several predicates give JSON Lines) holding a DSSE envelope
    of an in-toto Statement v1. Identical inputs give byte-identical bundles.
    """
    from bastion.cli.keys import get_passphrase
    from bastion.errors import UsageError
    from bastion.evidence.attest import HashOptions, PredicateKind, ignoring
    from bastion.evidence.attest import attest as make
    from bastion.evidence.hashing import GIT_PATHS, HashSpec, Method, Selection
    from bastion.evidence.image import choose_platform
    from bastion.evidence.keys import home
    from bastion.evidence.signers import signer_from_uri
    from bastion.evidence.targets import parse_target

    parsed = parse_target(target)
    chosen_platform = image_platform(parsed, platform)
    try:
        spec = HashSpec(Method(serialization), algorithm, shard_size)
    except ValueError:
        raise UsageError("--hash blake3 works with --serialization files only") from None
    options = HashOptions(
        spec=spec,
        selection=Selection(tuple(include), tuple(exclude), GIT_PATHS),
        workers=workers,
        cache_path=home() / "cache" / "digests.sqlite" if cache else None,
        allow_outside_symlinks=allow_symlinks_outside,
    )
    options = ignoring(options, parsed, output)
    signer = signer_from_uri(key, get_passphrase)
    chosen = tuple(PredicateKind(p) for p in predicates) or None
    with choose_platform(chosen_platform):
        attestations = make(parsed, signer, chosen, options)
    data = b"".join(a.bundle.to_json() + b"\n" for a in attestations)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        output.write_bytes(data)
    for a in attestations:
        subject = a.statement.subjects[0]
        click.echo(f"attested {subject.name} {subject.digests[0]} ({a.statement.predicate_type})", err=True)
    if store:
        from bastion.evidence.store import EvidenceStore

        evidence = EvidenceStore()
        try:
            for a in attestations:
                record = evidence.add(a.bundle.to_json(), target=parsed.uri)
                click.echo(f"stored as {record.id[:16]}", err=True)
        finally:
            evidence.close()


def image_platform(target: Target, platform: str | None) -> Platform | None:
    """``--platform`` parsed; refused for targets other than ``image:``."""
    from bastion.errors import UsageError
    from bastion.evidence.image import Platform
    from bastion.evidence.targets import TargetKind

    if platform is None:
        return None
    if target.kind is not TargetKind.IMAGE:
        raise UsageError(f"--platform applies to image: targets, not {target.uri}")
    return Platform.parse(platform)

"""``bastion keys``: generate, list, show, export, import, rotate, disable, enable; sign the trust file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from bastion.evidence.keys import Keyring

PASSPHRASE_ENV = "BASTION_KEY_PASSPHRASE"  # noqa: S105 - the name of a variable, not a secret
EXPORT_PASSPHRASE_ENV = "BASTION_EXPORT_PASSPHRASE"  # noqa: S105 - the name of a variable, not a secret


def get_passphrase(description: str, *, confirm: bool = False, env: str = PASSPHRASE_ENV) -> str:
    """From ``$BASTION_KEY_PASSPHRASE`` (or ``env``), else a hidden prompt on a terminal; never echoed
    or logged."""
    from bastion.evidence.errors import PassphraseError

    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        raise PassphraseError(
            f"a passphrase is needed for {description} and there is no terminal to ask it on",
            hint=f"set {env}",
        )
    answer: str = click.prompt(
        f"Passphrase for {description}", hide_input=True, confirmation_prompt=confirm, err=True
    )
    return answer


@click.group()
def keys() -> None:
    """Manage signing keys and the trust file under BASTION_HOME (default ~/.bastion)."""


@keys.command()
@click.option("--name", required=True, help="Key name (letters, digits, '.', '_', '-').")
@click.option(
    "--algorithm",
    type=click.Choice(["ecdsa-p256", "ed25519"]),
    default="ecdsa-p256",
    show_default=True,
    help="ecdsa-p256 is verifiable by OpenSSF model-signing; ed25519 only by Bastion.",
)
@click.option("--expires-in", type=click.IntRange(1, 36500), help="Days until the key expires.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="Target kinds it may sign: dir, file, env, git, image, or trust (only the trust file); default *.",
)
def generate(name: str, algorithm: str, expires_in: int | None, scopes: tuple[str, ...]) -> None:
    """Generate a key pair; the private key is sealed with a passphrase and trusted for verification."""
    from bastion.evidence.keys import KeyAlgorithm, Keyring

    ring = Keyring()
    signed = _signed(ring)
    passphrase = get_passphrase(f"new key {name!r}", confirm=True)
    info = ring.generate(
        name,
        passphrase,
        algorithm=KeyAlgorithm(algorithm),
        expires_in_days=expires_in,
        scopes=scopes or ("*",),
    )
    click.echo(f"generated {info.algorithm.value} key {info.name!r} id {info.key_id}")
    _resign_hint(signed)


@keys.command(name="list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_keys(fmt: str) -> None:
    """List every key in the trust file."""
    from bastion.evidence.keys import Keyring

    entries = Keyring().entries()
    if fmt == "json":
        payload = [{k: v for k, v in e.to_dict().items() if k != "public_key"} for e in entries]
        click.echo(json.dumps(payload, indent=2))
        return
    if not entries:
        click.echo("no keys yet: bastion keys generate --name NAME")
    for e in entries:
        private = "private+public" if e.has_private else "public only"
        expiry = f" expires {e.expires}" if e.expires else ""
        click.echo(
            f"{e.name:<20} {e.short_id}  {e.algorithm.value:<10} {e.status.value:<8} {private}"
            f"  scopes={','.join(e.scopes)}{expiry}"
        )


@keys.command()
@click.argument("name")
def show(name: str) -> None:
    """Show one key (its public half) as JSON."""
    from bastion.evidence.keys import Keyring

    click.echo(json.dumps(Keyring().find(name).to_dict(), indent=2))


@keys.command(name="export-public")
@click.argument("name")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the PEM here.")
def export_public(name: str, output: Path | None) -> None:
    """Print the public key (PEM), e.g. for `model_signing verify key --public_key`."""
    from bastion.evidence.keys import Keyring

    pem = Keyring().find(name).public_pem
    if output is None:
        click.echo(pem, nl=False)
    else:
        output.write_text(pem, encoding="utf-8")


@keys.command(name="import-public")
@click.argument("name")
@click.argument("pem_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--scope", "scopes", multiple=True, help="Target kinds it is trusted for (default *).")
@click.option("--expires", help="Stop trusting it at this time (2030-01-31T00:00:00Z).")
def import_public(name: str, pem_file: Path, scopes: tuple[str, ...], expires: str | None) -> None:
    """Trust someone else's public key (P-256 or Ed25519 PEM)."""
    from bastion.evidence.keys import Keyring

    ring = Keyring()
    signed = _signed(ring)
    info = ring.import_public(name, pem_file.read_bytes(), scopes=scopes or ("*",), expires=expires)
    click.echo(f"trusting {info.algorithm.value} key {info.name!r} id {info.key_id}")
    _resign_hint(signed)


@keys.command()
@click.argument("name")
@click.option("--expires-in", type=click.IntRange(1, 36500), help="Days until the new key expires.")
def rotate(name: str, expires_in: int | None) -> None:
    """Replace NAME's active key with a new one; the old one is retired (still verifies, never signs)."""
    from bastion.evidence.keys import Keyring

    ring = Keyring()
    signed = _signed(ring)
    passphrase = get_passphrase(f"the new version of {name!r}", confirm=True)
    old, new = ring.rotate(name, passphrase, expires_in_days=expires_in)
    click.echo(f"retired {old.short_id}; {name!r} is now {new.key_id}")
    _resign_hint(signed)


@keys.command()
@click.argument("name")
def disable(name: str) -> None:
    """Disable a key (e.g. compromised): nothing it signed verifies any more."""
    from bastion.evidence.keys import Keyring, KeyStatus

    ring = Keyring()
    signed = _signed(ring)
    info = ring.set_status(name, KeyStatus.DISABLED)
    click.echo(f"disabled {info.name!r} ({info.key_id})")
    _resign_hint(signed)


@keys.command()
@click.argument("name")
def enable(name: str) -> None:
    """Re-enable a disabled key (disabled by mistake). A key rotated out, or whose name now has
    another active key, is not brought back."""
    from bastion.evidence.keys import Keyring

    ring = Keyring()
    signed = _signed(ring)
    info = ring.enable(name)
    click.echo(f"enabled {info.name!r} ({info.key_id})")
    if info.expires is not None:
        click.echo(f"note: it expires (or expired) at {info.expires}", err=True)
    _resign_hint(signed)


@keys.command(name="export-private")
@click.argument("name")
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A new file for the encrypted PEM (never overwritten; mode 0600).",
)
def export_private(name: str, output: Path) -> None:
    """Export NAME's private key as encrypted PKCS#8 PEM (for OpenSSL, another signer, a KMS).

    The key is opened with its passphrase (BASTION_KEY_PASSPHRASE or a prompt) and written under
    another (BASTION_EXPORT_PASSPHRASE or a prompt); it is never written unencrypted.
    """
    from bastion.errors import UsageError
    from bastion.evidence.keys import Keyring

    ring = Keyring()
    info = ring.find(name)
    if output.exists() or output.is_symlink():
        raise UsageError(f"{output} exists; refusing to overwrite it")
    passphrase = get_passphrase(f"key {info.name!r}")
    export_passphrase = get_passphrase(
        f"the exported copy of {info.name!r}", confirm=True, env=EXPORT_PASSPHRASE_ENV
    )
    info = ring.export_private(info.key_id, passphrase, export_passphrase, output)
    click.echo(f"exported the private key of {info.name!r} ({info.key_id}) to {output}, encrypted", err=True)


def _signed(ring: Keyring) -> bool:
    """Whether the trust file is signed now (raises, as every read does, if that signature is bad)."""
    return ring.trust_signature() is not None


def _resign_hint(was_signed: bool) -> None:
    if was_signed:
        click.echo(
            "note: the trust file changed, so its signature was dropped; sign it again with "
            "`bastion keys trust sign --key ROOT`",
            err=True,
        )


_TRUST_ROOT_OPTION = click.option(
    "--trust-root",
    "trust_root",
    metavar="KEY_ID",
    help="Key id of the root that must have signed the trust file (default: $BASTION_TRUST_ROOT).",
)


@keys.group()
def trust() -> None:
    """Sign the trust file with a root key, and check its signature.

    Pin the root with BASTION_TRUST_ROOT=KEY_ID (or --trust-root): every command then refuses a
    trust file that the root did not sign. Generate a root with `keys generate --scope trust`.
    """


@trust.command(name="sign")
@click.option("--key", "-k", "key", required=True, help="The root key: NAME, file:PEM or env:VAR.")
@_TRUST_ROOT_OPTION
def trust_sign(key: str, trust_root: str | None) -> None:
    """Sign the trust file as it is now (after checking every entry)."""
    from bastion.evidence.keys import Keyring
    from bastion.evidence.signers import signer_from_uri

    ring = Keyring(trust_root=trust_root)
    # the root's own entry is read from the very file being (re-)signed: its signature is not checked
    # here; sign_trust checks that the key is the pinned root
    unchecked = Keyring(ring.root, trust_root="", check_signature=False)
    signer = signer_from_uri(key, get_passphrase, keyring=unchecked)
    signature = ring.sign_trust(signer)
    click.echo(f"signed {ring.trust_path} with root {signature.root_key_id}")
    if not signature.pinned:
        click.echo(
            f"note: pin this root so that an unsigned trust file is refused: "
            f"export BASTION_TRUST_ROOT={signature.root_key_id}",
            err=True,
        )


@trust.command(name="status")
@_TRUST_ROOT_OPTION
def trust_status(trust_root: str | None) -> None:
    """Say who signed the trust file, and whether that root is pinned. Exit 2 if it does not verify."""
    from bastion.evidence.keys import Keyring

    ring = Keyring(trust_root=trust_root)
    signature = ring.trust_signature()
    if not ring.trust_path.exists():
        click.echo(f"{ring.trust_path}: no trust file yet (no key is trusted)")
    elif signature is None:
        click.echo(f"{ring.trust_path}: not signed (no trust root is pinned, so it is accepted)")
    elif signature.pinned:
        click.echo(f"{ring.trust_path}: signed by the pinned root {signature.root_key_id}")
    else:
        click.echo(
            f"{ring.trust_path}: signed by {signature.root_key_id}, which is not pinned "
            "(set BASTION_TRUST_ROOT to require it)"
        )

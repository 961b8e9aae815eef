"""``bastion secrets``: an encrypted local secrets store, and one process run with secrets injected.

A value is never taken as a command-line argument (it would land in shell history and ``ps``): it
comes from standard input, from a named environment variable, or from a hidden prompt. The store
passphrase comes from ``$BASTION_SECRETS_PASSPHRASE`` or a hidden prompt.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from bastion.secrets import SecretStore

PASSPHRASE_ENV = "BASTION_SECRETS_PASSPHRASE"  # noqa: S105 - the name of a variable, not a secret


def _passphrase(*, confirm: bool = False, prompt: str = "Secrets store passphrase") -> str:
    from bastion.secrets import SecretsPassphraseError

    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value
    if not sys.stdin.isatty():
        raise SecretsPassphraseError(
            "the secrets store needs a passphrase and there is no terminal to ask it on",
            hint=f"set {PASSPHRASE_ENV}",
        )
    answer: str = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)
    return answer


def _value(name: str, from_stdin: bool, value_env: str | None) -> str:
    from bastion.errors import UsageError

    if from_stdin and value_env:
        raise UsageError("give either --from-stdin or --value-env, not both")
    if value_env:
        value = os.environ.get(value_env)
        if not value:
            raise UsageError(f"--value-env {value_env}: that environment variable is not set or is empty")
        return value
    if from_stdin:
        data = sys.stdin.read()
        return data[:-1] if data.endswith("\n") else data  # `echo VALUE |` adds one newline
    if not sys.stdin.isatty():
        raise UsageError(
            f"no value for {name!r}", hint="pipe it in with --from-stdin or name a variable with --value-env"
        )
    answer: str = click.prompt(f"Value of {name}", hide_input=True, confirmation_prompt=True, err=True)
    return answer


def _store() -> SecretStore:
    from bastion.secrets import SecretStore

    return SecretStore()


_value_options = [
    click.option(
        "--from-stdin",
        is_flag=True,
        help="Read the value from standard input (one trailing newline dropped).",
    ),
    click.option("--value-env", metavar="VAR", help="Read the value from environment variable VAR."),
]


def _with_value_options(f: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(_value_options):
        f = option(f)
    return f


@click.group()
def secrets() -> None:
    """Keep credentials in an encrypted store under BASTION_HOME and inject them into one process.

    The passphrase comes from BASTION_SECRETS_PASSPHRASE or a prompt. Every access is appended to
    $BASTION_HOME/secrets/audit.jsonl (verify it with `bastion audit verify`).
    """


@secrets.command(name="set")
@click.argument("name")
@_with_value_options
def set_secret(name: str, from_stdin: bool, value_env: str | None) -> None:
    """Store a new secret NAME (creates the store on first use). Values never go on the command line."""
    from bastion.secrets.store import check_name

    store = _store()
    with store.audited("set", name, record_success=False):
        check_name(name)
        value = _value(name, from_stdin, value_env)
        passphrase = _passphrase(confirm=not store.exists())
    version = store.set(name, value, passphrase)
    click.echo(f"stored {name} (version {version.version})", err=True)


@secrets.command(name="get")
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(1), help="An older version (default: current).")
@click.option("--no-newline", "-n", is_flag=True, help="Do not print a newline after the value.")
def get_secret(name: str, version: int | None, no_newline: bool) -> None:
    """Print the value of NAME on standard output (and nowhere else)."""
    store = _store()
    with store.audited("get", name, record_success=False):
        passphrase = _passphrase()
    value = store.get(name, passphrase, version=version)
    click.echo(value, nl=not no_newline)


@secrets.command(name="list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_secrets(fmt: str) -> None:
    """List names, versions and dates (never values; no passphrase needed)."""
    entries = _store().list()
    if fmt == "json":
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2))
        return
    if not entries:
        click.echo("no secrets yet: bastion secrets set NAME --from-stdin")
    for e in entries:
        older = f"  (+{len(e.versions) - 1} older)" if len(e.versions) > 1 else ""
        click.echo(f"{e.name:<32} v{e.current.version:<4} {e.current.created}{older}")


@secrets.command()
@click.argument("name")
@_with_value_options
def rotate(name: str, from_stdin: bool, value_env: str | None) -> None:
    """Give NAME a new value as a new version; the previous one is kept until `delete --old`."""
    from bastion.secrets.store import check_name

    store = _store()
    with store.audited("rotate", name, record_success=False):
        check_name(name)
        value = _value(name, from_stdin, value_env)
        passphrase = _passphrase()
    version = store.rotate(name, value, passphrase)
    click.echo(f"rotated {name}: version {version.version} is current", err=True)


@secrets.command()
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(1), help="Delete only this version.")
@click.option("--old", is_flag=True, help="Delete every version but the current one.")
def delete(name: str, version: int | None, old: bool) -> None:
    """Delete NAME (every version), one --version, or the --old versions kept by rotate."""
    from bastion.errors import UsageError

    store = _store()
    with store.audited("delete", name, record_success=False):
        if version is not None and old:
            raise UsageError("give either --version or --old, not both")
        passphrase = _passphrase()
    removed = store.delete(name, passphrase, version=version, old=old)
    click.echo(f"deleted {removed} version(s) of {name}", err=True)


@secrets.command()
def passphrase() -> None:
    """Change the store passphrase (re-wraps the data keys; values are not re-encrypted)."""
    from bastion.errors import UsageError

    store = _store()
    with store.audited("passphrase", None, record_success=False):
        current = _passphrase()
        if not sys.stdin.isatty():
            raise UsageError("changing the passphrase needs a terminal to ask the new one on")
        new: str = click.prompt("New passphrase", hide_input=True, confirmation_prompt=True, err=True)
    count = store.change_passphrase(current, new)
    click.echo(f"passphrase changed; {count} data key(s) re-wrapped", err=True)


@secrets.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--only", "only", multiple=True, metavar="NAME", help="Inject only this secret (repeatable).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(only: tuple[str, ...], command: tuple[str, ...]) -> None:
    """Run COMMAND with secrets as environment variables (no shell); exit with its exit code.

    \b
    bastion secrets run -- python train.py
    bastion secrets run --only HF_TOKEN -- huggingface-cli upload org/model ./out
    """
    from bastion.secrets import run_with_secrets

    store = _store()
    with store.audited("run", ",".join(only) or "*", record_success=False):
        passphrase = _passphrase()
    sys.exit(run_with_secrets(store, passphrase, list(command), only=only))

"""The Click application. Subcommands are imported only when invoked, so ``bastion --help`` stays
instant; the table of subcommands is :data:`bastion.cli.main.COMMANDS`."""

from __future__ import annotations

import importlib

import click

from bastion import __version__
from bastion.cli.main import COMMANDS


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        command = getattr(module, entry[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="bastion")
def cli() -> None:
    """Bastion: collect evidence about ML artifacts, decide with policy, enforce at every gate.

    Exit codes: 0 clean, 1 findings at or above --fail-on, 2 could not decide, 3 nothing scannable.
    """

"""Entry point. Subcommands are imported only when invoked, so ``bastion --help`` stays instant."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from bastion import __version__
from bastion.errors import BastionError

# name -> (module, attribute, one-line help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "scan": ("bastion.cli.scan", "scan", "Scan model files, folders and archives without loading them."),
    "demo": ("bastion.cli.demo", "demo", "Walk the lifecycle on a sample project Bastion makes itself."),
    "keys": ("bastion.cli.keys", "keys", "Create, list, rotate and disable signing keys and trust."),
    "attest": ("bastion.cli.attest", "attest", "Sign an attestation about a model, dataset or environment."),
    "verify": ("bastion.cli.verify", "verify", "Verify an artifact against its signed attestations."),
    "bom": ("bastion.cli.bom", "bom", "Write a CycloneDX 1.6 SBOM / ML-BOM for a model or environment."),
    "evidence": ("bastion.cli.evidence", "evidence", "List, show, export and import stored evidence."),
    "secrets": ("bastion.cli.secrets", "secrets", "Encrypted secrets store; inject secrets into a process."),
    "gate": ("bastion.cli.gate", "gate", "Scan, attest and verify under a policy: one exit code for CI."),
    "admission": ("bastion.cli.admission", "admission", "Kubernetes validating admission webhook (HTTPS)."),
    "report": ("bastion.cli.report", "report", "Posture report: ATLAS and NIST AI RMF evidenced or missing."),
    "gateway": ("bastion.cli.gateway", "gateway", "Serve models with auth, limits, audit, theft detection."),
    "tokens": ("bastion.cli.gateway", "keys", "The gateway's API keys: create (shown once), list, revoke."),
    "audit": ("bastion.cli.audit", "audit", "Verify tamper-evident audit logs."),
    "monitor": ("bastion.cli.monitor", "monitor", "Baselines, data-quality and drift checks, alarms."),
    "advisories": ("bastion.cli.advisories", "advisories", "Import and inspect the offline OSV advisories."),
}


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


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="bastion", standalone_mode=True)
    except BastionError as exc:
        click.echo(f"bastion: error: {exc.diagnostics()}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()

"""Entry point (the ``bastion`` console script). Importing it imports no Click: a plain
``bastion scan FILE...`` takes the fast path of :mod:`bastion.cli.fastscan`, and everything else
goes to the Click application of :mod:`bastion.cli.app`, whose subcommands are imported only when
invoked so that ``bastion --help`` stays instant."""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

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
    "serve": ("bastion.cli.gateway", "serve", "Serve models through the gateway (= bastion gateway serve)."),
    "tokens": ("bastion.cli.gateway", "keys", "The gateway's API keys: create (shown once), list, revoke."),
    "audit": ("bastion.cli.audit", "audit", "Verify tamper-evident audit logs."),
    "monitor": ("bastion.cli.monitor", "monitor", "Baselines, data-quality and drift checks, alarms."),
    "advisories": ("bastion.cli.advisories", "advisories", "Import and inspect the offline OSV advisories."),
}


def main(argv: list[str] | None = None) -> Any:
    """Run ``bastion`` on ``argv`` (default: ``sys.argv[1:]``); exits with the command's exit code."""
    try:
        from bastion.cli.fastscan import fast_scan

        code = fast_scan(sys.argv[1:] if argv is None else argv)
        if code is not None:
            if argv is None:  # the console script: this process has nothing left to do
                _exit_now(code)
            sys.exit(code)
        from bastion.cli.app import cli

        return cli.main(args=argv, prog_name="bastion", standalone_mode=True)
    except BastionError as exc:
        print(f"bastion: error: {exc.diagnostics()}", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)


def _exit_now(code: int) -> NoReturn:
    """Flush and end the process without the interpreter's teardown (freeing every module and
    object one by one), which costs a one-file scan ~8 ms, a tenth of its run. The scan has closed
    its files and worker pool by now; only the standard streams still hold data."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # the reader went away (EPIPE), as fast_scan reports it
        code = code or 1
    os._exit(code)


if __name__ == "__main__":
    main()

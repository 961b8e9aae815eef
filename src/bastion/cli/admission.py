"""``bastion admission serve``: the Kubernetes validating admission webhook (HTTPS)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def admission() -> None:
    """Kubernetes validating admission webhook: admit only workloads with a passing signed verdict."""


@admission.command("serve")
@click.option("--cert", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key", "key_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--host", default="0.0.0.0", show_default=True)  # noqa: S104 - a webhook listens on the pod IP
@click.option("--port", default=8443, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML: default_environment, namespaces {ns: env}, exempt_namespaces, audit_only.",
)
@click.option("--audit-only", is_flag=True, help="Allow everything; return the reasons as warnings.")
def serve(cert: Path, key_file: Path, host: str, port: int, config: Path | None, audit_only: bool) -> None:
    """Serve POST /validate (AdmissionReview v1) over TLS until interrupted."""
    from dataclasses import replace

    from bastion.evidence.keys import Keyring
    from bastion.evidence.store import EvidenceStore
    from bastion.policy.admission import AdmissionConfig, StoreVerdicts, load_config
    from bastion.policy.webhook import make_server

    settings = load_config(config) if config else AdmissionConfig()
    if audit_only:
        settings = replace(settings, audit_only=True)
    store = EvidenceStore()
    lookup = StoreVerdicts(store, Keyring(), settings.max_verdict_age_days)
    server = make_server(host, port, cert, key_file, settings, lookup)
    mode = "audit-only" if settings.audit_only else "enforcing"
    click.echo(
        f"bastion admission webhook on https://{host}:{server.server_address[1]}/validate ({mode})", err=True
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()

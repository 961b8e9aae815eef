"""``bastion gateway``: serve models, write training references, read and set model states, manage API keys.

bastion gateway serve --config bastion.yaml [--tls-cert C --tls-key K] [--tls-client-ca A --tls-client-crl L]
bastion gateway reference TRAINING_DATA --columns a,b,c -o model.reference.json
bastion gateway state MODEL [normal|throttle|block --reason WHY [--factor F]] --url URL
bastion gateway keys create --config bastion.yaml --identity alice [--expires-in 30d]
bastion gateway keys list   --config bastion.yaml
bastion gateway keys revoke --config bastion.yaml KEY_ID
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bastion.errors import BastionError, ConfigError, UsageError

if TYPE_CHECKING:
    from bastion.gateway.config import GatewayConfig
    from bastion.gateway.credentials import ApiKeyStore

_CONFIG = click.option(
    "--config",
    "-c",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Gateway configuration (YAML or JSON).",
)


def _duration(text: str | None) -> dt.timedelta | None:
    if text is None:
        return None
    match = re.fullmatch(r"(\d+)([mhd])", text)
    if match is None:
        raise UsageError(f"--expires-in {text!r}: use a number and m, h or d (e.g. 30d)")
    amount, unit = int(match.group(1)), match.group(2)
    return {
        "m": dt.timedelta(minutes=amount),
        "h": dt.timedelta(hours=amount),
        "d": dt.timedelta(days=amount),
    }[unit]


def _store(config_path: Path) -> ApiKeyStore:
    from bastion.gateway.config import load_config
    from bastion.gateway.credentials import ApiKeyStore

    config = load_config(config_path)
    if config.auth.api_keys_file is None:
        raise ConfigError(f"{config_path}: auth.api_keys_file is not set")
    return ApiKeyStore(config.auth.api_keys_file)


@click.group()
def gateway() -> None:
    """Serve models behind authentication, authorisation, limits, audit and extraction detection."""


_PEM = click.Path(exists=True, dir_okay=False, path_type=Path)


@gateway.command()
@_CONFIG
@click.option("--tls-cert", type=_PEM, help="Serve HTTPS (TLS 1.2+) with this certificate (server.tls_cert).")
@click.option("--tls-key", type=_PEM, help="The certificate's private key (server.tls_key).")
@click.option(
    "--tls-client-ca",
    type=_PEM,
    help="mTLS: require client certificates issued by this CA (overrides server.tls_client_ca).",
)
@click.option(
    "--tls-client-crl",
    type=_PEM,
    help="mTLS: refuse client certificates this CA revoked (PEM CRLs; server.tls_client_crl).",
)
def serve(
    config_path: Path,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
    tls_client_crl: Path | None,
) -> None:
    """Serve the configured models until interrupted (Ctrl-C or SIGTERM flushes the audit log).

    The --tls-* options override the configuration's server section; the same checks apply.
    """
    from bastion.gateway.config import load_config
    from bastion.gateway.server import serve as run

    overrides = {
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "tls_client_ca": tls_client_ca,
        "tls_client_crl": tls_client_crl,
    }
    config = with_server(load_config(config_path), overrides)
    scheme = "https" if config.server.tls_cert else "http"
    click.echo(f"bastion gateway on {scheme}://{config.server.host}:{config.server.port}", err=True)
    run(config)


def with_server(config: GatewayConfig, overrides: dict[str, Path | None]) -> GatewayConfig:
    """``config`` with the given server paths replaced (``None``: kept), validated as the file would be."""
    from pydantic import ValidationError

    from bastion.gateway.config import Server

    updates = {key: path.resolve() for key, path in overrides.items() if path is not None}
    if not updates:
        return config
    try:
        server = Server.model_validate({**config.server.model_dump(), **updates})
    except ValidationError as exc:
        flags = ", ".join("--" + key.replace("_", "-") for key in updates)
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise UsageError(f"{flags}: {reasons}") from None
    return config.model_copy(update={"server": server})


@gateway.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--columns",
    help="The model's input columns, comma-separated, in the model's order (default: every column).",
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the reference (name it in the model's detection.reference).",
)
@click.option(
    "--max-rows",
    default=200_000,
    show_default=True,
    type=click.IntRange(min=20),
    help="Past this many rows, a uniform random sample of them (fixed seed).",
)
def reference(data: Path, columns: str | None, output: Path, max_rows: int) -> None:
    """Write the training reference of the data in DATA (CSV, JSON lines, Parquet, or a folder of them)
    for the extraction detector's out-of-distribution rate (needs the monitor extra to read data)."""
    from bastion.gateway.reference import reference_from_data

    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    doc = reference_from_data(data, names, max_rows=max_rows)
    output.write_text(json.dumps(doc) + "\n", encoding="utf-8")
    click.echo(
        f"{output}: {doc['format']}, {doc['rows']} rows × {doc['features']} features, "
        f"threshold {doc['threshold']:.3f} (the {doc['quantile']:.0%} quantile of the rows' distances)"
    )


@gateway.command("state")
@click.argument("model")
@click.argument("state", required=False, type=click.Choice(["normal", "throttle", "block"]))
@click.option("--url", required=True, help="The gateway's base URL (https://; http:// only on loopback).")
@click.option("--reason", help="Why (required to set a state; it goes into the audit trail).")
@click.option("--factor", type=click.FloatRange(1, 1000), help="throttle: the tokens each row costs (10).")
@click.option(
    "--token-env",
    default="BASTION_GATEWAY_TOKEN",
    show_default=True,
    help="The environment variable with the bearer token (manage to set, read-metadata to read).",
)
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), help="Trust only this CA (https).")
@click.option("--timeout", default=5.0, show_default=True, type=click.FloatRange(0, 60, min_open=True))
def state_command(
    model: str,
    state: str | None,
    url: str,
    reason: str | None,
    factor: float | None,
    token_env: str,
    ca_file: str | None,
    timeout: float,
) -> None:
    """Read MODEL's runtime state at a running gateway, or set it to STATE: block suspends predictions (503),
    throttle makes each row cost --factor tokens and answers labels only, normal lifts both.

    The token is read from the environment, never from the command line.
    """
    from bastion.monitor.actions import GatewayAction, request_state

    action = GatewayAction(url=url, model=model, token_env=token_env, timeout_s=timeout, ca_file=ca_file)
    body: dict[str, object] | None = None
    if state is None:
        if reason is not None or factor is not None:
            raise UsageError("--reason and --factor go with a STATE to set")
    else:
        if not reason:
            raise UsageError("--reason is required to set a model's state")
        if factor is not None and state != "throttle":
            raise UsageError("--factor is for the throttle state")
        body = {"state": state, "reason": reason}
        if factor is not None:
            body["factor"] = factor
    result, answer = request_state(action, body)
    if not result.ok:
        raise BastionError(f"{result.target}: {result.detail}")
    click.echo(json.dumps(answer, indent=2, sort_keys=True) if answer is not None else result.detail)


@gateway.group()
def keys() -> None:
    """Create, list and revoke API keys (stored hashed; a key is shown once)."""


@keys.command("create")
@_CONFIG
@click.option(
    "--identity", "-i", required=True, help="The identity (from the configuration) the key speaks for."
)
@click.option("--expires-in", help="Lifetime, e.g. 12h or 30d (default: no expiry).")
@click.option("--note", default="", help="A free-text note stored with the key.")
def create(config_path: Path, identity: str, expires_in: str | None, note: str) -> None:
    """Create a key and print it once; only its hash is stored."""
    from bastion.gateway.config import load_config

    if identity not in load_config(config_path).identities:
        click.echo(
            f"note: {identity!r} has no bindings in the configuration; the key grants nothing yet", err=True
        )
    token, record = _store(config_path).create(identity, expires_in=_duration(expires_in), note=note)
    click.echo(f"key id {record.id} for {record.identity} (expires {record.expires or 'never'})", err=True)
    click.echo(token)


@keys.command("list")
@_CONFIG
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_keys(config_path: Path, fmt: str) -> None:
    """List keys (ids, identities, dates; never secrets or hashes)."""
    rows = [
        {
            "id": r.id,
            "identity": r.identity,
            "created": r.created,
            "expires": r.expires,
            "revoked": r.revoked,
            "note": r.note,
        }
        for r in _store(config_path).records()
    ]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = f"revoked {row['revoked']}" if row["revoked"] else f"expires {row['expires'] or 'never'}"
        click.echo(f"{row['id']}  {row['identity']:<20} created {row['created']}  {state}  {row['note']}")


@keys.command("revoke")
@_CONFIG
@click.argument("key_id")
def revoke(config_path: Path, key_id: str) -> None:
    """Revoke a key; a running gateway stops accepting it at once."""
    record = _store(config_path).revoke(key_id)
    click.echo(f"revoked {record.id} ({record.identity})")

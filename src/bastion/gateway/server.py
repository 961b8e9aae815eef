"""Serving the gateway with uvicorn: loopback by default, TLS 1.2+ when a certificate is configured, a
deadline on request headers, access logging left to the audit trail, no ``Server`` banner, no
``X-Forwarded-For`` rewriting by uvicorn (``server.trusted_proxies`` decides that), no WebSocket upgrades.

Plain uvicorn keeps a connection whose client sends its headers slowly open indefinitely (its keep-alive
timer only runs between requests). ``GuardedH11Protocol`` arms a deadline whenever the server waits for a
request's headers and closes the connection when they are not complete in time. Slow *bodies* are handled by
the read deadline in ``middleware.read_body``.

uvicorn writes a response's status line and headers, then its body, as two socket sends; the protocol holds
the head back until the body's first bytes (or a close) so that a response leaves in one send.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from bastion.errors import ConfigError
from bastion.gateway.config import GatewayConfig
from bastion.gateway.middleware import CLIENT_SUBJECT


class _HeadHoldingTransport:
    """Delegates to the real transport, except that a response head (a status line of 200 or more) is held
    until the next write or close and then sent together with it: one send per response instead of two.
    Informational responses (``100 Continue``) go out at once: the client is waiting for them."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        chunk = bytes(data)
        if not self._head and chunk.startswith(b"HTTP/1.") and chunk[9:10] not in (b"1", b""):
            self._head = chunk
            return
        chunk, self._head = self._head + chunk, b""
        if chunk:
            self._transport.write(chunk)

    def flush(self) -> None:
        if self._head:
            head, self._head = self._head, b""
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _peer_subject(transport: asyncio.Transport) -> str | None:
    """The RFC 4514 subject of the client certificate the TLS handshake verified, if any."""
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return None
    from cryptography import x509

    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


class GuardedH11Protocol(H11Protocol):
    header_timeout_s: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        subject = _peer_subject(transport)
        if subject is not None:  # mTLS: every request on this connection carries the verified subject
            self.app = _with_subject(self.app, subject)
        super().connection_made(transport)  # flow control and addresses keep the real transport
        # uvicorn types its transport attribute as asyncio.Transport; the holder delegates everything to one
        self.transport = _HeadHoldingTransport(transport)  # type: ignore[assignment]
        self._arm()

    def on_response_complete(self) -> None:
        holder = self.transport
        if isinstance(holder, _HeadHoldingTransport):
            holder.flush()  # never leave a head behind (a response always writes its body, but be sure)
        super().on_response_complete()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Headers still incomplete: the deadline runs (from their first bytes, armed once). A request whose
        # headers came whole in this read (the usual case) never sets a timer: one fewer per request.
        if self.conn.their_state is h11.IDLE:
            self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def _with_subject(app: Any, subject: str) -> Any:
    async def with_subject(scope: Any, receive: Any, send: Any) -> None:
        scope[CLIENT_SUBJECT] = subject
        await app(scope, receive, send)

    return with_subject


def uvicorn_config(app: Any, config: GatewayConfig, *, port: int | None = None) -> Any:
    import uvicorn

    server = config.server
    protocol = type(
        "GatewayH11Protocol", (GuardedH11Protocol,), {"header_timeout_s": server.header_timeout_s}
    )
    options: dict[str, Any] = {}
    if server.tls_cert is not None:
        options = {"ssl_certfile": str(server.tls_cert), "ssl_keyfile": str(server.tls_key)}
        if server.tls_client_ca is not None:  # mTLS: the handshake fails without a certificate from this CA
            options |= {"ssl_ca_certs": str(server.tls_client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    uv = uvicorn.Config(
        app,
        host=server.host,
        port=server.port if port is None else port,
        http=protocol,
        lifespan="on",
        server_header=False,
        proxy_headers=False,  # the gateway decides who may set X-Forwarded-For (server.trusted_proxies)
        ws="none",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        h11_max_incomplete_event_size=16 * 1024,
        **options,
    )
    uv.load()
    if uv.ssl is not None:
        uv.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        if server.tls_client_crl is not None and server.tls_client_ca is not None:
            check_crls(server.tls_client_crl, server.tls_client_ca)
            uv.ssl.load_verify_locations(cafile=str(server.tls_client_crl))
            uv.ssl.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF  # a client's issuer without a CRL: refused
    return uv


def check_crls(crl_file: Path, ca_file: Path) -> int:
    """Refuse to start on revocation lists that would fail every handshake or prove nothing: unreadable,
    not signed by a certificate of the client CA bundle, or past their next update. Returns how many."""
    from cryptography import x509

    try:
        text = crl_file.read_bytes()
        cas = x509.load_pem_x509_certificates(ca_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{crl_file}: cannot read the revocation lists or the client CA: {exc}") from None
    marker = b"-----BEGIN X509 CRL-----"
    blocks = [marker + part for part in text.split(marker)[1:]]
    if not blocks:
        raise ConfigError(f"{crl_file}: no PEM revocation list (-----BEGIN X509 CRL-----) in it")
    now = datetime.datetime.now(datetime.UTC)
    for number, block in enumerate(blocks, start=1):
        try:
            crl = x509.load_pem_x509_crl(block)
        except ValueError:
            raise ConfigError(f"{crl_file}: revocation list {number} is malformed") from None
        issuers = [ca for ca in cas if ca.subject == crl.issuer]
        if not any(_signed_by(crl, ca) for ca in issuers):
            raise ConfigError(
                f"{crl_file}: revocation list {number} ({crl.issuer.rfc4514_string()}) is not signed by a "
                f"certificate of {ca_file}"
            )
        if crl.next_update_utc is not None and crl.next_update_utc < now:
            raise ConfigError(
                f"{crl_file}: revocation list {number} expired at {crl.next_update_utc:%Y-%m-%dT%H:%M:%SZ}; "
                "fetch the CA's current one (TLS would refuse every client certificate)"
            )
    return len(blocks)


def _signed_by(crl: Any, ca: Any) -> bool:
    try:
        return bool(crl.is_signature_valid(ca.public_key()))
    except (TypeError, ValueError):
        return False


def serve(config: GatewayConfig) -> None:
    """Run until SIGINT/SIGTERM; the lifespan shutdown flushes and closes the audit log."""
    import uvicorn

    from bastion.gateway.app import build_app

    uvicorn.Server(uvicorn_config(build_app(config), config)).run()


@contextlib.contextmanager
def serve_in_thread(app: Any, config: GatewayConfig) -> Iterator[str]:
    """Serve on 127.0.0.1 on a free port in a background thread; yield the base URL (tests, demo, benches)."""
    import uvicorn

    uv = uvicorn_config(
        app,
        config.model_copy(update={"server": config.server.model_copy(update={"host": "127.0.0.1"})}),
        port=0,
    )
    server = uvicorn.Server(uv)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"{'https' if config.server.tls_cert else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)

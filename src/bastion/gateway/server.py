"""Serving the gateway with uvicorn: loopback by default, TLS 1.2+ when a certificate is configured, a
deadline on request headers, access logging left to the audit trail, no ``Server`` banner.

Plain uvicorn keeps a connection whose client sends its headers slowly open indefinitely (its keep-alive
timer only runs between requests). ``GuardedH11Protocol`` arms a deadline whenever the server waits for a
request's headers and closes the connection when they are not complete in time. Slow *bodies* are handled by
the read deadline in ``FramingMiddleware``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from bastion.gateway.config import GatewayConfig


class GuardedH11Protocol(H11Protocol):
    header_timeout_s: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

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
        if self.conn.their_state is h11.IDLE:
            self._arm()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def uvicorn_config(app: Any, config: GatewayConfig, *, port: int | None = None) -> Any:
    import uvicorn

    server = config.server
    protocol = type(
        "GatewayH11Protocol", (GuardedH11Protocol,), {"header_timeout_s": server.header_timeout_s}
    )
    options: dict[str, Any] = {}
    if server.tls_cert is not None:
        options = {"ssl_certfile": str(server.tls_cert), "ssl_keyfile": str(server.tls_key)}
    uv = uvicorn.Config(
        app,
        host=server.host,
        port=server.port if port is None else port,
        http=protocol,
        lifespan="on",
        server_header=False,
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
    return uv


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
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)

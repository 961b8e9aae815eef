"""The gateway over real HTTP on 127.0.0.1 (uvicorn): framing, size caps, slow clients, raw paths."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bastion.gateway.app import build_app
from bastion.gateway.server import serve_in_thread
from tests.gateway_helpers import Setup, bearer, make_setup

ROW = [0.0] * 6


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Setup, str]]:
    setup = make_setup(
        tmp_path,
        server={
            "environment": "prod",
            "max_body_bytes": 2048,
            "read_timeout_s": 0.5,
            "header_timeout_s": 0.5,
        },
    )
    with serve_in_thread(build_app(setup.config), setup.config) as url:
        yield setup, url


def _raw(url: str, data: bytes, *, pause: float = 0.0, trickle: bytes = b"") -> tuple[bytes, float]:
    """Send ``data``, then ``trickle`` one byte per ``pause``; return everything read and when it closed."""
    port = int(url.rsplit(":", 1)[1])
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        try:
            for byte in trickle:
                time.sleep(pause)
                sock.sendall(bytes([byte]))
        except OSError:
            pass
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except OSError:
            pass
    return out, time.monotonic() - started


def _head(
    setup: Setup, extra: bytes, path: bytes = b"/v1/models/clf:predict", *, close: bool = True
) -> bytes:
    return (
        b"POST "
        + path
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + (b"Connection: close\r\n" if close else b"")
        + b"Authorization: Bearer "
        + setup.keys["alice"].encode()
        + b"\r\n"
        + extra
    )


def test_content_length_with_transfer_encoding_is_refused_and_closed(served: tuple[Setup, str]) -> None:
    setup, url = served
    framing = b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    out, took = _raw(url, _head(setup, framing, close=False))
    assert out.startswith(b"HTTP/1.1 400") and b"ambiguous-framing" in out
    assert b"connection: close" in out.lower()
    assert out.count(b"HTTP/1.1") == 1 and took < 2  # the server closed it: nothing smuggled after


def test_oversize_bodies_are_refused_from_the_header_and_while_reading(served: tuple[Setup, str]) -> None:
    setup, url = served
    out, _ = _raw(url, _head(setup, b"Content-Length: 999999\r\n\r\n{"))
    assert out.startswith(b"HTTP/1.1 413") and b"body-too-large" in out
    chunk = b"x" * 1500
    chunked = b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2 + b"0\r\n\r\n"
    out, _ = _raw(url, _head(setup, b"Transfer-Encoding: chunked\r\n\r\n" + chunked))
    assert out.startswith(b"HTTP/1.1 413")
    out, _ = _raw(url, _head(setup, b"\r\n"))
    assert out.startswith(b"HTTP/1.1 411")
    statuses = [r["status"] for r in setup.access()]
    assert statuses == [413, 413, 411]


def test_slow_body_gets_408_and_slow_headers_get_dropped(served: tuple[Setup, str]) -> None:
    setup, url = served
    out, took = _raw(
        url, _head(setup, b"Content-Length: 40\r\n\r\n{"), pause=0.2, trickle=b'"instances": [[0,0,0]]'
    )
    assert out.startswith(b"HTTP/1.1 408") and took < 3
    out, took = _raw(
        url, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n", pause=0.2, trickle=b"X-Slow: 1234567890\r\n"
    )
    assert out == b"" and took < 3  # closed by the header deadline, long before the trickle would end
    idle, took = _raw(url, b"")
    assert idle == b"" and took < 3


def test_dot_segments_and_encoded_names_never_reach_another_model(served: tuple[Setup, str]) -> None:
    setup, url = served
    body = json.dumps({"instances": [ROW]}).encode()
    extra = b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    for path in (b"/v1/models/clf/../lin:predict", b"/v1/models/%6cin:predict", b"/v1/models/./lin:predict"):
        out, _ = _raw(url, _head(setup, extra, path))
        assert out.startswith(b"HTTP/1.1 400"), path
    ok = httpx.post(
        url + "/v1/models/clf:predict", json={"instances": [ROW]}, headers=bearer(setup.keys["alice"])
    )
    assert ok.status_code == 200 and "server" not in ok.headers

"""The gateway's server layer over real HTTP on 127.0.0.1: uvicorn does not rewrite the client address from
X-Forwarded-For (the gateway alone decides, from server.trusted_proxies), a response leaves in one piece,
100-continue still works, and routing answers 404/405 as JSON with audit records."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bastion.gateway.app import build_app
from bastion.gateway.audit import verify_chain
from bastion.gateway.server import serve_in_thread
from tests.gateway_helpers import Setup, bearer, make_setup

ROW = [0.1, -0.2, 0.3, 0.0, 1.0, -1.0]


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Setup, str]]:
    # 127.0.0.1 is denied: a spoofed X-Forwarded-For must not get a loopback client past the deny list
    setup = make_setup(tmp_path, server={"environment": "prod", "deny": ["127.0.0.0/8"]})
    with serve_in_thread(build_app(setup.config), setup.config) as url:
        yield setup, url


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(served: tuple[Setup, str]) -> None:
    setup, url = served
    r = httpx.get(
        f"{url}/v1/models", headers={**bearer(setup.keys["alice"]), "X-Forwarded-For": "203.0.113.9"}
    )
    assert r.status_code == 403 and r.json()["error"] == "ip-blocked"
    deadline = time.monotonic() + 5
    while not setup.access() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert setup.access() and all(a["ip"] == "127.0.0.1" for a in setup.access())


@pytest.fixture()
def open_gateway(tmp_path: Path) -> Iterator[tuple[Setup, str]]:
    setup = make_setup(tmp_path)
    with serve_in_thread(build_app(setup.config), setup.config) as url:
        yield setup, url


def _exchange(url: str, request: bytes, *, expect_continue: bool = False, body: bytes = b"") -> bytes:
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        if expect_continue:
            interim = sock.recv(65536)
            assert interim.startswith(b"HTTP/1.1 100 "), interim  # sent before the body, not held back
            sock.sendall(body)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def test_100_continue_and_a_whole_response(open_gateway: tuple[Setup, str]) -> None:
    setup, url = open_gateway
    body = json.dumps({"instances": [ROW]}).encode()
    head = (
        b"POST /v1/models/clf:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/json\r\nAuthorization: Bearer " + setup.keys["alice"].encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    out = _exchange(url, head, expect_continue=True, body=body)
    assert out.startswith(b"HTTP/1.1 200 ")
    assert json.loads(out.split(b"\r\n\r\n", 1)[1])["predictions"]


def test_routing_refusals_are_json_with_audit_records(open_gateway: tuple[Setup, str]) -> None:
    setup, url = open_gateway
    auth = bearer(setup.keys["bob"])
    r = httpx.delete(f"{url}/v1/models/clf", headers=auth)
    assert r.status_code == 405 and r.json()["error"] == "method-not-allowed"
    assert r.headers["allow"] == "GET, HEAD"
    r = httpx.get(f"{url}/v3/nothing", headers=auth)
    assert r.status_code == 404 and r.json()["error"] == "not-found"
    r = httpx.head(f"{url}/v1/models", headers=auth)
    assert r.status_code == 200 and r.content == b""
    r = httpx.get(f"{url}/v1/models/clf:predict", headers=auth)  # a name with a colon: no such model
    assert r.status_code == 404 and r.json()["error"] == "unknown-model"
    deadline = time.monotonic() + 5  # each record is written just after its response is sent
    while len(setup.access()) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    statuses = [a["status"] for a in setup.access()]
    assert statuses[-4:] == [405, 404, 200, 404]
    assert verify_chain(setup.audit_path).ok

"""Shared test helpers. Hostile inputs are built from raw bytes here; nothing is ever loaded."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest


def pickle_call(module: str, name: str, arg: str = "echo pwned", proto: int = 2) -> bytes:
    """A pickle that calls ``module.name(arg)`` when loaded (built from opcodes, never loaded here)."""
    body = f"c{module}\n{name}\n".encode() + b"X" + struct.pack("<I", len(arg)) + arg.encode() + b"\x85R."
    return (b"\x80" + bytes([proto]) + body) if proto >= 2 else body


def benign_pickle() -> bytes:
    """A protocol-2 pickle of {'a': [1, 2.5, 'x']} (only literals, no globals)."""
    import pickle

    return pickle.dumps({"a": [1, 2.5, "x"]}, protocol=2)


@pytest.fixture()
def evil() -> bytes:
    return pickle_call("os", "system")


def mutations(blob: bytes, n: int = 300) -> list[bytes]:
    """Seeded random corruptions of ``blob``: flipped bytes, cuts, insertions, truncations."""
    import random

    rng = random.Random(7)
    out = []
    for _ in range(n):
        b = bytearray(blob)
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(b) or 1)
            k = rng.random()
            if k < 0.5 and b:
                b[pos] = rng.randrange(256)
            elif k < 0.7:
                del b[pos : pos + rng.randint(1, 16)]
            elif k < 0.85:
                b[pos:pos] = rng.randbytes(rng.randint(1, 8))
            else:
                del b[pos:]
        out.append(bytes(b))
    return out


def require_service(name: str, port: int) -> None:
    """PostgreSQL and Redis tests are real tests: when the server does not answer on 127.0.0.1 they fail
    (``.ci/run`` starts both). ``BASTION_TEST_SKIP_SERVICES=1`` turns that into a skip on a machine
    without them."""
    import os
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return
    except OSError:
        message = f"no {name} server answers on 127.0.0.1:{port} (.ci/run starts it)"
    if os.environ.get("BASTION_TEST_SKIP_SERVICES") == "1":
        pytest.skip(message)
    pytest.fail(message)


@pytest.fixture()
def redis_server() -> None:
    require_service("Redis", 6379)


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture()
def redis_prefix(redis_server: None) -> Iterator[str]:
    """A key prefix of the test's own in the local Redis; every key under it is deleted afterwards."""
    import uuid

    import redis

    prefix = f"bastion-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()

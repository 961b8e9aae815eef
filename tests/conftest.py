"""Shared test helpers. Hostile inputs are built from raw bytes here; nothing is ever loaded."""

from __future__ import annotations

import struct

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

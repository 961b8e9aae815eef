"""Strict JSON at the edge: the fast path (the C parser alone) is taken only when no number could overflow
or break the integer bound, so every refusal of the hooked parser still happens."""

from __future__ import annotations

import pytest

from bastion.gateway.errors import HttpError
from bastion.gateway.wire import MAX_DEPTH, loads_strict


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("[1e309]", "non-finite-number"),
        ("[-1E+400]", "non-finite-number"),
        ("[" + "9" * 400 + ".0]", "non-finite-number"),
        ("[12345678901234567890123456789012.5e290]", "non-finite-number"),
        ("[" + "1" * 33 + "]", "number-too-long"),
        ("[NaN]", "non-finite-number"),
        ('{"a": 1, "a": 2}', "duplicate-key"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "malformed-json"),
        ("[" * 100_000, "malformed-json"),
    ],
)
def test_refusals(body: str, code: str) -> None:
    with pytest.raises(HttpError) as caught:
        loads_strict(body.encode())
    assert caught.value.status == 400 and caught.value.code == code


@pytest.mark.parametrize(
    ("body", "value"),
    [
        ("[1e308, 1e-400, 1E99]", [1e308, 0.0, 1e99]),
        ('["1e999", "' + "9" * 50 + '"]', ["1e999", "9" * 50]),  # digits inside strings are text
        ("[" * MAX_DEPTH + "]" * MAX_DEPTH, "nested"),  # exactly at the bound
        ('["' + "[" * 50 + '"]', ["[" * 50]),  # brackets inside strings do not count
    ],
)
def test_accepted(body: str, value: object) -> None:
    if value == "nested":
        value = []
        for _ in range(MAX_DEPTH - 1):
            value = [value]
    assert loads_strict(body.encode()) == value

"""Legacy PyTorch files: raw storages are skipped by the sizes the stream declares, and only then."""

from __future__ import annotations

import io
import struct
import warnings

import pytest

from bastion.core import Severity
from bastion.scanners.interface import Location, ScanContext
from bastion.scanners.pickle import scan_pickle
from tests.conftest import pickle_call

torch = pytest.importorskip("torch")


def _legacy(obj: object) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(obj, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def _scan(data: bytes) -> ScanContext:
    ctx = ScanContext()
    scan_pickle(memoryview(data), Location("legacy.pt"), ctx, 0)
    return ctx


def test_storages_are_skipped_by_declared_size() -> None:
    ctx = _scan(
        _legacy({"w": torch.arange(1000.0), "i": torch.arange(10), "h": torch.zeros(3, dtype=torch.half)})
    )
    assert not ctx.findings and not ctx.problems
    assert any("legacy PyTorch tensor storage" in s.reason for s in ctx.skipped)


def test_a_lying_storage_size_falls_back_to_the_hidden_pickle_sweep() -> None:
    data = bytearray(_legacy({"w": torch.arange(64.0)}))
    # The int64 element count of the only storage sits right before its 256 raw bytes at the end.
    count_at = len(data) - 256 - 8
    assert struct.unpack_from("<q", data, count_at)[0] == 64
    struct.pack_into("<q", data, count_at, 1)  # claims 1 element: the rest would be "after" the storage
    data[-100:-100] = pickle_call("os", "system")
    ctx = _scan(bytes(data))
    assert any(f.severity >= Severity.HIGH for f in ctx.findings)


def test_truncated_storage_is_a_problem_not_clean() -> None:
    data = _legacy({"w": torch.arange(64.0)})[:-10]
    with pytest.raises(Exception, match="truncated"):
        _scan(data)

"""``.npy`` files: object arrays are pickles, plain arrays must have exactly shape x itemsize bytes."""

from __future__ import annotations

import io
import struct

import pytest

from bastion.core import Severity
from bastion.scanners.interface import FormatError, Location, ScanContext
from bastion.scanners.numpy_format import scan_npy

np = pytest.importorskip("numpy")


def npy(array: object) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def scan(data: bytes) -> ScanContext:
    ctx = ScanContext()
    scan_npy(memoryview(data), Location("a.npy"), ctx, 0)
    return ctx


@pytest.mark.parametrize(
    "array",
    [
        np.arange(10.0),
        np.zeros((3, 0)),
        np.array("scalar"),
        np.array([b"ab", b"c"]),
        np.zeros(2, dtype=[("a", "<f8"), ("b", "<i4", (2, 3))]),
        np.zeros(2, dtype=np.dtype([("a", "u1"), ("b", "<i4")], align=True)),
        np.array(["2024-01-01"], dtype="datetime64[D]"),
        np.array(["x", None, 1.5], dtype=object),
        np.zeros(2, dtype=[("a", "<f8"), ("o", "O")]),
    ],
)
def test_benign_arrays_are_clean(array: object) -> None:
    ctx = scan(npy(array))
    assert not ctx.findings and not ctx.problems
    assert ctx.scanned[0].format == "npy"


def _object_npy_with(payload: bytes, descr: str = "'|O'") -> bytes:
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': (1,), }}".encode()
    header += b" " * (63 - len(header) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def test_object_array_payload_is_critical() -> None:
    ctx = scan(_object_npy_with(b"\x80\x02cos\nsystem\n(X\x02\x00\x00\x00idtR."))
    assert [f.severity for f in ctx.findings] == [Severity.CRITICAL]


def test_object_field_inside_structured_dtype_is_scanned() -> None:
    ctx = scan(
        _object_npy_with(b"\x80\x02cos\nsystem\n(X\x02\x00\x00\x00idtR.", "[('a', '<f8'), ('b', '|O')]")
    )
    assert [f.callable for f in ctx.findings] == ["os.system"]


def test_length_mismatch_is_an_integrity_finding() -> None:
    data = npy(np.arange(10.0))
    assert [f.rule_id for f in scan(data + b"\x80\x04junk").findings] == ["BAS-M108"]
    assert [f.rule_id for f in scan(data[:-8]).findings] == ["BAS-M108"]


@pytest.mark.parametrize(
    "data",
    [
        b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}    ",
        b"\x93NUMPY\x09\x00\x00\x00",
        b"\x93NUMPY\x01\x00\xff\xff{}",
        _object_npy_with(b"", "__import__('os')"),
        _object_npy_with(b"", "'<q9'"),
    ],
)
def test_malformed_headers_raise(data: bytes) -> None:
    with pytest.raises(FormatError):
        scan(data)

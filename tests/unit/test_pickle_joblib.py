"""joblib files: raw array bytes interleaved in the pickle are skipped exactly, object arrays scanned."""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import pytest

from bastion.core import Severity
from bastion.scanners.interface import FormatError, Location, ScanContext
from bastion.scanners.pickle import scan_pickle
from bastion.scanners.pickle.dtypes import descr_itemsize

np = pytest.importorskip("numpy")
joblib = pytest.importorskip("joblib")


def scan(data: bytes) -> tuple[ScanContext, FormatError | None]:
    ctx = ScanContext()
    try:
        scan_pickle(memoryview(data), Location("m.joblib"), ctx, 0)
    except FormatError as exc:
        return ctx, exc
    return ctx, None


def dump(obj: object, tmp_path: Path, protocol: int | None = None) -> bytes:
    path = tmp_path / "m.joblib"
    joblib.dump(obj, path, protocol=protocol)
    return path.read_bytes()


@pytest.mark.parametrize(
    "dtype",
    [
        "b1",
        "i1",
        "i2",
        "i4",
        "i8",
        "u1",
        "u2",
        "u4",
        "u8",
        "f2",
        "f4",
        "f8",
        "c8",
        "c16",
        "S7",
        "U3",
        "V5",
        "M8[ns]",
        "m8[s]",
        "O",
        ">f8",
        "<i4",
    ],
)
def test_itemsize_matches_numpy(dtype: str) -> None:
    d = np.dtype(dtype)
    descr, state = d.__reduce__()[1][0], d.__reduce__()[2]
    size, is_object = descr_itemsize(descr, state[5] if state[5] >= 0 else None)
    assert (size, is_object) == (d.itemsize, d.hasobject)


def test_longdouble_and_clongdouble_sizes() -> None:
    assert descr_itemsize("f16")[0] == 16 and descr_itemsize("c32")[0] == 32


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_arrays_of_every_kind_are_skipped_exactly(tmp_path: Path, protocol: int) -> None:
    obj = {
        "f": np.arange(1000, dtype=np.float64).reshape(10, 100),
        "fortran": np.asfortranarray(np.ones((7, 3), dtype=np.float32)),
        "empty": np.zeros((0, 5)),
        "scalar_shape": np.array(3.5),
        "struct": np.zeros(4, dtype=[("a", "<f8"), ("b", "<i4", (2,))]),
        "text": np.array(["abc", "d"]),
        "when": np.array(["2024-01-01"], dtype="datetime64[D]"),
        "objects": np.array([{"k": 1}, "v", None], dtype=object),
        "tail": [np.arange(3)] * 3,
    }
    ctx, exc = scan(dump(obj, tmp_path, protocol))
    assert exc is None and not ctx.findings and not ctx.problems


def test_payload_inside_object_array_stream_is_found(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, ("id",))

    ctx, exc = scan(dump({"w": np.arange(4.0), "o": np.array([Evil()], dtype=object)}, tmp_path))
    assert exc is None
    assert any(f.severity is Severity.CRITICAL for f in ctx.findings)


def test_payload_after_array_bytes_is_found(tmp_path: Path) -> None:
    raw = dump(np.arange(16, dtype=np.uint8), tmp_path)
    evil = b"\x80\x04cos\nsystem\n(X\x02\x00\x00\x00idtR."
    ctx, _ = scan(raw + evil)
    assert any(f.callable == "os.system" for f in ctx.findings)


def test_payload_hidden_in_array_bytes_is_not_executed_but_array_is_skipped(tmp_path: Path) -> None:
    # bytes inside the array are data: a pickle-looking run in them is not loaded by joblib
    hidden = np.frombuffer(b"\x80\x04cos\nsystem\n(X\x02\x00\x00\x00idtR.", dtype=np.uint8)
    ctx, exc = scan(dump(hidden.copy(), tmp_path))
    assert exc is None and not ctx.findings


def test_lying_dtype_cannot_be_decided(tmp_path: Path) -> None:
    raw = dump(np.arange(4, dtype=np.float64), tmp_path, protocol=2)
    forged = raw.replace(b"f8", b"q9", 1)
    assert forged != raw
    _ctx, exc = scan(forged)
    assert isinstance(exc, FormatError)


def test_truncated_array_bytes_are_truncated(tmp_path: Path) -> None:
    raw = dump(np.arange(1000, dtype=np.float64), tmp_path)
    _ctx, exc = scan(raw[:2000])
    assert exc is not None


def test_plain_pickle_of_ndarray_wrapper_name_is_not_confused() -> None:
    # a stdlib pickle (not joblib) of arrays uses _reconstruct / _frombuffer, no interleaved bytes
    data = pickle.dumps([np.arange(5), np.array(["x", None], dtype=object)], protocol=5)
    ctx, exc = scan(data)
    assert exc is None and not ctx.findings


def test_alignment_padding_is_honoured() -> None:
    buf = io.BytesIO()
    joblib.dump(np.arange(3, dtype=np.int8), buf)  # non-seekable-like target: no alignment recorded
    ctx, exc = scan(buf.getvalue())
    assert exc is None and not ctx.findings
    assert struct.calcsize("<Q") == 8


def test_self_referencing_dtype_is_rejected_without_recursion_error() -> None:
    # numpy.dtype('V8') whose BUILD state lists itself as a field (via the memo), inside a wrapper
    dtype = b"cnumpy\ndtype\n(X\x02\x00\x00\x00V8I00\nI01\ntR\x94"
    state = (
        b"(K\x03X\x01\x00\x00\x00|NN}X\x01\x00\x00\x00a(h\x00K\x00tsJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    wrapper = b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}("
    wrapper += b"X\x05\x00\x00\x00dtypeh\x00X\x05\x00\x00\x00shape(K\x01tub"
    _, exc = scan(b"\x80\x04" + dtype + state + b"0" + wrapper + b".")
    assert isinstance(exc, FormatError) and "nests too deeply" in str(exc)

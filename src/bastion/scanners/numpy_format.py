"""NumPy ``.npy`` files: header checks, object arrays (an embedded pickle) and data-length integrity.

The header is a Python dict literal parsed with ``ast.literal_eval`` (bounded in size, never
evaluated). If the dtype has an object field anywhere the data is a pickle stream, scanned as one;
otherwise the data length must equal shape x itemsize. NumPy itself is never imported.
"""

from __future__ import annotations

import ast
import math
import struct

from bastion.scanners.interface import FormatError, Location, ScanContext, TruncatedError
from bastion.scanners.pickle import NPY_INTEGRITY, scan_stream
from bastion.scanners.pickle.dtypes import descr_itemsize

MAGIC = b"\x93NUMPY"
_MAX_DESCR_DEPTH = 32


def _descr_layout(descr: object, depth: int = 0) -> tuple[int, bool]:
    """(itemsize, has_object) of a header descr: a type string or a list of structured fields."""
    if depth > _MAX_DESCR_DEPTH:
        raise ValueError("structured dtype nested too deeply")
    if isinstance(descr, str):
        return descr_itemsize(descr)
    if not isinstance(descr, list):
        raise ValueError(f"unsupported descr {type(descr).__name__}")
    size, has_object = 0, False
    for field in descr:
        if not (isinstance(field, tuple) and len(field) in (2, 3)):
            raise ValueError("structured descr fields are (name, type[, shape]) tuples")
        sub_size, sub_object = _descr_layout(field[1], depth + 1)
        count = 1
        if len(field) == 3:
            shape = field[2]
            if isinstance(shape, int):
                shape = (shape,)
            if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
                raise ValueError("bad subarray shape")
            count = math.prod(shape)
        size += sub_size * count
        has_object = has_object or sub_object
    return size, has_object


def _header(data: memoryview, ctx: ScanContext) -> tuple[dict[str, object], int]:
    if len(data) < 10 or bytes(data[:6]) != MAGIC:
        raise FormatError("not a .npy file (bad magic)", offset=0)
    major = data[6]
    if major == 1:
        (hlen,) = struct.unpack_from("<H", data, 8)
        start = 10
    elif major in (2, 3):
        if len(data) < 12:
            raise TruncatedError(".npy header truncated", offset=8)
        (hlen,) = struct.unpack_from("<I", data, 8)
        start = 12
    else:
        raise FormatError(f"unsupported .npy version {major}.{data[7]}", offset=6)
    if hlen > ctx.limits.max_header_bytes:
        raise FormatError(f".npy header of {hlen} bytes exceeds the limit", offset=8)
    if start + hlen > len(data):
        raise TruncatedError(".npy header truncated", offset=start)
    text = bytes(data[start : start + hlen]).decode("utf-8" if major == 3 else "latin-1", "replace")
    try:
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise FormatError(".npy header is not a Python literal", offset=start) from None
    if not (isinstance(header, dict) and {"descr", "fortran_order", "shape"} <= set(header)):
        raise FormatError(".npy header lacks descr / fortran_order / shape", offset=start)
    return header, start + hlen


def scan_npy(data: memoryview, loc: Location, ctx: ScanContext, depth: int) -> None:
    """Scan a ``.npy`` array file."""
    header, offset = _header(data, ctx)
    ctx.mark_scanned(loc, "npy", len(data))
    try:
        itemsize, has_object = _descr_layout(header["descr"])
    except ValueError as exc:
        raise FormatError(f".npy dtype: {exc}", offset=8) from None
    if has_object:
        scan_stream(data, offset, loc, ctx, depth)
        return
    shape = header["shape"]
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise FormatError(".npy shape is not a tuple of sizes", offset=8)
    expected = math.prod(shape) * itemsize
    actual = len(data) - offset
    if actual != expected:
        what = "truncated" if actual < expected else f"followed by {actual - expected} extra bytes"
        ctx.finding(
            loc,
            NPY_INTEGRITY,
            f".npy data is {what}: header says {expected} bytes ({shape} x {itemsize}), file holds {actual}",
            offset=offset,
        )

"""PyTorch's legacy serialization (``_use_new_zipfile_serialization=False``): five pickles (magic
number, protocol version, system info, the object, the storage keys), then for each key an int64
element count and the storage's raw bytes. The loader reads those bytes raw, never unpickles them,
so the scanner skips them by their sizes instead of sweeping gigabytes of tensor data."""

from __future__ import annotations

import struct

from bastion.scanners.interface import TruncatedError
from bastion.scanners.pickle.values import Global, ListV

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_COUNT_AT = struct.Struct("<q").unpack_from
_ELEMENT_SIZE = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexDoubleStorage": 16,
    "ComplexFloatStorage": 8,
    "QInt8Storage": 1,
    "QUInt8Storage": 1,
    "QInt32Storage": 4,
    "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1,
    "UntypedStorage": 1,
}


def storages_end(data: memoryview, pos: int, results: list[object], pids: list[object]) -> int | None:
    """The offset after the raw storages when ``data`` is a legacy PyTorch file, else None.

    Sizes come from the stream itself and are checked against the persistent ids of the main
    pickle; any disagreement returns None (the caller then treats the rest as unknown data).
    """
    if len(results) != 5 or results[0] != LEGACY_MAGIC or not isinstance(results[4], ListV):
        return None
    expected: dict[str, tuple[int, int]] = {}  # storage key -> (element count, byte size)
    for pid in pids:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            continue
        storage_type, key, numel = pid[1], pid[2], pid[4]
        size = _ELEMENT_SIZE.get(storage_type.mapped_name) if isinstance(storage_type, Global) else None
        if size is None or not isinstance(key, str) or not isinstance(numel, int):
            return None
        expected[key] = (numel, numel * size)
    n = len(data)
    for key in results[4].items:
        want = expected.get(key) if isinstance(key, str) else None
        if want is None:
            return None
        if pos + 8 > n:
            raise TruncatedError(f"legacy PyTorch storage {key!r} is truncated", offset=pos)
        if _COUNT_AT(data, pos)[0] != want[0]:  # the element count written before the bytes
            return None
        end = pos + 8 + want[1]
        if end > n:
            raise TruncatedError(f"legacy PyTorch storage {key!r} is truncated", offset=pos)
        pos = end
    return pos

"""The protobuf wire reader: exact decoding, and clean rejection of hostile encodings."""

from __future__ import annotations

import pytest

from bastion.scanners.interface import FormatError, LimitExceeded, TruncatedError
from bastion.scanners.protobuf import (
    I32,
    I64,
    LEN,
    VARINT,
    check_depth,
    iter_fields,
    packed_varints,
    read_varint,
)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_reads_every_wire_type_with_absolute_offsets() -> None:
    msg = (
        varint(1 << 3 | VARINT) + varint(300)
        + varint(2 << 3 | I64) + (7).to_bytes(8, "little")
        + varint(3 << 3 | LEN) + varint(3) + b"abc"
        + varint(4 << 3 | I32) + (9).to_bytes(4, "little")
    )  # fmt: skip
    fields = list(iter_fields(memoryview(msg), base=100))
    assert [(f.number, f.wire_type, f.value) for f in fields] == [
        (1, 0, 300),
        (2, 1, 7),
        (3, 2, 3),
        (4, 5, 9),
    ]
    assert fields[0].offset == 100
    assert fields[2].offset == 100 + 3 + 9 and fields[2].text() == "abc"
    assert fields[2].start == fields[2].offset + 2


def test_max_varint_and_overlong_varint() -> None:
    value, pos = read_varint(memoryview(varint(2**64 - 1)), 0)
    assert value == 2**64 - 1 and pos == 10
    with pytest.raises(FormatError):
        read_varint(memoryview(b"\xff" * 10 + b"\x01"), 0)
    with pytest.raises(FormatError):
        read_varint(memoryview(b"\xff" * 9 + b"\x02"), 0)  # 65th bit set


@pytest.mark.parametrize(
    "data",
    [b"\x0a\x05ab", b"\x08", b"\x09\x00\x00", b"\x0d\x00", b"\x80"],
    ids=["len-payload", "varint-missing", "i64-short", "i32-short", "tag-cut"],
)
def test_truncation_is_reported_with_offset(data: bytes) -> None:
    with pytest.raises(TruncatedError) as err:
        list(iter_fields(memoryview(data), base=10))
    assert err.value.offset is not None and err.value.offset >= 10


def test_giant_length_is_not_allocated() -> None:
    data = b"\x0a" + varint(2**62) + b"x"
    with pytest.raises(TruncatedError) as err:
        list(iter_fields(memoryview(data)))
    assert err.value.offset == 0


@pytest.mark.parametrize("tag", [b"\x0b", b"\x0c", b"\x0e", b"\x0f", b"\x00", b"\x07"])
def test_groups_invalid_wire_types_and_field_zero_are_rejected(tag: bytes) -> None:
    with pytest.raises(FormatError):
        list(iter_fields(memoryview(tag + b"\x00" * 8)))


def test_packed_and_unpacked_varints() -> None:
    packed = varint(1 << 3 | LEN) + varint(3) + varint(1) + varint(150)
    (f,) = iter_fields(memoryview(packed))
    assert list(packed_varints(f)) == [1, 150]
    (g,) = iter_fields(memoryview(varint(1 << 3) + varint(5)))
    assert list(packed_varints(g)) == [5]


def test_depth_guard() -> None:
    check_depth(64, 0)
    with pytest.raises(LimitExceeded):
        check_depth(65, 3)


def test_deeply_nested_messages_walked_with_guard_do_not_recurse_forever() -> None:
    inner = b""
    for _ in range(500):
        inner = varint(1 << 3 | LEN) + varint(len(inner)) + inner

    def walk(view: memoryview, base: int, depth: int) -> int:
        check_depth(depth, base)
        deepest = depth
        for f in iter_fields(view, base):
            assert f.payload is not None
            deepest = max(deepest, walk(f.payload, f.start, depth + 1))
        return deepest

    with pytest.raises(LimitExceeded):
        walk(memoryview(inner), 0, 0)


def _sniff_samples() -> list[bytes]:
    """Wire-format blobs the ONNX / SavedModel sniffers accept, their corruptions, and noise."""
    import random

    from tests.conftest import mutations

    def ld(number: int, payload: bytes) -> bytes:
        return varint(number << 3 | LEN) + varint(len(payload)) + payload

    graph = ld(1, ld(1, b"x") + ld(4, b"Add")) + ld(2, b"graph")
    onnx_model = varint(1 << 3) + varint(8) + ld(2, b"pytorch") + ld(7, graph)
    saved_model = varint(1 << 3) + varint(1) + ld(2, ld(1, b"meta") + ld(2, ld(1, b"node")))
    rng = random.Random(11)
    noise = [rng.randbytes(rng.randint(2, 64)) for _ in range(3000)]
    digits = [str(rng.getrandbits(64)).zfill(20).encode() for _ in range(200)]
    return [onnx_model, saved_model, *mutations(onnx_model), *mutations(saved_model), *noise, *digits]


def test_sniff_quick_reject_never_hides_onnx_or_savedmodel() -> None:
    """detect._may_be_protobuf decides whether the parsers are imported at all: whatever it turns
    away, both content sniffers must turn away too."""
    from bastion.scanners.detect import _may_be_protobuf
    from bastion.scanners.onnx import looks_like_onnx
    from bastion.scanners.savedmodel import looks_like_savedmodel

    accepted = 0
    for blob in _sniff_samples():
        view = memoryview(blob)
        if looks_like_onnx(view) or looks_like_savedmodel(view):
            accepted += 1
            assert _may_be_protobuf(blob[:4096]), blob
    assert accepted >= 2


def test_torch_serialization_id_is_not_sniffed_as_protobuf() -> None:
    from bastion.scanners.detect import Format, _may_be_protobuf, sniff

    serialization_id = b"0760530726789829938111114007459246324676"
    assert not _may_be_protobuf(serialization_id)
    assert sniff(memoryview(serialization_id)) == [Format.TEXT]

"""A minimal, bounded reader of the protobuf wire format (ONNX, TensorFlow SavedModel).

It decodes tags and payloads only: no schema, no object construction. Every offset it reports
is absolute (``base`` + position in the view), so errors and findings point into the file.
Groups (wire types 3 and 4) are deprecated and never used by the model formats we read: they
are rejected. Nesting is the caller's business: walkers pass their depth to :func:`check_depth`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from bastion.scanners.interface import FormatError, LimitExceeded, TruncatedError

VARINT = 0
I64 = 1
LEN = 2
SGROUP = 3
EGROUP = 4
I32 = 5

MAX_DEPTH = 64  # nested messages a walker may descend (graphs in attributes, functions...)
_MAX_FIELD_NUMBER = (1 << 29) - 1
_MAX_STRING = 1 << 16  # names, op types, domains: longer text is truncated when decoded


@dataclass(frozen=True, slots=True)
class Field:
    """One decoded field. ``value`` is the integer (varint / fixed) or the payload length (LEN)."""

    number: int
    wire_type: int
    offset: int  # absolute offset of the tag
    value: int
    start: int  # absolute offset of the payload
    payload: memoryview | None = None  # LEN fields only

    def sub(self) -> Iterator[Field]:
        """The fields of an embedded message (LEN payload)."""
        if self.payload is None:
            raise FormatError(f"field {self.number} is not length-delimited", offset=self.offset)
        return iter_fields(self.payload, self.start)

    def text(self, limit: int = _MAX_STRING) -> str:
        """The payload as text (invalid UTF-8 replaced, so hostile bytes stay visible)."""
        if self.payload is None:
            raise FormatError(f"field {self.number} is not length-delimited", offset=self.offset)
        return bytes(self.payload[:limit]).decode("utf-8", errors="replace")


def read_varint(data: memoryview, pos: int, base: int = 0) -> tuple[int, int]:
    """Decode a varint at ``pos``; return (value, position after it)."""
    result = 0
    shift = 0
    start = pos
    end = len(data)
    while True:
        if pos >= end:
            raise TruncatedError("truncated varint", offset=base + start)
        byte = data[pos]
        pos += 1
        if shift == 63 and byte > 1:
            raise FormatError("varint longer than 64 bits", offset=base + start)
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise FormatError("varint longer than 10 bytes", offset=base + start)


def iter_fields(data: memoryview, base: int = 0) -> Iterator[Field]:
    """Yield the fields of one message, in wire order, checking every length against the view."""
    pos = 0
    end = len(data)
    while pos < end:
        tag_offset = pos
        tag, pos = read_varint(data, pos, base)
        number = tag >> 3
        wire_type = tag & 7
        if number == 0 or number > _MAX_FIELD_NUMBER:
            raise FormatError(f"invalid field number {number}", offset=base + tag_offset)
        if wire_type == VARINT:
            start = pos
            value, pos = read_varint(data, pos, base)
            yield Field(number, wire_type, base + tag_offset, value, base + start)
        elif wire_type == I64:
            if end - pos < 8:
                raise TruncatedError(f"truncated 64-bit field {number}", offset=base + tag_offset)
            (value,) = struct.unpack_from("<Q", data, pos)
            yield Field(number, wire_type, base + tag_offset, value, base + pos)
            pos += 8
        elif wire_type == I32:
            if end - pos < 4:
                raise TruncatedError(f"truncated 32-bit field {number}", offset=base + tag_offset)
            (value,) = struct.unpack_from("<I", data, pos)
            yield Field(number, wire_type, base + tag_offset, value, base + pos)
            pos += 4
        elif wire_type == LEN:
            length, pos = read_varint(data, pos, base)
            if length > end - pos:
                raise TruncatedError(
                    f"field {number} declares {length} bytes, {end - pos} remain", offset=base + tag_offset
                )
            payload = data[pos : pos + length]
            yield Field(number, wire_type, base + tag_offset, length, base + pos, payload)
            pos += length
        elif wire_type in (SGROUP, EGROUP):
            raise FormatError(f"protobuf groups are not supported (field {number})", offset=base + tag_offset)
        else:
            raise FormatError(f"invalid wire type {wire_type} (field {number})", offset=base + tag_offset)


def check_depth(depth: int, offset: int, limit: int = MAX_DEPTH) -> None:
    """Refuse to descend further than ``limit`` nested messages."""
    if depth > limit:
        raise LimitExceeded(f"protobuf messages nested deeper than {limit}", offset=offset)


def packed_varints(f: Field) -> Iterator[int]:
    """The values of a repeated varint field, packed (LEN) or not."""
    if f.wire_type == VARINT:
        yield f.value
        return
    if f.payload is None:
        raise FormatError(f"field {f.number} is not a varint", offset=f.offset)
    pos = 0
    while pos < len(f.payload):
        value, pos = read_varint(f.payload, pos, f.start)
        yield value

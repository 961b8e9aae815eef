"""Pickle opcodes (protocols 0-5) and the byte-level reader, mirroring CPython's ``_pickle.c``.

The reader never copies large payloads: lengths are checked against the buffer and the position is
advanced; only short arguments (lines, small strings) are materialised.
"""

from __future__ import annotations

import codecs
import re
import struct

from bastion.scanners.interface import FormatError, TruncatedError

MARK = 0x28  # (
STOP = 0x2E  # .
POP = 0x30  # 0
POP_MARK = 0x31  # 1
DUP = 0x32  # 2
FLOAT = 0x46  # F
INT = 0x49  # I
BININT = 0x4A  # J
BININT1 = 0x4B  # K
LONG = 0x4C  # L
BININT2 = 0x4D  # M
NONE = 0x4E  # N
PERSID = 0x50  # P
BINPERSID = 0x51  # Q
REDUCE = 0x52  # R
STRING = 0x53  # S
BINSTRING = 0x54  # T
SHORT_BINSTRING = 0x55  # U
UNICODE = 0x56  # V
BINUNICODE = 0x58  # X
APPEND = 0x61  # a
BUILD = 0x62  # b
GLOBAL = 0x63  # c
DICT = 0x64  # d
EMPTY_DICT = 0x7D  # }
APPENDS = 0x65  # e
GET = 0x67  # g
BINGET = 0x68  # h
INST = 0x69  # i
LONG_BINGET = 0x6A  # j
LIST = 0x6C  # l
EMPTY_LIST = 0x5D  # ]
OBJ = 0x6F  # o
PUT = 0x70  # p
BINPUT = 0x71  # q
LONG_BINPUT = 0x72  # r
SETITEM = 0x73  # s
TUPLE = 0x74  # t
EMPTY_TUPLE = 0x29  # )
SETITEMS = 0x75  # u
BINFLOAT = 0x47  # G
PROTO = 0x80
NEWOBJ = 0x81
EXT1 = 0x82
EXT2 = 0x83
EXT4 = 0x84
TUPLE1 = 0x85
TUPLE2 = 0x86
TUPLE3 = 0x87
NEWTRUE = 0x88
NEWFALSE = 0x89
LONG1 = 0x8A
LONG4 = 0x8B
BINBYTES = 0x42  # B
SHORT_BINBYTES = 0x43  # C
SHORT_BINUNICODE = 0x8C
BINUNICODE8 = 0x8D
BINBYTES8 = 0x8E
EMPTY_SET = 0x8F
ADDITEMS = 0x90
FROZENSET = 0x91
NEWOBJ_EX = 0x92
STACK_GLOBAL = 0x93
MEMOIZE = 0x94
FRAME = 0x95
BYTEARRAY8 = 0x96
NEXT_BUFFER = 0x97
READONLY_BUFFER = 0x98

HIGHEST_PROTOCOL = 5
KNOWN = frozenset(
    v for k, v in dict(globals()).items() if k.isupper() and isinstance(v, int) and k != "HIGHEST_PROTOCOL"
)

_NEWLINE = re.compile(b"\n")
U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
U32 = struct.Struct("<I")  # also read inline by the hottest handlers
_U64 = struct.Struct("<Q")
_F64 = struct.Struct(">d")


class Reader:
    """A cursor over a memoryview; every read checks the bounds and raises TruncatedError."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: memoryview, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def need(self, n: int, at: int) -> int:
        """Reserve ``n`` bytes; return their start offset."""
        start = self.pos
        if n < 0 or start + n > self.end:
            raise TruncatedError(f"pickle data was truncated (needs {n} bytes)", offset=at)
        self.pos = start + n
        return start

    def u8(self, at: int) -> int:
        p = self.pos
        if p >= self.end:
            raise TruncatedError("pickle data was truncated", offset=at)
        self.pos = p + 1
        return self.data[p]

    def u16(self, at: int) -> int:
        return int(U16.unpack_from(self.data, self.need(2, at))[0])

    def i32(self, at: int) -> int:
        return int(_I32.unpack_from(self.data, self.need(4, at))[0])

    def u32(self, at: int) -> int:
        return int(U32.unpack_from(self.data, self.need(4, at))[0])

    def u64(self, at: int) -> int:
        return int(_U64.unpack_from(self.data, self.need(8, at))[0])

    def f64(self, at: int) -> float:
        return float(_F64.unpack_from(self.data, self.need(8, at))[0])

    def line(self, at: int) -> bytes:
        """A newline-terminated argument, without its final newline (like ``_Unpickler_Readline``)."""
        m = _NEWLINE.search(self.data, self.pos, self.end)
        if m is None:
            raise TruncatedError("pickle data was truncated (no end of line)", offset=at)
        start = self.pos
        self.pos = m.end()
        return bytes(self.data[start : m.start()])

    def take(self, n: int, at: int) -> bytes:
        start = self.need(n, at)
        return bytes(self.data[start : start + n])


def parse_int_line(text: bytes, at: int) -> int | bool:
    """INT: ``00``/``01`` are the booleans of protocol 0, anything else a decimal (base 0 in C)."""
    if text == b"00":
        return False
    if text == b"01":
        return True
    return _c_int(text, "INT", at)


def parse_long_line(text: bytes, at: int) -> int:
    if text.endswith(b"L"):
        text = text[:-1]
    return _c_int(text, "LONG", at)


def _c_int(text: bytes, opname: str, at: int) -> int:
    """Decimal, or ``strtol(..., 0)`` forms (hex, octal with a leading zero)."""
    for base in (10, 0, 8):
        try:
            return int(text, base)
        except ValueError:
            continue
    raise FormatError(f"invalid literal for {opname}", offset=at)


def parse_float_line(text: bytes, at: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise FormatError("invalid literal for FLOAT", offset=at) from None


def parse_string_line(text: bytes, at: int) -> bytes:
    """STRING: a quoted, backslash-escaped string (``PyBytes_DecodeEscape``)."""
    if len(text) < 2 or text[0] != text[-1] or text[0] not in b"'\"":
        raise FormatError("the STRING opcode argument must be quoted", offset=at)
    try:
        return bytes(codecs.escape_decode(text[1:-1])[0])
    except ValueError:
        raise FormatError("invalid escape in STRING", offset=at) from None


def parse_unicode_line(text: bytes, at: int) -> str:
    try:
        return text.decode("raw-unicode-escape")
    except UnicodeDecodeError:
        raise FormatError("invalid raw-unicode-escape in UNICODE", offset=at) from None


def decode_long(raw: bytes) -> int:
    return int.from_bytes(raw, "little", signed=True)

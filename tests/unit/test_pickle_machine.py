"""The emulator follows the C unpickler: every opcode and protocol parses, errors carry offsets."""

from __future__ import annotations

import collections
import datetime
import pickle
import struct

import pytest

from bastion.scanners.interface import FormatError, Limits, Location, ScanContext, TruncatedError
from bastion.scanners.pickle import looks_like_pickle, scan_pickle
from bastion.scanners.pickle.catalogue import default_catalogue
from bastion.scanners.pickle.judge import Judge
from bastion.scanners.pickle.machine import Budget, Machine
from bastion.scanners.pickle.values import DictV, Global, ListV, Unknown


class Recording(Machine):
    """A machine that remembers the last value popped: the one STOP returns to the loader."""

    last: object = None

    def pop(self, at: int) -> object:
        value = super().pop(at)
        self.last = value
        return value


def emulate(data: bytes) -> tuple[object, Recording]:
    m = Recording(memoryview(data), 0, Judge(default_catalogue()), Limits(), Budget(10**6))
    end = m.run()
    assert end == len(data)
    return m.last, m


SAMPLE = {
    "ints": [0, 1, -1, 255, 256, 65535, 65536, -(2**31), 2**31, 2**64, -(2**100)],
    "floats": [0.0, -1.5, 1e300],
    "text": ["", "ascii", "ünïcödé", "line\nbreak", "quote'\"\\"],
    "bytes": [b"", b"\x00\xff", bytes(300)],
    "tuple": (1, (2, (3,)), ()),
    "set": {1, 2},
    "frozen": frozenset({3}),
    "bools": [True, False, None],
    "od": collections.OrderedDict(a=1),
    "when": datetime.date(2024, 1, 2),
    "bytearray": bytearray(b"xy"),
}


@pytest.mark.parametrize("protocol", range(6))
def test_every_protocol_of_stdlib_pickles_parses_clean(protocol: int) -> None:
    data = pickle.dumps([SAMPLE, SAMPLE], protocol=protocol)  # the second reference exercises the memo
    ctx = ScanContext()
    scan_pickle(memoryview(data), Location("sample.pkl"), ctx, 0)
    assert not ctx.findings and not ctx.problems


def test_protocol0_text_arguments() -> None:
    value, _ = emulate(b"(I42\nI00\nI01\nL12345678901234567890L\nF1.5\nS'a\\x41\\n'\nVcaf\\u00e9\nl.")
    assert isinstance(value, ListV)
    assert value.items == [42, False, True, 12345678901234567890, 1.5, "aA\n", "café"]


def test_binary_scalars() -> None:
    data = (
        b"\x80\x04(K\x07M\x00\x01J\xff\xff\xff\xffG?\xf8\x00\x00\x00\x00\x00\x00\x8a\x02\x00\x80\x88\x89Nl."
    )
    value, _ = emulate(data)
    assert isinstance(value, ListV) and value.items == [7, 256, -1, 1.5, -32768, True, False, None]


def test_dict_setitems_and_globals() -> None:
    value, _ = emulate(b"\x80\x02}(X\x01\x00\x00\x00kccollections\nOrderedDict\nu.")
    assert isinstance(value, DictV)
    ((key, g),) = value.items
    assert key == "k" and isinstance(g, Global) and g.qualname == "collections.OrderedDict"


def test_python2_names_are_mapped() -> None:
    value, _ = emulate(b"c__builtin__\nxrange\n.")
    assert isinstance(value, Global) and (value.mapped_module, value.mapped_name) == ("builtins", "range")


def test_pop_removes_a_mark_like_the_c_unpickler() -> None:
    value, m = emulate(b"N(0.")
    assert value is None and not m.marks


def test_large_bytes_are_referenced_not_copied() -> None:
    payload = bytes(100_000)
    value, _ = emulate(b"\x80\x04\x8e" + struct.pack("<Q", len(payload)) + payload + b".")
    assert not isinstance(value, bytes)


def test_next_buffer_is_unknown() -> None:
    value, _ = emulate(b"\x80\x05\x97\x98.")
    assert isinstance(value, Unknown)


@pytest.mark.parametrize(
    ("data", "error", "offset"),
    [
        (b"\x80\x02N", TruncatedError, 3),
        (b"\x80\x06N.", FormatError, 0),
        (b"\x80\x02a.", FormatError, 2),
        (b"\x80\x02t.", FormatError, 2),
        (b"\x80\x02h\x05.", FormatError, 2),
        (b"\x80\x02(K\x01d.", FormatError, 5),
        (b"S'unterminated\n.", FormatError, 0),
        (b"\x80\x04\x8c\x05ab", TruncatedError, 2),
        (b"\x80\x02\x82\x00.", FormatError, 2),
        (b"\x80\x02\xa0.", FormatError, 2),
    ],
)
def test_malformed_streams_raise_with_offsets(data: bytes, error: type[FormatError], offset: int) -> None:
    m = Machine(memoryview(data), 0, Judge(default_catalogue()), Limits(), Budget(1000))
    with pytest.raises(error) as info:
        m.run()
    assert info.value.offset == offset


def test_sniffing_accepts_pickles_and_rejects_text() -> None:
    assert looks_like_pickle(memoryview(b"\x80\x04\x95"))
    assert looks_like_pickle(memoryview(pickle.dumps({"a": [1, 2]}, protocol=0)))
    assert looks_like_pickle(memoryview(pickle.dumps({"a": [1, 2]}, protocol=1)))
    assert looks_like_pickle(memoryview(b"cos\nsystem\n(S'id'\ntR"))  # truncated malicious pickle
    assert looks_like_pickle(memoryview(b"(S'id'\nios\nsystem\n"))
    texts = [b"hello world\n", b'{"a": 1}', b"# Title\n\nSome *markdown*.", b"import os\n", b"", b"\x80\x07"]
    texts += [b"class Foo:\n    pass\n", b"name,value\n1,2\n", b"<html></html>", b"[1, 2, 3]\n", b"(a, b)\n"]
    for text in texts:
        assert not looks_like_pickle(memoryview(text)), text


def test_sniffing_is_bounded() -> None:
    data = b"(" + b"I1\n" * 5_000_000  # 15 MB of protocol-0 ints without STOP
    assert looks_like_pickle(memoryview(data))


def test_findings_are_deduplicated_with_count_and_first_offset() -> None:
    one = b"cos\nsystem\n(S'id'\ntR"
    data = b"(" + one + one + b"l."
    ctx = ScanContext()
    scan_pickle(memoryview(data), Location("m.pkl"), ctx, 0)
    (finding,) = ctx.findings
    assert finding.count == 2 and finding.offset == 1 and finding.callable == "os.system"
    assert finding.remediation and finding.cwe == ("CWE-502",)

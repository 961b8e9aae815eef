"""safetensors scanner: files written by the safetensors package, and hand-crafted broken headers."""

from __future__ import annotations

import contextlib
import json
import struct

import pytest

from bastion.core import Severity
from bastion.scanners.interface import (
    FormatError,
    LimitExceeded,
    Limits,
    Location,
    ScanContext,
    TruncatedError,
)
from bastion.scanners.safetensors import scan_safetensors
from tests.conftest import mutations as _mutations

LOC = Location("model.safetensors")


def craft(header: dict[str, object] | str, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, str) else json.dumps(header)
    encoded = raw.encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


def scan(blob: bytes, ctx: ScanContext | None = None) -> ScanContext:
    ctx = ctx or ScanContext()
    scan_safetensors(memoryview(blob), LOC, ctx, 0)
    return ctx


def rules(ctx: ScanContext) -> list[str]:
    return sorted(f.rule_id for f in ctx.findings)


def t(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def test_files_written_by_safetensors_are_clean() -> None:
    np = pytest.importorskip("numpy")
    st = pytest.importorskip("safetensors.numpy")
    tensors = {
        "w": np.zeros((3, 5), dtype=np.float32),
        "b": np.zeros(5, dtype=np.float16),
        "i": np.arange(7, dtype=np.int64),
        "m": np.ones((2, 2), dtype=np.bool_),
        "e": np.zeros((0, 4), dtype=np.uint8),
        "s": np.array(3.0, dtype=np.float64),
    }
    ctx = scan(st.save(tensors, metadata={"format": "np", "note": "ok"}))
    assert ctx.findings == []
    assert [a.format for a in ctx.scanned] == ["safetensors"]


def test_empty_header_is_clean() -> None:
    assert scan(craft({})).findings == []


def test_header_length_beyond_file_is_high_and_truncated() -> None:
    ctx = ScanContext()
    with pytest.raises(TruncatedError):
        scan(struct.pack("<Q", 2**63) + b"{}", ctx)
    assert [(f.rule_id, f.severity) for f in ctx.findings] == [("BAS-M220", Severity.HIGH)]


def test_header_over_limit() -> None:
    ctx = ScanContext(limits=Limits(max_header_bytes=16))
    with pytest.raises(LimitExceeded):
        scan(craft({"__metadata__": {"k": "v" * 40}}), ctx)
    assert rules(ctx) == ["BAS-M220"]


@pytest.mark.parametrize(
    "blob",
    [b"", b"\x02\x00\x00", craft("not json"), craft('{"a": '), craft("[1, 2]"), craft('{"a": NaN}'),
     struct.pack("<Q", 3) + b"{\xff}"],
    ids=["empty", "short", "text", "cut", "array", "nan", "utf8"],
)  # fmt: skip
def test_malformed_headers_are_format_errors(blob: bytes) -> None:
    with pytest.raises(FormatError):
        scan(blob)


def test_deeply_nested_header_is_rejected_without_recursion_error() -> None:
    with pytest.raises(FormatError):
        scan(craft('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"))


def test_out_of_bounds_offsets() -> None:
    ctx = scan(craft({"a": t("F32", [4], 0, 16), "b": t("F32", [4], 16, 10**12)}, b"\0" * 16))
    assert rules(ctx) == ["BAS-M221"]
    assert "'b'" in ctx.findings[0].message and ctx.findings[0].severity is Severity.HIGH


def test_size_mismatch_is_out_of_bounds() -> None:
    ctx = scan(craft({"a": t("F32", [1000, 1000], 0, 8)}, b"\0" * 8))
    assert rules(ctx) == ["BAS-M221"]


def test_overlap_and_hole() -> None:
    ctx = scan(
        craft({"a": t("F32", [4], 0, 16), "b": t("F32", [4], 8, 24), "c": t("U8", [4], 28, 32)}, b"\0" * 32)
    )
    assert rules(ctx) == ["BAS-M222", "BAS-M223"]


def test_trailing_bytes_are_handed_to_format_detection() -> None:
    seen: list[tuple[bytes, str]] = []
    ctx = ScanContext(nested=lambda view, loc, c, depth: seen.append((bytes(view), str(loc))))
    payload = b"\x80\x02cos\nsystem\n."
    scan(craft({"a": t("U8", [4], 0, 4)}, b"\1" * 4 + payload), ctx)
    assert rules(ctx) == ["BAS-M223"]
    assert seen and seen[0][0] == payload and "uncovered@" in seen[0][1]


def test_duplicate_keys_are_a_parser_differential() -> None:
    entry = '{"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}'
    header = f'{{"a": {entry}, "a": {entry}}}'
    ctx = scan(craft(header, b"\0\0"))
    assert rules(ctx) == ["BAS-M224"]
    assert ctx.findings[0].offset == 8 + 1


@pytest.mark.parametrize(
    "entry",
    [t("F128", [1], 0, 1), t("U8", [-1], 0, 1), t("U8", [True], 0, 1), t("U8", [1.0], 0, 1),
     {"dtype": "U8", "shape": [1]}, {"dtype": "U8", "shape": [1], "data_offsets": [0]}, "nope",
     {"dtype": "U8", "shape": [1], "data_offsets": ["0", "1"]}],
)  # fmt: skip
def test_invalid_entries(entry: object) -> None:
    ctx = scan(craft({"a": entry}, b"\0"))
    assert "BAS-M225" in rules(ctx)


def test_metadata_must_map_strings_to_strings() -> None:
    assert rules(scan(craft({"__metadata__": {"n": 1}}))) == ["BAS-M225"]
    assert rules(scan(craft({"__metadata__": ["x"]}))) == ["BAS-M225"]


def test_sub_byte_dtypes() -> None:
    assert scan(craft({"a": t("F4", [4], 0, 2)}, b"\0\0")).findings == []
    assert rules(scan(craft({"a": t("F4", [3], 0, 2)}, b"\0\0"))) == ["BAS-M221"]


def test_findings_are_capped_per_rule() -> None:
    header = {f"t{i}": t("F128", [1], 0, 1) for i in range(500)}
    ctx = scan(craft(header, b"\0"))
    invalid = [f for f in ctx.findings if f.rule_id == "BAS-M225"]
    assert len(invalid) == 21 and invalid[-1].count == 480


def test_random_corruption_only_raises_format_errors() -> None:
    seed = craft(
        {"__metadata__": {"a": "b"}, "x": t("F32", [2, 2], 0, 16), "y": t("BF16", [4], 16, 24)}, b"\1" * 24
    )
    for blob in _mutations(seed):
        with contextlib.suppress(FormatError):
            scan(blob, ScanContext(nested=lambda view, loc, c, depth: None))

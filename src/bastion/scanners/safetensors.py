"""safetensors scanner: the header is the whole attack surface, so it is checked strictly.

Layout: an 8-byte little-endian header length N, N bytes of JSON, then the data section. The
checks mirror (and are slightly stricter than) the reference Rust loader: a JSON object without
duplicate keys (parsers disagree on which duplicate wins), ``__metadata__`` mapping str to str,
every tensor with a known dtype, a shape of non-negative ints and ``data_offsets`` whose span is
exactly the tensor's size, inside the data section, with no overlaps and no holes. Bytes that no
tensor covers are handed back to format detection: that is where a payload would hide.
"""

from __future__ import annotations

import json
import math
import struct
from collections import defaultdict
from typing import Any

from bastion.core import Severity
from bastion.scanners.interface import (
    FormatError,
    LimitExceeded,
    Location,
    Rule,
    ScanContext,
    TruncatedError,
    rule,
)

_REMEDIATION_REEXPORT = (
    "Do not load this file with a lenient reader. Re-create it from a trusted source with the official "
    "safetensors library (safetensors.torch.save_file / save), which always writes a consistent header."
)

ST_HEADER_SIZE = rule(
    "BAS-M220",
    "safetensors-header-size",
    Severity.HIGH,
    "safetensors header length is larger than the file or the header limit",
    "A header length beyond the file or beyond 100 MB is a denial-of-service or out-of-bounds read "
    "attempt against the loader. " + _REMEDIATION_REEXPORT,
    cwe=("CWE-125", "CWE-400"),
)
ST_OUT_OF_BOUNDS = rule(
    "BAS-M221",
    "safetensors-tensor-out-of-bounds",
    Severity.HIGH,
    "safetensors tensor data lies outside the data section or has the wrong size",
    "A tensor whose offsets leave the data section, or whose span differs from shape x dtype size, makes "
    "readers that trust the header read out of bounds or alias other tensors. " + _REMEDIATION_REEXPORT,
    cwe=("CWE-125", "CWE-787"),
)
ST_OVERLAP = rule(
    "BAS-M222",
    "safetensors-tensor-overlap",
    Severity.MEDIUM,
    "safetensors tensors overlap",
    "Overlapping tensors alias each other's bytes: a change to one silently changes the other and "
    "integrity checks over individual tensors are misled. " + _REMEDIATION_REEXPORT,
    cwe=("CWE-1284",),
)
ST_HOLE = rule(
    "BAS-M223",
    "safetensors-uncovered-bytes",
    Severity.MEDIUM,
    "safetensors data section holds bytes that belong to no tensor",
    "Bytes outside every tensor are invisible to loaders and a place to smuggle a payload past review. "
    + _REMEDIATION_REEXPORT,
    cwe=("CWE-1284",),
)
ST_DUPLICATE_KEY = rule(
    "BAS-M224",
    "safetensors-duplicate-key",
    Severity.MEDIUM,
    "safetensors header repeats a JSON key",
    "JSON parsers disagree on which duplicate wins, so two tools can see two different models "
    "(parser differential). " + _REMEDIATION_REEXPORT,
    cwe=("CWE-436",),
)
ST_INVALID_ENTRY = rule(
    "BAS-M225",
    "safetensors-invalid-entry",
    Severity.MEDIUM,
    "safetensors header entry is invalid (dtype, shape, offsets or metadata)",
    "The reference loader rejects this header, other readers may accept it differently. "
    + _REMEDIATION_REEXPORT,
    cwe=("CWE-20",),
)

# dtype -> size in bits (sub-byte float formats are packed).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}
_MAX_REPORTS_PER_RULE = 20


class _Reporter:
    """Reports up to a cap per rule, then one aggregated finding (a hostile header can hold millions)."""

    def __init__(self, loc: Location, ctx: ScanContext) -> None:
        self.loc = loc
        self.ctx = ctx
        self.extra: dict[str, tuple[Rule, int, int | None]] = {}
        self.counts: defaultdict[str, int] = defaultdict(int)

    def __call__(self, r: Rule, message: str, offset: int | None) -> None:
        self.counts[r.rule_id] += 1
        if self.counts[r.rule_id] <= _MAX_REPORTS_PER_RULE:
            self.ctx.finding(self.loc, r, message, offset=offset)
        else:
            _, n, first = self.extra.get(r.rule_id, (r, 0, offset))
            self.extra[r.rule_id] = (r, n + 1, first)

    def flush(self) -> None:
        for r, n, first in self.extra.values():
            self.ctx.finding(self.loc, r, f"{n} more entries like the above", offset=first, count=n)
        self.extra.clear()


def scan_safetensors(data: memoryview, loc: Location, ctx: ScanContext, depth: int) -> None:
    """Validate the header and the tensor layout of a safetensors file."""
    if len(data) < 8:
        raise TruncatedError("safetensors file shorter than its 8-byte header length", offset=0)
    ctx.mark_scanned(loc, "safetensors", len(data))
    (n,) = struct.unpack_from("<Q", data, 0)
    report = _Reporter(loc, ctx)
    if n > len(data) - 8:
        ctx.finding(
            loc, ST_HEADER_SIZE, f"header length {n} exceeds the {len(data) - 8} bytes after it", offset=0
        )
        raise TruncatedError(f"header length {n} exceeds the file", offset=0)
    if n > ctx.limits.max_header_bytes:
        ctx.finding(loc, ST_HEADER_SIZE, f"header length {n} exceeds {ctx.limits.max_header_bytes}", offset=0)
        raise LimitExceeded(f"header length {n} exceeds {ctx.limits.max_header_bytes} bytes", offset=0)
    raw = bytes(data[8 : 8 + n])
    header = _parse_header(raw, report)
    try:
        _check_tensors(header, raw, data, n, loc, ctx, depth, report)
    finally:
        report.flush()


def _parse_header(raw: bytes, report: _Reporter) -> dict[str, Any]:
    if not raw.lstrip(b" ").startswith(b"{"):
        raise FormatError("safetensors header is not a JSON object", offset=8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"safetensors header is not UTF-8: {exc.reason}", offset=8 + exc.start) from None

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                report(ST_DUPLICATE_KEY, f"key {key!r} appears more than once", _key_offset(raw, key))
            seen[key] = value
        return seen

    def constant(name: str) -> Any:
        raise FormatError(f"safetensors header uses non-JSON constant {name}", offset=8)

    try:
        header = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise FormatError(f"safetensors header is not valid JSON: {exc.msg}", offset=8 + exc.pos) from None
    except RecursionError:
        raise LimitExceeded("safetensors header nests too deeply", offset=8) from None
    if not isinstance(header, dict):
        raise FormatError("safetensors header is not a JSON object", offset=8)
    return header


def _key_offset(raw: bytes, key: str) -> int:
    pos = raw.find(json.dumps(key, ensure_ascii=False).encode())
    return 8 + max(pos, 0)


def _check_tensors(
    header: dict[str, Any],
    raw: bytes,
    data: memoryview,
    n: int,
    loc: Location,
    ctx: ScanContext,
    depth: int,
    report: _Reporter,
) -> None:
    data_start = 8 + n
    data_len = len(data) - data_start
    meta = header.get("__metadata__")
    if "__metadata__" in header and (
        not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values())
    ):
        report(
            ST_INVALID_ENTRY,
            "__metadata__ is not a map of strings to strings",
            _key_offset(raw, "__metadata__"),
        )
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        at = _key_offset(raw, name)
        span = _tensor_span(name, info, at, data_len, report)
        if span is not None:
            spans.append((span[0], span[1], name))
    spans.sort()
    covered = 0
    previous = ""
    for begin, end, name in spans:
        if begin < covered:
            report(
                ST_OVERLAP,
                f"tensor {name!r} [{begin}, {end}) overlaps tensor {previous!r} (ends at {covered})",
                data_start + begin,
            )
        elif begin > covered:
            _hole(covered, begin, data, data_start, loc, ctx, depth, report)
        if end > covered:
            covered, previous = end, name
    if covered < data_len:
        _hole(covered, data_len, data, data_start, loc, ctx, depth, report)


def _tensor_span(name: str, info: Any, at: int, data_len: int, report: _Reporter) -> tuple[int, int] | None:
    """Validate one tensor entry; return its (begin, end) when it lies inside the data section."""
    if not isinstance(info, dict):
        report(ST_INVALID_ENTRY, f"tensor {name!r} is not a JSON object", at)
        return None
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    bits = DTYPE_BITS.get(dtype) if isinstance(dtype, str) else None
    if bits is None:
        report(ST_INVALID_ENTRY, f"tensor {name!r} has unknown dtype {dtype!r}", at)
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        report(ST_INVALID_ENTRY, f"tensor {name!r} has invalid shape {shape!r}", at)
        shape = None
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_uint(o) for o in offsets):
        report(ST_INVALID_ENTRY, f"tensor {name!r} has invalid data_offsets {offsets!r}", at)
        return None
    begin, end = offsets
    if begin > end or end > data_len:
        report(
            ST_OUT_OF_BOUNDS,
            f"tensor {name!r} data_offsets [{begin}, {end}] outside the {data_len}-byte data section",
            at,
        )
        return None
    if bits is not None and shape is not None:
        total_bits = math.prod(shape) * bits
        if total_bits % 8 or total_bits // 8 != end - begin:
            report(
                ST_OUT_OF_BOUNDS,
                f"tensor {name!r} spans {end - begin} bytes but {dtype} x {shape} needs {total_bits / 8:g}",
                at,
            )
    return begin, end


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _hole(
    begin: int,
    end: int,
    data: memoryview,
    data_start: int,
    loc: Location,
    ctx: ScanContext,
    depth: int,
    report: _Reporter,
) -> None:
    report(ST_HOLE, f"{end - begin} bytes at data offset {begin} belong to no tensor", data_start + begin)
    if ctx.nested is not None:  # unwired only in unit tests
        view = data[data_start + begin : data_start + end]
        ctx.scan_nested(view, loc.child(f"uncovered@{data_start + begin}"), depth + 1)

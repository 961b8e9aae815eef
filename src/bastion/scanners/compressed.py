"""Compressed streams (gzip, bz2, xz, lzma, zlib — as joblib writes them — lz4, zstd): decompressed
under a size and ratio budget, then handed back to format detection."""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import Protocol

from bastion.scanners.detect import Compression, compression_of
from bastion.scanners.interface import (
    FormatError,
    LimitExceeded,
    Limits,
    Location,
    ScanContext,
    TruncatedError,
)

_CHUNK = 1 << 20


class _Decompressor(Protocol):
    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...


def _decompressor(kind: str, props: bytes | None) -> _Decompressor:
    if kind == "deflate":
        return zlib.decompressobj(-15)
    if kind in ("zlib", Compression.ZLIB.value):
        return zlib.decompressobj()
    if kind == Compression.GZIP.value:
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind in ("bzip2", Compression.BZIP2.value):
        return bz2.BZ2Decompressor()
    if kind == Compression.XZ.value:
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    if kind == Compression.LZMA.value:
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    if kind == "lzma-raw":
        filt = lzma._decode_filter_properties(lzma.FILTER_LZMA1, props or b"")  # type: ignore[attr-defined]
        return lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=[filt])
    raise FormatError(f"{kind} streams need an optional decompressor that is not installed")


def bounded_decompress(data: memoryview, kind: str, limits: Limits, *, props: bytes | None = None) -> bytes:
    """Decompress in chunks, stopping at the size budget (a bomb becomes a problem, not an OOM).

    Concatenated streams (several gzip members, bz2 or xz streams) are followed as the stdlib
    readers do, so a payload cannot hide in a second member.
    """
    budget = min(limits.max_member_bytes, max(len(data) * limits.max_decompression_ratio, 64 << 20))
    out = bytearray()
    pos = 0
    magic = bytes(data[:4])
    try:
        while True:
            dec = _decompressor(kind, props)
            pending = b""
            while not dec.eof:
                if not pending:
                    if pos >= len(data):
                        break
                    pending = bytes(data[pos : pos + _CHUNK])
                    pos += len(pending)
                if isinstance(dec, type(zlib.decompressobj())):
                    chunk = dec.decompress(pending, _CHUNK)
                    pending = dec.unconsumed_tail
                else:
                    chunk = dec.decompress(pending, _CHUNK)
                    pending = b""
                    while not dec.eof and not dec.needs_input:  # type: ignore[attr-defined]
                        chunk += dec.decompress(b"", _CHUNK)
                        if len(out) + len(chunk) > budget:
                            break
                out += chunk
                if len(out) > budget:
                    raise LimitExceeded(
                        f"{kind} stream expands beyond {budget} bytes (size or ratio limit); raise the "
                        "limit to scan it"
                    )
            if not dec.eof and kind != "lzma-raw":  # zip's LZMA may legally omit the end marker
                raise TruncatedError(f"{kind} stream ends early after {len(out)} bytes", len(data))
            rest = dec.unused_data + pending
            pos -= len(rest)
            if (
                kind in ("deflate", "lzma-raw")
                or pos >= len(data)
                or bytes(data[pos : pos + len(magic)]) != magic
            ):
                break
    except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as exc:
        raise FormatError(f"corrupt {kind} stream after {len(out)} bytes: {exc}") from None
    return bytes(out)


def _decompress_optional(data: memoryview, kind: Compression, limits: Limits) -> bytes:
    try:
        if kind is Compression.LZ4:
            import lz4.frame

            stream = lz4.frame.LZ4FrameDecompressor()
        else:
            import zstandard

            stream = zstandard.ZstdDecompressor().decompressobj()
    except ImportError:
        raise FormatError(
            f"{kind.value} streams need the optional '{kind.value}' package to be scanned"
        ) from None
    budget = min(limits.max_member_bytes, max(len(data) * limits.max_decompression_ratio, 64 << 20))
    out = bytearray()
    for pos in range(0, len(data), _CHUNK):
        out += stream.decompress(bytes(data[pos : pos + _CHUNK]))
        if len(out) > budget:
            raise LimitExceeded(f"{kind.value} stream expands beyond {budget} bytes")
    return bytes(out)


def scan_compressed(data: memoryview, loc: Location, ctx: ScanContext, depth: int) -> None:
    kind = compression_of(bytes(data[:16]))
    if kind is None:
        raise FormatError("not a compressed stream")
    ctx.mark_scanned(loc, kind.value, len(data))
    if kind in (Compression.LZ4, Compression.ZSTD):
        payload = _decompress_optional(data, kind, ctx.limits)
    else:
        payload = bounded_decompress(data, kind.value, ctx.limits)
    ctx.scan_nested(memoryview(payload), loc.child(f"<{kind.value}>"), depth + 1)

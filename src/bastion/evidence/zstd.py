"""zstd-compressed image layers: sniffing the magic, a bounded-memory reader, and a frame walker.

Decompression goes through the optional ``zstandard`` package, imported only when a zstd layer is read.
Its stream reader ends quietly at a truncation, so ``ZstdFrames`` follows the frame and block headers
(RFC 8878) of the compressed bytes to tell a complete stream from one cut short.
"""

from __future__ import annotations

from typing import IO, Protocol, cast

from bastion.evidence.errors import TargetError

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Readable(Protocol):
    """The compressed layer stream: read forwards, once."""

    def read(self, size: int = -1, /) -> bytes: ...


class ZstdFrames:
    """Walks zstd frame and block headers (RFC 8878) as the compressed bytes pass by, to tell a
    complete stream from one cut short: zstandard's stream reader ends quietly at a truncation."""

    def __init__(self) -> None:
        self._state = "magic"
        self._need = 4  # header bytes to collect in this state
        self._buf = b""
        self._skip = 0  # payload bytes to pass over before the next header
        self._checksum = False
        self.error: str | None = None

    @property
    def complete(self) -> bool:
        return self.error is None and self._state == "magic" and not self._buf and not self._skip

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end and self.error is None:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            take = min(self._need - len(self._buf), end - pos)
            self._buf += data[pos : pos + take]
            pos += take
            if len(self._buf) == self._need:
                header, self._buf = self._buf, b""
                self._header(header)

    def _header(self, header: bytes) -> None:
        if self._state == "magic":
            if header == _ZSTD_MAGIC:
                self._state, self._need = "descriptor", 1
            elif is_zstd(header):
                self._state, self._need = "skippable", 4
            else:
                self.error = "bytes after a zstd frame are not another frame"
        elif self._state == "skippable":
            self._skip = int.from_bytes(header, "little")
            self._state, self._need = "magic", 4
        elif self._state == "descriptor":
            descriptor = header[0]
            single_segment = descriptor >> 5 & 1
            if descriptor & 0x08:
                self.error = "a zstd frame header sets its reserved bit"
            self._checksum = bool(descriptor >> 2 & 1)
            window = 0 if single_segment else 1
            dictionary = (0, 1, 2, 4)[descriptor & 3]
            content_size = (single_segment, 2, 4, 8)[descriptor >> 6]
            self._skip = window + dictionary + content_size
            self._state, self._need = "block", 3
        else:
            block = int.from_bytes(header, "little")
            kind, size = block >> 1 & 3, block >> 3
            if kind == 3:
                self.error = "a zstd block has the reserved type"
            self._skip = 1 if kind == 1 else size  # an RLE block stores its one byte
            if block & 1:  # the frame's last block, then its checksum
                self._skip += 4 if self._checksum else 0
                self._state, self._need = "magic", 4


def is_zstd(magic: bytes) -> bool:
    """A zstd frame, or a skippable frame (0x184D2A5?) such as zstd:chunked layers may carry."""
    skippable = len(magic) == 4 and magic[1:] == b"\x2a\x4d\x18" and magic[0] & 0xF0 == 0x50
    return magic == _ZSTD_MAGIC or skippable


def zstd_reader(raw: Readable, label: str) -> tuple[IO[bytes], tuple[type[Exception], ...]]:
    """A bounded-memory stream of the decompressed layer, and the error zstandard raises."""
    try:
        import zstandard
    except ImportError:
        raise TargetError(
            f"{label} is zstd-compressed, and reading it needs the 'zstandard' package",
            hint="pip install 'bastion-mlsecops[zstd]'",
        ) from None
    reader = zstandard.ZstdDecompressor().stream_reader(
        cast(IO[bytes], raw), read_across_frames=True, closefd=False
    )
    return reader, (zstandard.ZstdError,)

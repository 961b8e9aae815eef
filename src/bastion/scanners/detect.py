"""Format detection by content. File names are only used to notice names that lie."""

from __future__ import annotations

import enum
import struct
from pathlib import PurePosixPath


class Format(enum.Enum):
    EMPTY = "empty"
    PICKLE = "pickle"
    NUMPY = "numpy"
    ZIP = "zip"
    TAR = "tar"
    COMPRESSED = "compressed"
    HDF5 = "hdf5"
    GGUF = "gguf"
    SAFETENSORS = "safetensors"
    ONNX = "onnx"
    SAVEDMODEL = "tf-savedmodel"
    TEXT = "text"
    UNKNOWN = "unknown"


class Compression(enum.Enum):
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    LZMA = "lzma"
    ZLIB = "zlib"
    LZ4 = "lz4"
    ZSTD = "zstd"


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_EOCD = b"PK\x05\x06"
_SNIFF = 4096

# What a file name promises. Content that is executable (pickle family) behind a name that promises
# inert data is the disguise attackers use against scanners that route by extension.
EXTENSIONS: dict[str, frozenset[Format]] = {
    ".pkl": frozenset({Format.PICKLE, Format.COMPRESSED}),
    ".pickle": frozenset({Format.PICKLE, Format.COMPRESSED}),
    ".joblib": frozenset({Format.PICKLE, Format.COMPRESSED}),
    ".dill": frozenset({Format.PICKLE}),
    ".pt": frozenset({Format.ZIP, Format.PICKLE, Format.TAR}),
    ".pth": frozenset({Format.ZIP, Format.PICKLE, Format.TAR}),
    ".bin": frozenset({Format.ZIP, Format.PICKLE, Format.TAR, Format.UNKNOWN}),
    ".ckpt": frozenset({Format.ZIP, Format.PICKLE}),
    ".npy": frozenset({Format.NUMPY}),
    ".npz": frozenset({Format.ZIP}),
    ".safetensors": frozenset({Format.SAFETENSORS}),
    ".onnx": frozenset({Format.ONNX}),
    ".gguf": frozenset({Format.GGUF}),
    ".h5": frozenset({Format.HDF5}),
    ".hdf5": frozenset({Format.HDF5}),
    ".keras": frozenset({Format.ZIP}),
    ".skops": frozenset({Format.ZIP}),
    ".pb": frozenset({Format.SAVEDMODEL, Format.ONNX, Format.UNKNOWN}),
    ".zip": frozenset({Format.ZIP}),
    ".tar": frozenset({Format.TAR}),
    ".gz": frozenset({Format.COMPRESSED}),
    ".json": frozenset({Format.TEXT}),
    ".txt": frozenset({Format.TEXT}),
    ".md": frozenset({Format.TEXT}),
    ".yaml": frozenset({Format.TEXT}),
    ".yml": frozenset({Format.TEXT}),
    ".png": frozenset({Format.UNKNOWN}),
    ".jpg": frozenset({Format.UNKNOWN}),
}

INERT = frozenset({Format.SAFETENSORS, Format.GGUF, Format.ONNX, Format.TEXT, Format.NUMPY, Format.HDF5})
EXECUTABLE = frozenset({Format.PICKLE})


def compression_of(head: bytes) -> Compression | None:
    if head[:2] == b"\x1f\x8b":
        return Compression.GZIP
    if head[:3] == b"BZh" and head[3:4] in b"123456789" and head[3:4]:
        return Compression.BZIP2
    if head[:6] == b"\xfd7zXZ\x00":
        return Compression.XZ
    if head[:4] == b"\x04\x22\x4d\x18":
        return Compression.LZ4
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return Compression.ZSTD
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return Compression.ZLIB
    if head[:1] == b"\x5d" and head[1:5] in (b"\x00\x00\x80\x00", b"\x00\x00\x00\x01", b"\x00\x00\x00\x04"):
        return Compression.LZMA  # .lzma "alone" format, as joblib writes it (properties byte 0x5d)
    if len(head) >= 13 and head[:1] == b"\x5d" and head[1:3] == b"\x00\x00":
        return Compression.LZMA
    return None


def has_zip_directory(data: memoryview) -> bool:
    """True when a consistent end-of-central-directory record sits near the end (zip readers start there).

    The record must point at a central directory entry, so that random tensor bytes containing the
    signature are not mistaken for an appended archive.
    """
    size = len(data)
    start = max(0, size - (65535 + 22))
    tail = bytes(data[start:])
    pos = tail.rfind(_EOCD)
    while pos >= 0:
        if pos + 22 <= len(tail):
            entries, cd_size, cd_offset = struct.unpack_from("<HII", tail, pos + 10)
            eocd_at = start + pos
            if entries == 0 and cd_size == 0:
                return True
            if cd_offset == 0xFFFFFFFF or entries == 0xFFFF:
                return tail.rfind(b"PK\x06\x07", 0, pos) >= 0  # zip64 locator
            # Data may be prepended to the archive: the directory then sits cd_size bytes before the EOCD.
            cd_at = eocd_at - cd_size
            if cd_at >= 0 and bytes(data[cd_at : cd_at + 4]) == b"PK\x01\x02":
                return True
        pos = tail.rfind(_EOCD, 0, pos)
    return False


def _is_tar(head: bytes) -> bool:
    return len(head) >= 265 and head[257:262] == b"ustar"


def _is_safetensors(data: memoryview) -> bool:
    if len(data) < 10:
        return False
    (n,) = struct.unpack_from("<Q", data, 0)
    return 2 <= n <= len(data) - 8 and data[8] == 0x7B  # "{"


def _is_hdf5(data: memoryview) -> bool:
    # The superblock may follow a user block of 512, 1024, 2048... bytes.
    if bytes(data[:8]) == _HDF5_MAGIC:
        return True
    offset = 512
    while offset + 8 <= min(len(data), 1 << 20):
        if bytes(data[offset : offset + 8]) == _HDF5_MAGIC:
            return True
        offset *= 2
    return False


def _is_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sniff window is still text.
        return exc.start >= len(head) - 3
    return True


def _may_be_protobuf(head: bytes) -> bool:
    """ONNX and SavedModel files open with a field tag: field number 1 or more, wire type varint or
    length-delimited (what their top-level messages use).

    The first top-level fields within ``head`` are then read with the wire-format reader both content
    sniffers use: where it fails (field number 0, groups, a bad wire type), both reject the file, so
    their parsers need not even be imported (a checkpoint's text members, such as a torch zip's
    ``.data/serialization_id`` of digits, would otherwise import them every time). A field that runs
    past the window is undecided here: only the full parse can tell.
    """
    if not (len(head) > 1 and head[0] >= 0x08 and head[0] & 0x07 in (0, 2)):
        return False
    from bastion.scanners.interface import FormatError, TruncatedError
    from bastion.scanners.protobuf import iter_fields

    try:
        for count, _ in enumerate(iter_fields(memoryview(head)), start=1):
            if count >= 64:  # a bounded look: most non-protobuf content fails within a few fields
                break
    except TruncatedError:
        return True
    except FormatError:
        return False
    return True


def sniff(data: memoryview) -> list[Format]:
    """Every format the bytes can be read as, most specific first.

    More than one entry means a polyglot (for example a pickle with a zip appended), which loaders
    may read differently from scanners: the engine scans every reading.
    """
    if len(data) == 0:
        return [Format.EMPTY]
    head = bytes(data[:_SNIFF])
    found: list[Format] = []
    if head.startswith(b"\x93NUMPY"):
        found.append(Format.NUMPY)
    elif head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        found.append(Format.ZIP)
    elif _is_hdf5(data):
        found.append(Format.HDF5)
    elif head.startswith(b"GGUF"):
        found.append(Format.GGUF)
    elif _is_tar(head):
        found.append(Format.TAR)
    elif compression_of(head) is not None:
        found.append(Format.COMPRESSED)
    elif _is_safetensors(data):
        found.append(Format.SAFETENSORS)
    else:
        from bastion.scanners.pickle import looks_like_pickle

        if looks_like_pickle(data):
            found.append(Format.PICKLE)
        elif _may_be_protobuf(head):  # cheap: tensor data in a checkpoint never imports the parsers
            from bastion.scanners.onnx import looks_like_onnx
            from bastion.scanners.savedmodel import looks_like_savedmodel

            if looks_like_savedmodel(data):
                found.append(Format.SAVEDMODEL)
            elif looks_like_onnx(data):
                found.append(Format.ONNX)
    if Format.ZIP not in found and has_zip_directory(data) and (found or not _is_text(head)):
        found.append(Format.ZIP)
    if not found:
        found.append(Format.TEXT if _is_text(head) else Format.UNKNOWN)
    return found


def extension_mismatch(name: str, formats: list[Format]) -> tuple[str, frozenset[Format]] | None:
    """The suffix and what it promises, when the content is none of those formats."""
    suffix = PurePosixPath(name).suffix.lower()
    promised = EXTENSIONS.get(suffix)
    if promised is None or any(f in promised for f in formats):
        return None
    return suffix, promised

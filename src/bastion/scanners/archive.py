"""Zip and tar archives: list members, recognise the model flavour, hand every member back to
format detection. Members are sliced from the parent view (no copy) when stored uncompressed."""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from collections import Counter
from pathlib import PurePosixPath

from bastion.core import Severity
from bastion.scanners._buffer import ViewReader
from bastion.scanners.compressed import bounded_decompress
from bastion.scanners.interface import (
    FormatError,
    LimitExceeded,
    Location,
    ScanContext,
    TruncatedError,
    rule,
)

DUPLICATE_MEMBER = rule(
    "BAS-M003",
    "archive-duplicate-member",
    Severity.HIGH,
    "Archive holds several members with the same name",
    "Rebuild the archive from trusted sources; loaders disagree on which copy they read, so a scanner "
    "and a loader can see different files.",
    cwe=("CWE-436",),
)
CRC_MISMATCH = rule(
    "BAS-M004",
    "archive-crc-mismatch",
    Severity.MEDIUM,
    "Archive member fails its CRC check",
    "Treat the file as tampered: re-download it from the publisher and verify its signature.",
    atlas=("AML.T0010", "AML.M0014"),
    cwe=("CWE-354",),
)
UNSAFE_MEMBER_PATH = rule(
    "BAS-M005",
    "archive-path-traversal",
    Severity.HIGH,
    "Archive member or link escapes the extraction folder",
    "Never extract this archive with a tool that follows member paths; rebuild it without absolute "
    "paths, '..' components or links leaving the archive.",
    atlas=("AML.T0010", "AML.M0014"),
    cwe=("CWE-22",),
)
HEADER_MISMATCH = rule(
    "BAS-M006",
    "archive-header-mismatch",
    Severity.MEDIUM,
    "Zip local header disagrees with the central directory",
    "Rebuild the archive: readers that trust the local header see a different member than those that "
    "trust the central directory.",
    cwe=("CWE-436",),
)

_TORCH_PICKLE = re.compile(r"^(?:(?P<prefix>[^/]+)/)?data\.pkl$")
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def _unsafe_path(name: str) -> bool:
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return True
    return ".." in re.split(r"[\\/]", name)


def _member_view(data: memoryview, info: zipfile.ZipInfo, loc: Location, ctx: ScanContext) -> memoryview:
    """The member's uncompressed bytes, read through the local header as loaders do."""
    offset = info.header_offset
    header = bytes(data[offset : offset + 30])
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise FormatError(f"member {info.filename!r}: no local header at offset {offset}", offset)
    name_len, extra_len = struct.unpack_from("<HH", header, 26)
    local_name = bytes(data[offset + 30 : offset + 30 + name_len])
    if local_name.decode("utf-8", "replace") != info.filename and local_name != info.orig_filename.encode(
        "cp437", "replace"
    ):
        ctx.finding(
            loc,
            HEADER_MISMATCH,
            f"local header names {local_name.decode('utf-8', 'replace')!r}, central directory names "
            f"{info.filename!r}",
            offset=offset,
        )
    start = offset + 30 + name_len + extra_len
    raw = data[start : start + info.compress_size]
    if len(raw) < info.compress_size:
        raise TruncatedError(f"member {info.filename!r} is truncated", start)
    if info.compress_type == zipfile.ZIP_STORED:
        return raw
    if info.compress_type == zipfile.ZIP_DEFLATED:
        return memoryview(bounded_decompress(raw, "deflate", ctx.limits))
    if info.compress_type == zipfile.ZIP_BZIP2:
        return memoryview(bounded_decompress(raw, "bzip2", ctx.limits))
    # LZMA in zip carries a 4-byte version/size prefix before the properties.
    if len(raw) < 4:
        raise TruncatedError(f"member {info.filename!r} is truncated", start)
    (props_size,) = struct.unpack_from("<H", raw, 2)
    props = bytes(raw[4 : 4 + props_size])
    return memoryview(bounded_decompress(raw[4 + props_size :], "lzma-raw", ctx.limits, props=props))


def scan_zip(data: memoryview, loc: Location, ctx: ScanContext, depth: int) -> None:
    try:
        archive = zipfile.ZipFile(ViewReader(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise FormatError(f"not a readable zip archive: {exc}") from None
    infos = archive.infolist()
    if len(infos) > ctx.limits.max_archive_members:
        raise LimitExceeded(f"{len(infos)} members exceed the limit of {ctx.limits.max_archive_members}")
    names = [i.filename for i in infos]
    for name, n in Counter(names).items():
        if n > 1:
            ctx.finding(loc, DUPLICATE_MEMBER, f"{n} members are named {name!r}", count=n)
    flavour, handled, storage = _flavour(names)
    ctx.mark_scanned(loc, flavour, len(data), members=str(len(infos)))
    if storage:
        ctx.skip(loc, f"{len(storage)} tensor storage members (raw bytes, never deserialised by PyTorch)")
    for info in infos:
        name = info.filename
        if _unsafe_path(name):
            ctx.finding(loc, UNSAFE_MEMBER_PATH, f"member path {name!r} leaves the archive root")
        if info.is_dir() or name in storage:
            continue
        member_loc = loc.child(name)
        if info.flag_bits & 0x1:
            ctx.problem(member_loc, FormatError.kind, "member is encrypted and cannot be scanned")
            continue
        if info.compress_type not in _ZIP_METHODS:
            ctx.problem(
                member_loc, FormatError.kind, f"unsupported zip compression method {info.compress_type}"
            )
            continue
        try:
            view = _member_view(data, info, loc, ctx)
        except FormatError as exc:
            ctx.problem(member_loc, exc.kind, str(exc), offset=exc.offset)
            continue
        if (zlib.crc32(view) & 0xFFFFFFFF) != info.CRC:
            ctx.finding(loc, CRC_MISMATCH, f"member {name!r} has a wrong CRC-32; PyTorch still loads it")
        special = handled.get(name)
        if special is not None:
            _scan_special(special, view, member_loc, ctx, depth + 1)
        else:
            ctx.scan_nested(view, member_loc, depth + 1)


def _flavour(names: list[str]) -> tuple[str, dict[str, str], set[str]]:
    """The model flavour of a zip, its config members and its raw tensor storage members."""
    nameset = set(names)
    handled: dict[str, str] = {}
    storage: set[str] = set()
    prefixes = {m.group("prefix") or "" for n in names if (m := _TORCH_PICKLE.match(n))}
    if prefixes:
        for name in names:
            for prefix in prefixes:
                base = f"{prefix}/data/" if prefix else "data/"
                rest = name[len(base) :]
                if name.startswith(base) and rest and "/" not in rest and not rest.endswith(".pkl"):
                    storage.add(name)
        torchscript = any(f"{p}/constants.pkl" in nameset for p in prefixes if p)
        return ("torchscript" if torchscript else "pytorch-zip"), handled, storage
    if "config.json" in nameset and "metadata.json" in nameset:
        handled["config.json"] = "keras"
        return "keras-v3", handled, storage
    if "schema.json" in nameset:
        handled["schema.json"] = "skops"
        return "skops", handled, storage
    if names and all(n.endswith(".npy") for n in names):
        return "npz", handled, storage
    return "zip", handled, storage


def _scan_special(kind: str, view: memoryview, loc: Location, ctx: ScanContext, depth: int) -> None:
    try:
        if kind == "keras":
            from bastion.scanners.keras import scan_keras_config

            scan_keras_config(view, loc, ctx, depth)
        else:
            from bastion.scanners.skops import scan_skops_schema

            scan_skops_schema(view, loc, ctx, depth)
    except FormatError as exc:
        ctx.problem(loc, exc.kind, str(exc), offset=exc.offset)


def scan_tar(data: memoryview, loc: Location, ctx: ScanContext, depth: int) -> None:
    import tarfile

    try:
        archive = tarfile.open(fileobj=ViewReader(data), mode="r:")  # noqa: SIM115 - closed below
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
        raise FormatError(f"not a readable tar archive: {exc}") from None
    with archive:
        members: list[tarfile.TarInfo] = []
        try:
            for member in archive:
                members.append(member)
                if len(members) > ctx.limits.max_archive_members:
                    raise LimitExceeded(f"more than {ctx.limits.max_archive_members} members")
        except tarfile.TarError as exc:
            ctx.problem(loc, FormatError.kind, f"tar stream breaks after {len(members)} members: {exc}")
    names = [m.name for m in members]
    legacy_torch = {"sys_info", "pickle", "storages"} <= set(names)
    ctx.mark_scanned(
        loc, "pytorch-legacy-tar" if legacy_torch else "tar", len(data), members=str(len(members))
    )
    for name, n in Counter(names).items():
        if n > 1:
            ctx.finding(loc, DUPLICATE_MEMBER, f"{n} members are named {name!r}", count=n)
    for member in members:
        if _unsafe_path(member.name):
            ctx.finding(loc, UNSAFE_MEMBER_PATH, f"member path {member.name!r} leaves the archive root")
        if member.issym() or member.islnk():
            target = member.linkname
            escapes = _unsafe_path(target) or (
                member.issym() and ".." in PurePosixPath(member.name).parent.joinpath(target).parts
            )
            if escapes:
                ctx.finding(loc, UNSAFE_MEMBER_PATH, f"link {member.name!r} points outside: {target!r}")
            continue
        if not member.isreg():
            continue
        if member.issparse():
            ctx.problem(loc.child(member.name), FormatError.kind, "sparse tar members are not supported")
            continue
        start = member.offset_data
        view = data[start : start + member.size]
        if len(view) < member.size:
            ctx.problem(loc.child(member.name), TruncatedError.kind, "member is truncated", offset=start)
            continue
        ctx.scan_nested(view, loc.child(member.name), depth + 1)


_DIRECTORY_MAX = 1 << 20
_END_RECORD_SEARCH = 22 + 0xFFFF  # the end record and the longest comment after it


def central_directory(view: memoryview) -> bytes:
    """The bytes that hold a zip's central directory, where the member names are: those before the
    end record, as many as the record says the directory has plus 512 for the Zip64 records that
    may sit between them (torch writes them). A directory over 1 MiB (tens of thousands of members)
    or no end record gives the last MiB of the file instead."""
    tail_at = max(0, len(view) - _END_RECORD_SEARCH)
    tail = view[tail_at:].tobytes()
    at = tail.rfind(b"PK\x05\x06")
    if at >= 0 and at + 22 <= len(tail):
        size = int.from_bytes(tail[at + 12 : at + 16], "little")
        if size <= _DIRECTORY_MAX:
            end = tail_at + at
            return view[max(0, end - size - 512) : end].tobytes()
    return view[-_DIRECTORY_MAX:].tobytes()

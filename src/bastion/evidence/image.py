"""``image:`` targets: a ``docker save`` tarball or an OCI image layout (folder or tar), read without Docker.

The layout is parsed (``index.json`` first, as OCI and Docker >= 25 write it, else the legacy
``manifest.json``), then every blob is checked against the digest that names it: the manifest
against its index descriptor, the config against the manifest, each layer blob against its
descriptor (or its ``blobs/sha256/<hex>`` name) and each uncompressed layer against the config's
``rootfs.diff_ids``. A mismatch is a result (``Image.mismatches``), not an exception, so ``verify``
can name the layer; ``attest`` and ``bom`` refuse an image that has any.

An index may list several images (a multi-platform image, possibly behind a nested index): one is
chosen by platform (``os/arch[/variant]``: the ``platform`` argument, else ``choose_platform`` as the
CLI's ``--platform`` sets it, else ``$BASTION_IMAGE_PLATFORM``); without a choice an index of exactly
one image is read, and anything else is refused with the list of platforms it offers.

Nothing is extracted to disk. Each layer is streamed once, its compression sniffed from its magic
bytes, not its media type (gzip; zstd through the optional ``zstandard`` package, in bounded
memory): it is hashed, and the few files a caller asks for (``capture``) are kept in memory
up to a size limit, with whiteouts (``.wh.NAME``, ``.wh..wh..opq``) removing what lower layers
added. Refused with ``TargetError``: member names that are absolute or hold ``..``, symlinks whose
target leaves the image root, hard links out of the archive, oversize metadata or captured files.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

from bastion.core import Digest, Subject
from bastion.errors import UsageError
from bastion.evidence.errors import TargetError

MAX_METADATA = 16 * 1024 * 1024  # index, manifest or config JSON
MAX_CAPTURED = 64 * 1024 * 1024  # one file captured from a layer (a dpkg status file, a RECORD)
_MAX_LINKS = 8
_MAX_NESTING = 4
_CHUNK = 1 << 20
_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PLATFORM_ENV = "BASTION_IMAGE_PLATFORM"

Capture = Callable[[str], bool]


@dataclass(frozen=True)
class Platform:
    """``os/architecture[/variant]`` as OCI image indexes and configs spell it."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().split("/")
        if not 2 <= len(parts) <= 3 or not all(parts):
            raise UsageError(f"platform {text!r} is not os/arch[/variant], e.g. linux/arm64 or linux/arm/v7")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def of(cls, data: Any) -> Platform | None:
        """The platform an index descriptor or an image config names (None if it names none)."""
        if not isinstance(data, Mapping):
            return None
        os_name, arch, variant = data.get("os"), data.get("architecture"), data.get("variant")
        if not isinstance(os_name, str) or not isinstance(arch, str) or not os_name or not arch:
            return None
        return cls(os_name, arch, variant if isinstance(variant, str) and variant else None)

    def matches(self, offered: Platform) -> bool:
        """Whether an image for ``offered`` is what this (asked-for) platform means.

        No variant asked: any variant of that os/arch. ``arm64`` and ``arm64/v8`` are the same."""
        if (self.os, self.architecture) != (offered.os, offered.architecture):
            return False
        if self.variant is None:
            return True
        default = "v8" if self.architecture == "arm64" else None
        return (self.variant or default) == (offered.variant or default)


_CHOSEN: ContextVar[Platform | None] = ContextVar("bastion_image_platform", default=None)


@contextmanager
def choose_platform(platform: Platform | None) -> Iterator[None]:
    """Within the block, ``read_image`` picks ``platform`` from multi-platform indexes."""
    token = _CHOSEN.set(platform)
    try:
        yield
    finally:
        _CHOSEN.reset(token)


def chosen_platform(explicit: Platform | None = None) -> Platform | None:
    """``explicit``, else the block's ``choose_platform``, else ``$BASTION_IMAGE_PLATFORM``."""
    if explicit is not None:
        return explicit
    if _CHOSEN.get() is not None:
        return _CHOSEN.get()
    text = os.environ.get(PLATFORM_ENV, "").strip()
    return Platform.parse(text) if text else None


@dataclass(frozen=True)
class Layer:
    index: int
    path: str  # where the blob lies in the layout
    digest: str  # sha256:... of the blob as stored (computed)
    diff_id: str | None  # sha256:... of the uncompressed tar (None: it could not be read)
    compressed: bool
    compression: str = "none"  # "none", "gzip" or "zstd", as sniffed from the blob's bytes


@dataclass(frozen=True)
class Mismatch:
    """A blob whose bytes do not match the digest that names it."""

    what: str  # "layer 2", "config", "manifest", "index"
    path: str
    expected: str
    actual: str

    @property
    def detail(self) -> str:
        got = f"expected {self.expected}, got {self.actual}"
        return f"{self.what} ({self.path}) does not match its digest: {got}"


@dataclass(frozen=True)
class CapturedFile:
    path: str
    data: bytes
    layer: int


@dataclass(frozen=True)
class Image:
    name: str
    layout: str  # "oci" or "docker-save"
    config_digest: str
    manifest_digest: str
    config: Mapping[str, Any]
    layers: tuple[Layer, ...]
    mismatches: tuple[Mismatch, ...]
    views: tuple[Mapping[str, CapturedFile], ...]  # captured files as seen after each layer
    platform: str | None = None  # os/arch[/variant] of the manifest chosen from an index
    index_digest: str | None = None  # the index it was chosen from (None: the layout holds one image)

    @property
    def subjects(self) -> tuple[Subject, Subject]:
        """The image id (config digest) first, then the manifest digest.

        A manifest chosen from a multi-image index is named after its platform and that index:
        ``NAME#manifest?platform=linux/arm64&index=sha256:...``; the digest stays the manifest's."""
        manifest_name = f"{self.name}#manifest"
        if self.index_digest is not None:
            manifest_name += f"?platform={self.platform or 'unknown'}&index={self.index_digest}"
        return (
            Subject(self.name, (Digest.parse(self.config_digest),)),
            Subject(manifest_name, (Digest.parse(self.manifest_digest),)),
        )

    def require_intact(self) -> None:
        if self.mismatches:
            raise TargetError(
                "the image does not match its own digests: " + "; ".join(m.detail for m in self.mismatches),
                hint="it was corrupted or tampered with; fetch it again",
            )


# --- archives: a tar or a folder, read by POSIX member name --------------------------------------


def safe_name(name: str, where: str) -> str:
    """``name`` normalised (no ``./``); ``TargetError`` if it is absolute or climbs with ``..``."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise TargetError(f"{where}: member {name!r} is an absolute path or climbs out with '..'")
    return "/".join(p for p in path.parts if p != ".")


def link_target(name: str, link: str, where: str, *, absolute_inside: bool) -> str:
    """Where the symlink ``name`` -> ``link`` points, as a member name; refused if it leaves the root."""
    if link.startswith("/"):
        if not absolute_inside:
            raise TargetError(f"{where}: symlink {name!r} points outside the archive (to {link!r})")
        parts: list[str] = []
        rest = PurePosixPath(link).parts[1:]
    else:
        parts = list(PurePosixPath(name).parent.parts)
        rest = PurePosixPath(link).parts
    for part in rest:
        if part == "..":
            if not parts:
                raise TargetError(f"{where}: symlink {name!r} leaves the layer (to {link!r})")
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


class _Archive:
    def __init__(self, where: str) -> None:
        self.where = where

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Release the archive."""

    def read(self, name: str, limit: int = MAX_METADATA) -> bytes:
        if self.size(name) > limit:
            raise TargetError(f"{self.where}: {name} is larger than {limit} bytes")
        with self.open(name) as fh:
            return fh.read(limit + 1)[:limit]


class _TarArchive(_Archive):
    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        try:
            self._tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by close()
            members = self._tar.getmembers()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise TargetError(f"{path} is not a readable tar archive: {exc}") from None
        self._members: dict[str, tarfile.TarInfo] = {}
        try:
            for member in members:
                name = safe_name(member.name, self.where)
                if name in self._members and not member.isdir():
                    raise TargetError(f"{path}: {name} appears twice in the archive")
                self._members[name] = member
        except TargetError:
            self._tar.close()
            raise

    def _member(self, name: str) -> tarfile.TarInfo:
        for _ in range(_MAX_LINKS):
            member = self._members.get(name)
            if member is None:
                raise TargetError(f"{self.where}: no {name} in the archive")
            if member.isfile():
                return member
            if member.issym():
                name = link_target(name, member.linkname, self.where, absolute_inside=False)
            elif member.islnk():
                name = safe_name(member.linkname, self.where)
            else:
                raise TargetError(f"{self.where}: {name} is not a regular file")
        raise TargetError(f"{self.where}: {name} is behind too many links")

    def exists(self, name: str) -> bool:
        return name in self._members

    def size(self, name: str) -> int:
        return self._member(name).size

    def open(self, name: str) -> IO[bytes]:
        handle = self._tar.extractfile(self._member(name))
        assert handle is not None  # a regular file always has one
        return handle

    def close(self) -> None:
        self._tar.close()


class _DirArchive(_Archive):
    def __init__(self, root: Path) -> None:
        super().__init__(str(root))
        self._root = root.resolve()

    def _path(self, name: str) -> Path:
        path = (self._root / safe_name(name, self.where)).resolve()
        if not path.is_relative_to(self._root):
            raise TargetError(f"{self.where}: {name} is a symlink leaving the layout")
        if not path.is_file():
            raise TargetError(f"{self.where}: no regular file {name}")
        return path

    def exists(self, name: str) -> bool:
        return (self._root / name).exists()

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size

    def open(self, name: str) -> IO[bytes]:
        try:
            return self._path(name).open("rb")
        except OSError as exc:
            raise TargetError(f"cannot read {name} in {self.where}: {exc.strerror}") from None


# --- layouts ---------------------------------------------------------------------------------------


def _json(archive: _Archive, name: str) -> Any:
    data = archive.read(name)
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise TargetError(f"{archive.where}: {name} is not JSON") from None


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob_path(digest: Any, where: str) -> str:
    if not isinstance(digest, str):
        raise TargetError(f"{where}: a descriptor has no digest")
    algorithm, _, hexpart = digest.partition(":")
    if algorithm != "sha256":
        raise TargetError(f"{where}: digest {digest!r} is not sha256; Bastion checks sha256 images only")
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise TargetError(f"{where}: malformed digest {digest!r}")
    return f"blobs/sha256/{hexpart}"


def _named_digest(path: str) -> str | None:
    """The digest a legacy docker-save file name carries (``<hex>.json`` or ``blobs/sha256/<hex>``)."""
    stem = PurePosixPath(path).name.removesuffix(".json")
    if len(stem) == 64 and all(c in "0123456789abcdef" for c in stem):
        return f"sha256:{stem}"
    return None


@dataclass(frozen=True)
class _Plan:
    name: str
    layout: str
    manifest_digest: str
    config: Mapping[str, Any]
    config_digest: str
    layers: tuple[tuple[str, str | None], ...]  # (blob path, expected blob digest)
    mismatches: tuple[Mismatch, ...]
    platform: str | None = None
    index_digest: str | None = None


@dataclass(frozen=True)
class _Candidate:
    """An image manifest an index lists, and the index that lists it."""

    descriptor: Mapping[str, Any]
    platform: Platform | None
    index_digest: str | None  # the nested index blob's digest (None: listed in index.json itself)
    annotations: Mapping[str, Any]  # its own, else those of the index descriptor that led to it


def _image_descriptors(
    archive: _Archive,
    index: Any,
    depth: int,
    index_digest: str | None,
    found: list[_Candidate],
    mismatches: list[Mismatch],
    inherited: Mapping[str, Any],
) -> None:
    if depth > _MAX_NESTING or not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise TargetError(f"{archive.where}: index.json is not an OCI image index")
    for descriptor in index["manifests"]:
        if not isinstance(descriptor, dict):
            raise TargetError(f"{archive.where}: a descriptor in the index is not an object")
        platform = descriptor.get("platform")
        if isinstance(platform, dict) and platform.get("os") == "unknown":
            continue  # buildx attestation manifests, not images
        own = descriptor.get("annotations")
        annotations = own if isinstance(own, dict) and _ref_name(own) else inherited
        if descriptor.get("mediaType") in _INDEX_TYPES:
            path = _blob_path(descriptor.get("digest"), archive.where)
            data = archive.read(path)
            if _sha256(data) != descriptor["digest"]:
                mismatches.append(Mismatch("index", path, descriptor["digest"], _sha256(data)))
            try:
                nested = json.loads(data)
            except (ValueError, UnicodeDecodeError):
                raise TargetError(f"{archive.where}: {path} is not JSON") from None
            digest = str(descriptor["digest"])
            _image_descriptors(archive, nested, depth + 1, digest, found, mismatches, annotations)
        else:
            found.append(_Candidate(descriptor, Platform.of(platform), index_digest, annotations))


def _ref_name(annotations: Mapping[str, Any]) -> str | None:
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        if isinstance(annotations.get(key), str) and annotations[key]:
            return str(annotations[key])
    return None


def _describe(candidates: list[_Candidate]) -> str:
    return ", ".join(
        str(c.platform) if c.platform else f"(no platform) {c.descriptor.get('digest')}" for c in candidates
    )


def _choose(candidates: list[_Candidate], platform: Platform | None, where: str) -> _Candidate:
    """The one image the caller means; a ``TargetError`` listing what is on offer otherwise."""
    hint = "choose one with --platform os/arch[/variant] (or BASTION_IMAGE_PLATFORM)"
    if not candidates:
        raise TargetError(f"{where} holds no image manifest")
    if platform is None:
        if len(candidates) == 1:
            return candidates[0]
        raise TargetError(
            f"{where} holds {len(candidates)} images, for platforms: {_describe(candidates)}", hint=hint
        )
    matching = [c for c in candidates if c.platform is not None and platform.matches(c.platform)]
    if len(matching) == 1:
        return matching[0]
    if not matching and len(candidates) == 1 and candidates[0].platform is None:
        return candidates[0]  # the index does not say: the config is checked against the platform instead
    if not matching:
        raise TargetError(
            f"{where} has no image for platform {platform}; it offers: {_describe(candidates)}", hint=hint
        )
    raise TargetError(
        f"{where} holds {len(matching)} images for platform {platform}: {_describe(matching)}",
        hint="name the variant too (os/arch/variant)",
    )


def _check_config_platform(config: Mapping[str, Any], platform: Platform | None, where: str) -> None:
    if platform is None:
        return
    actual = Platform.of(config)
    if actual is None:
        raise TargetError(f"{where}: the image config names no platform, so it cannot be {platform}")
    if actual.variant is None:  # configs often leave the variant out: the index said it already
        platform = Platform(platform.os, platform.architecture)
    if not platform.matches(actual):
        raise TargetError(f"{where} is an image for {actual}, not {platform}")


def _oci_plan(archive: _Archive, fallback: str, platform: Platform | None) -> _Plan:
    candidates: list[_Candidate] = []
    mismatches: list[Mismatch] = []
    index_bytes = archive.read("index.json")
    try:
        top = json.loads(index_bytes)
    except (ValueError, UnicodeDecodeError):
        raise TargetError(f"{archive.where}: index.json is not JSON") from None
    _image_descriptors(archive, top, 0, None, candidates, mismatches, {})
    distinct: dict[str, _Candidate] = {}
    for candidate in candidates:  # one image under several tags is listed once per tag
        distinct.setdefault(str(candidate.descriptor.get("digest")), candidate)
    candidates = list(distinct.values())
    chosen = _choose(candidates, platform, archive.where)
    descriptor = chosen.descriptor
    index_digest = None  # one image in the layout: nothing was chosen, the subjects stay as they were
    if len(candidates) > 1:  # chosen from the innermost index blob, else from index.json itself
        index_digest = chosen.index_digest or _sha256(index_bytes)
    manifest_path = _blob_path(descriptor.get("digest"), archive.where)
    manifest_bytes = archive.read(manifest_path)
    if _sha256(manifest_bytes) != descriptor["digest"]:
        mismatches.append(Mismatch("manifest", manifest_path, descriptor["digest"], _sha256(manifest_bytes)))
    try:
        manifest = json.loads(manifest_bytes)
        config_descriptor = manifest["config"]
        layer_descriptors = manifest["layers"]
        config_path = _blob_path(config_descriptor["digest"], archive.where)
        layers = tuple((_blob_path(d["digest"], archive.where), str(d["digest"])) for d in layer_descriptors)
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        raise TargetError(f"{archive.where}: {manifest_path} is not an image manifest") from None
    config_bytes = archive.read(config_path)
    if _sha256(config_bytes) != config_descriptor["digest"]:
        mismatches.append(Mismatch("config", config_path, config_descriptor["digest"], _sha256(config_bytes)))
    config = _config(config_bytes, archive.where)
    _check_config_platform(config, platform, archive.where)
    name = _ref_name(chosen.annotations) or fallback
    chosen_platform = chosen.platform or Platform.of(config)
    return _Plan(
        name,
        "oci",
        str(descriptor["digest"]),
        config,
        _sha256(config_bytes),
        layers,
        tuple(mismatches),
        str(chosen_platform) if index_digest is not None and chosen_platform else None,
        index_digest,
    )


def _docker_plan(archive: _Archive, fallback: str, platform: Platform | None) -> _Plan:
    raw = archive.read("manifest.json")
    try:
        entries = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise TargetError(f"{archive.where}: manifest.json is not JSON") from None
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        count = len(entries) if isinstance(entries, list) else 0
        raise TargetError(f"{archive.where}: manifest.json must describe exactly one image, not {count}")
    entry = entries[0]
    config_path, layer_paths = entry.get("Config"), entry.get("Layers")
    if not isinstance(config_path, str) or not isinstance(layer_paths, list):
        raise TargetError(f"{archive.where}: manifest.json lacks Config or Layers")
    config_path = safe_name(config_path, archive.where)
    config_bytes = archive.read(config_path)
    mismatches = []
    named = _named_digest(config_path)
    if named is not None and named != _sha256(config_bytes):
        mismatches.append(Mismatch("config", config_path, named, _sha256(config_bytes)))
    layers = []
    for path in layer_paths:
        if not isinstance(path, str):
            raise TargetError(f"{archive.where}: a layer in manifest.json is not a path")
        path = safe_name(path, archive.where)
        layers.append((path, _named_digest(path) if path.startswith("blobs/") else None))
    tags = entry.get("RepoTags")
    name = tags[0] if isinstance(tags, list) and tags and isinstance(tags[0], str) else fallback
    config = _config(config_bytes, archive.where)
    _check_config_platform(config, platform, archive.where)
    return _Plan(
        name,
        "docker-save",
        _sha256(raw),
        config,
        _sha256(config_bytes),
        tuple(layers),
        tuple(mismatches),
    )


def _config(data: bytes, where: str) -> Mapping[str, Any]:
    try:
        config = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise TargetError(f"{where}: the image config is not JSON") from None
    if not isinstance(config, dict):
        raise TargetError(f"{where}: the image config is not a JSON object")
    return config


# --- layers ----------------------------------------------------------------------------------------


class _Tee:
    """A read-only stream that hashes what passes through it; ``head`` bytes are replayed first."""

    def __init__(self, stream: IO[bytes] | gzip.GzipFile | _Tee) -> None:
        self._stream = stream
        self.hasher = hashlib.sha256()
        self._head = b""
        self.observer: Callable[[bytes], None] | None = None  # also sees every new byte

    def sniff(self, count: int) -> bytes:
        self._head = self._stream.read(count)
        self.hasher.update(self._head)
        return self._head

    def read(self, size: int = -1) -> bytes:
        head, self._head = self._head, b""
        if size is not None and 0 <= size <= len(head):
            self._head = head[size:]
            return head[:size]
        more = self._stream.read(-1 if size is None or size < 0 else size - len(head))
        self.hasher.update(more)
        if self.observer is not None:
            self.observer(more)
        return head + more

    def seek(self, offset: int, /) -> int:
        raise OSError("a layer stream is read once, forwards")

    def drain(self) -> None:
        self._head = b""
        while self.read(_CHUNK):
            pass


class _ZstdFrames:
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
            elif _is_zstd(header):
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


def _drop(view: dict[str, CapturedFile], prefix: str, below: int, *, itself: bool) -> None:
    for path in [p for p, f in view.items() if f.layer < below]:
        if (itself and path == prefix) or path.startswith(prefix + "/") or not prefix:
            del view[path]


def _is_zstd(magic: bytes) -> bool:
    """A zstd frame, or a skippable frame (0x184D2A5?) such as zstd:chunked layers may carry."""
    skippable = len(magic) == 4 and magic[1:] == b"\x2a\x4d\x18" and magic[0] & 0xF0 == 0x50
    return magic == _ZSTD_MAGIC or skippable


def _zstd_reader(raw: _Tee, label: str) -> tuple[IO[bytes], tuple[type[Exception], ...]]:
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


def _read_layer(
    stream: IO[bytes], index: int, label: str, capture: Capture, view: dict[str, CapturedFile]
) -> tuple[str, str | None, str, str | None]:
    """Stream one layer blob: (blob digest, diff id, compression, parse error)."""
    raw = _Tee(stream)
    magic = raw.sniff(4)
    errors: tuple[type[Exception], ...] = (tarfile.TarError, OSError, EOFError, zlib.error)
    diff: _Tee
    frames: _ZstdFrames | None = None
    if magic.startswith(b"\x1f\x8b"):
        compression = "gzip"
        diff = _Tee(gzip.GzipFile(fileobj=raw, mode="rb"))
    elif _is_zstd(magic):
        compression = "zstd"
        reader, zstd_errors = _zstd_reader(raw, label)
        errors += zstd_errors
        diff = _Tee(reader)
        frames = _ZstdFrames()
        frames.feed(magic)
        raw.observer = frames.feed
    else:
        compression = "none"
        diff = raw
    error: str | None = None
    try:
        with tarfile.open(fileobj=diff, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                tar.members.clear()  # stream mode would otherwise keep every header in memory
                _member(tar, member, index, label, capture, view)
        diff.drain()
    except errors as exc:
        kind = f"{compression} " if compression != "none" else ""
        error = f"{label} is not a readable {kind}tar layer (corrupt or truncated?): {exc}"
    raw.drain()
    if frames is not None and not frames.complete and error is None:
        error = f"{label} is a broken zstd stream: {frames.error or 'it ends inside a frame (truncated)'}"
    blob = "sha256:" + raw.hasher.hexdigest()
    if compression == "none":
        return blob, blob, compression, error  # the blob is the tar: its digest is the diff id
    diff_id = None if error else "sha256:" + diff.hasher.hexdigest()
    return blob, diff_id, compression, error


def _member(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    index: int,
    label: str,
    capture: Capture,
    view: dict[str, CapturedFile],
) -> None:
    name = safe_name(member.name, label)
    if not name:
        return
    parent, _, base = name.rpartition("/")
    if base == ".wh..wh..opq":
        _drop(view, parent, index, itself=False)
        return
    if base.startswith(".wh."):
        _drop(view, f"{parent}/{base[4:]}" if parent else base[4:], index, itself=True)
        return
    if member.issym():
        target = link_target(name, member.linkname, label, absolute_inside=True)
    elif member.islnk():
        target = safe_name(member.linkname, label)
    else:
        target = None
    if not capture(name):
        return
    view.pop(name, None)
    if member.isfile():
        if member.size > MAX_CAPTURED:
            raise TargetError(f"{label}: {name} is {member.size} bytes, over the {MAX_CAPTURED} byte limit")
        handle = tar.extractfile(member)
        assert handle is not None
        view[name] = CapturedFile(name, handle.read(), index)
    elif target is not None and target in view:
        view[name] = CapturedFile(name, view[target].data, index)


def read_image(path: Path, capture: Capture | None = None, *, platform: Platform | None = None) -> Image:
    """Parse and check the image at ``path``; keep the layer files ``capture`` selects.

    ``platform``: which image of a multi-platform index (default: see ``chosen_platform``)."""
    wanted: Capture = capture or (lambda _name: False)
    platform = chosen_platform(platform)
    archive: _Archive = _DirArchive(path) if path.is_dir() else _TarArchive(path)
    try:
        fallback = path.resolve().name
        if archive.exists("index.json"):
            plan = _oci_plan(archive, fallback, platform)
        elif archive.exists("manifest.json"):
            plan = _docker_plan(archive, fallback, platform)
        else:
            raise TargetError(
                f"{path} is neither a docker save tarball nor an OCI layout (no index.json or manifest.json)"
            )
        rootfs = plan.config.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list) or len(diff_ids) != len(plan.layers):
            raise TargetError(f"{path}: the config's rootfs.diff_ids do not list the manifest's layers")
        mismatches = list(plan.mismatches)
        layers: list[Layer] = []
        views: list[Mapping[str, CapturedFile]] = []
        view: dict[str, CapturedFile] = {}
        for index, (blob_path, expected) in enumerate(plan.layers):
            label = f"layer {index}"
            with archive.open(blob_path) as stream:
                digest, diff_id, compression, error = _read_layer(stream, index, label, wanted, view)
            if expected is not None and digest != expected:
                mismatches.append(Mismatch(label, blob_path, expected, digest))
            elif diff_id is not None and diff_id != diff_ids[index]:
                mismatches.append(
                    Mismatch(f"{label} (uncompressed)", blob_path, str(diff_ids[index]), diff_id)
                )
            elif error is not None:
                raise TargetError(error)
            layers.append(Layer(index, blob_path, digest, diff_id, compression != "none", compression))
            views.append(dict(view))
    finally:
        archive.close()
    return Image(
        name=plan.name,
        layout=plan.layout,
        config_digest=plan.config_digest,
        manifest_digest=plan.manifest_digest,
        config=plan.config,
        layers=tuple(layers),
        mismatches=tuple(mismatches),
        views=tuple(views),
        platform=plan.platform,
        index_digest=plan.index_digest,
    )

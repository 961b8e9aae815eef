"""``image:`` targets: a ``docker save`` tarball or an OCI image layout (folder or tar), read without Docker.

The layout is parsed (``index.json`` first, as OCI and Docker >= 25 write it, else the legacy
``manifest.json``), then every blob is checked against the digest that names it: the manifest
against its index descriptor, the config against the manifest, each layer blob against its
descriptor (or its ``blobs/sha256/<hex>`` name) and each uncompressed layer against the config's
``rootfs.diff_ids``. A mismatch is a result (``Image.mismatches``), not an exception, so ``verify``
can name the layer; ``attest`` and ``bom`` refuse an image that has any.

Nothing is extracted to disk. Each layer is streamed once (gzip sniffed from its magic bytes, not
its media type): it is hashed, and the few files a caller asks for (``capture``) are kept in memory
up to a size limit, with whiteouts (``.wh.NAME``, ``.wh..wh..opq``) removing what lower layers
added. Refused with ``TargetError``: member names that are absolute or hold ``..``, symlinks whose
target leaves the image root, hard links out of the archive, oversize metadata or captured files.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from bastion.core import Digest, Subject
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

Capture = Callable[[str], bool]


@dataclass(frozen=True)
class Layer:
    index: int
    path: str  # where the blob lies in the layout
    digest: str  # sha256:... of the blob as stored (computed)
    diff_id: str | None  # sha256:... of the uncompressed tar (None: it could not be read)
    compressed: bool


@dataclass(frozen=True)
class Mismatch:
    """A blob whose bytes do not match the digest that names it."""

    what: str  # "layer 2", "config", "manifest"
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

    @property
    def subjects(self) -> tuple[Subject, Subject]:
        """The image id (config digest) first, then the manifest digest."""
        return (
            Subject(self.name, (Digest.parse(self.config_digest),)),
            Subject(f"{self.name}#manifest", (Digest.parse(self.manifest_digest),)),
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


def _image_descriptors(archive: _Archive, index: Any, depth: int, found: list[dict[str, Any]]) -> None:
    if depth > _MAX_NESTING or not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise TargetError(f"{archive.where}: index.json is not an OCI image index")
    for descriptor in index["manifests"]:
        if not isinstance(descriptor, dict):
            raise TargetError(f"{archive.where}: a descriptor in the index is not an object")
        platform = descriptor.get("platform")
        if isinstance(platform, dict) and platform.get("os") == "unknown":
            continue  # buildx attestation manifests, not images
        if descriptor.get("mediaType") in _INDEX_TYPES:
            path = _blob_path(descriptor.get("digest"), archive.where)
            _image_descriptors(archive, _json(archive, path), depth + 1, found)
        else:
            found.append(descriptor)


def _oci_plan(archive: _Archive, fallback: str) -> _Plan:
    descriptors: list[dict[str, Any]] = []
    _image_descriptors(archive, _json(archive, "index.json"), 0, descriptors)
    if len(descriptors) != 1:
        raise TargetError(
            f"{archive.where} holds {len(descriptors)} images; Bastion reads a layout with exactly one",
            hint="export a single platform (docker save IMAGE, or skopeo copy --override-arch)",
        )
    descriptor = descriptors[0]
    mismatches: list[Mismatch] = []
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
    annotations = descriptor.get("annotations")
    name = fallback
    if isinstance(annotations, dict):
        for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
            if isinstance(annotations.get(key), str) and annotations[key]:
                name = annotations[key]
                break
    return _Plan(
        name,
        "oci",
        str(descriptor["digest"]),
        _config(config_bytes, archive.where),
        _sha256(config_bytes),
        layers,
        tuple(mismatches),
    )


def _docker_plan(archive: _Archive, fallback: str) -> _Plan:
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
    return _Plan(
        name,
        "docker-save",
        _sha256(raw),
        _config(config_bytes, archive.where),
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

    def __init__(self, stream: IO[bytes] | gzip.GzipFile) -> None:
        self._stream = stream
        self.hasher = hashlib.sha256()
        self._head = b""

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
        return head + more

    def seek(self, offset: int, /) -> int:
        raise OSError("a layer stream is read once, forwards")

    def drain(self) -> None:
        self._head = b""
        while self.read(_CHUNK):
            pass


def _drop(view: dict[str, CapturedFile], prefix: str, below: int, *, itself: bool) -> None:
    for path in [p for p, f in view.items() if f.layer < below]:
        if (itself and path == prefix) or path.startswith(prefix + "/") or not prefix:
            del view[path]


def _read_layer(
    stream: IO[bytes], index: int, label: str, capture: Capture, view: dict[str, CapturedFile]
) -> tuple[str, str | None, bool, str | None]:
    """Stream one layer blob: (blob digest, diff id, compressed, parse error)."""
    raw = _Tee(stream)
    magic = raw.sniff(4)
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        raw.drain()
        raise TargetError(f"{label} is zstd-compressed; Bastion reads plain and gzip layers only")
    compressed = magic.startswith(b"\x1f\x8b")
    diff = _Tee(gzip.GzipFile(fileobj=raw, mode="rb")) if compressed else raw
    error: str | None = None
    try:
        with tarfile.open(fileobj=diff, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                tar.members.clear()  # stream mode would otherwise keep every header in memory
                _member(tar, member, index, label, capture, view)
        diff.drain()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        error = f"{label} is not a readable tar layer: {exc}"
    raw.drain()
    blob = "sha256:" + raw.hasher.hexdigest()
    if not compressed:
        return blob, blob, compressed, error  # the blob is the tar: its digest is the diff id
    diff_id = None if error else "sha256:" + diff.hasher.hexdigest()
    return blob, diff_id, compressed, error


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


def read_image(path: Path, capture: Capture | None = None) -> Image:
    """Parse and check the image at ``path``; keep the layer files ``capture`` selects."""
    wanted: Capture = capture or (lambda _name: False)
    archive: _Archive = _DirArchive(path) if path.is_dir() else _TarArchive(path)
    try:
        fallback = path.resolve().name
        if archive.exists("index.json"):
            plan = _oci_plan(archive, fallback)
        elif archive.exists("manifest.json"):
            plan = _docker_plan(archive, fallback)
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
                digest, diff_id, compressed, error = _read_layer(stream, index, label, wanted, view)
            if expected is not None and digest != expected:
                mismatches.append(Mismatch(label, blob_path, expected, digest))
            elif diff_id is not None and diff_id != diff_ids[index]:
                mismatches.append(
                    Mismatch(f"{label} (uncompressed)", blob_path, str(diff_ids[index]), diff_id)
                )
            elif error is not None:
                raise TargetError(error)
            layers.append(Layer(index, blob_path, digest, diff_id, compressed))
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
    )

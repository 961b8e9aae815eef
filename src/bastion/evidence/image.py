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

The pieces live beside it: ``archives`` (reading a layout), ``platforms`` (choosing an image of an
index) and ``zstd`` (zstd layers); their public names are importable from here too.
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
from bastion.evidence.archives import MAX_METADATA as MAX_METADATA
from bastion.evidence.archives import Archive, DirArchive, TarArchive
from bastion.evidence.archives import link_target as link_target
from bastion.evidence.archives import safe_name as safe_name
from bastion.evidence.errors import TargetError
from bastion.evidence.platforms import PLATFORM_ENV as PLATFORM_ENV
from bastion.evidence.platforms import Candidate, check_config_platform, choose_candidate
from bastion.evidence.platforms import Platform as Platform
from bastion.evidence.platforms import choose_platform as choose_platform
from bastion.evidence.platforms import chosen_platform as chosen_platform
from bastion.evidence.zstd import ZstdFrames, is_zstd, zstd_reader

MAX_CAPTURED = 64 * 1024 * 1024  # one file captured from a layer (a dpkg status file, a RECORD)
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


# --- layouts ---------------------------------------------------------------------------------------


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


def _image_descriptors(
    archive: Archive,
    index: Any,
    depth: int,
    index_digest: str | None,
    found: list[Candidate],
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
            found.append(Candidate(descriptor, Platform.of(platform), index_digest, annotations))


def _ref_name(annotations: Mapping[str, Any]) -> str | None:
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        if isinstance(annotations.get(key), str) and annotations[key]:
            return str(annotations[key])
    return None


def _oci_plan(archive: Archive, fallback: str, platform: Platform | None) -> _Plan:
    candidates: list[Candidate] = []
    mismatches: list[Mismatch] = []
    index_bytes = archive.read("index.json")
    try:
        top = json.loads(index_bytes)
    except (ValueError, UnicodeDecodeError):
        raise TargetError(f"{archive.where}: index.json is not JSON") from None
    _image_descriptors(archive, top, 0, None, candidates, mismatches, {})
    distinct: dict[str, Candidate] = {}
    for candidate in candidates:  # one image under several tags is listed once per tag
        distinct.setdefault(str(candidate.descriptor.get("digest")), candidate)
    candidates = list(distinct.values())
    chosen = choose_candidate(candidates, platform, archive.where)
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
    check_config_platform(config, platform, archive.where)
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


def _docker_plan(archive: Archive, fallback: str, platform: Platform | None) -> _Plan:
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
    check_config_platform(config, platform, archive.where)
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


def _drop(view: dict[str, CapturedFile], prefix: str, below: int, *, itself: bool) -> None:
    for path in [p for p, f in view.items() if f.layer < below]:
        if (itself and path == prefix) or path.startswith(prefix + "/") or not prefix:
            del view[path]


def _read_layer(
    stream: IO[bytes], index: int, label: str, capture: Capture, view: dict[str, CapturedFile]
) -> tuple[str, str | None, str, str | None]:
    """Stream one layer blob: (blob digest, diff id, compression, parse error)."""
    raw = _Tee(stream)
    magic = raw.sniff(4)
    errors: tuple[type[Exception], ...] = (tarfile.TarError, OSError, EOFError, zlib.error)
    diff: _Tee
    frames: ZstdFrames | None = None
    if magic.startswith(b"\x1f\x8b"):
        compression = "gzip"
        diff = _Tee(gzip.GzipFile(fileobj=raw, mode="rb"))
    elif is_zstd(magic):
        compression = "zstd"
        reader, zstd_errors = zstd_reader(raw, label)
        errors += zstd_errors
        diff = _Tee(reader)
        frames = ZstdFrames()
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
    archive: Archive = DirArchive(path) if path.is_dir() else TarArchive(path)
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

"""CycloneDX 1.6 BOM of a container image: OS packages and Python distributions, layer by layer.

Read from the image's layers (see ``bastion.evidence.image``), never from a running container:

* Debian / Ubuntu: ``var/lib/dpkg/status`` (installed paragraphs) and distroless
  ``var/lib/dpkg/status.d/*``, as ``pkg:deb/<distro>/NAME@VERSION?arch=..&distro=..``;
* Alpine: ``lib/apk/db/installed``, as ``pkg:apk/alpine/NAME@VERSION?arch=..&distro=..``;
* Python: every ``site-packages`` / ``dist-packages`` ``*.dist-info/METADATA``, as
  ``pkg:pypi/NAME@VERSION`` with the SHA-256 of its ``RECORD``.

Layers may be plain, gzip or zstd tars. For an image chosen from a multi-platform index, the
container component names the index (``bastion:index-digest``) and the platform (``bastion:platform``).

Each component names (property ``bastion:layer``) the digest of the layer that added it: for OS
packages the lowest layer from which that exact package version has been present, for Python
distributions the layer holding its surviving METADATA. Whiteouts remove what lower layers added.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bastion.core import Subject
from bastion.evidence.bom import cyclonedx_document, distribution_component
from bastion.evidence.canonical import canonical_json
from bastion.evidence.image import CapturedFile, Image, Platform, read_image

DPKG_STATUS = "var/lib/dpkg/status"
APK_INSTALLED = "lib/apk/db/installed"
_DPKG_STATUS_D = re.compile(r"^var/lib/dpkg/status\.d/[^/.]+$")
_OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
_DIST_INFO = re.compile(r"(^|/)(site|dist)-packages/[^/]+\.dist-info/(METADATA|RECORD)$")


def wanted(name: str) -> bool:
    """The layer files this BOM reads."""
    return (
        name in (DPKG_STATUS, APK_INSTALLED, *_OS_RELEASE)
        or _DPKG_STATUS_D.match(name) is not None
        or _DIST_INFO.search(name) is not None
    )


@dataclass(frozen=True)
class OsPackage:
    ecosystem: str  # deb or apk
    name: str
    version: str
    arch: str
    licence: str | None
    source: str  # the database file it was read from

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.ecosystem, self.name, self.version, self.arch)


def _paragraphs(text: str) -> list[dict[str, str]]:
    """RFC 822-style stanzas (dpkg) separated by blank lines; continuation lines are folded away."""
    result: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                result.append(current)
            current = {}
        elif line[0] in " \t":
            continue
        else:
            key, sep, value = line.partition(":")
            if sep:
                current[key.strip()] = value.strip()
    if current:
        result.append(current)
    return result


def parse_dpkg(data: bytes, source: str) -> list[OsPackage]:
    packages = []
    for stanza in _paragraphs(data.decode("utf-8", errors="replace")):
        status = stanza.get("Status")
        if status is not None and status.split()[-1:] != ["installed"]:
            continue
        name, version = stanza.get("Package"), stanza.get("Version")
        if name and version:
            packages.append(OsPackage("deb", name, version, stanza.get("Architecture", ""), None, source))
    return packages


def parse_apk(data: bytes, source: str) -> list[OsPackage]:
    packages = []
    for block in re.split(r"\n\s*\n", data.decode("utf-8", errors="replace")):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep and len(key) == 1:
                fields.setdefault(key, value.strip())
        if fields.get("P") and fields.get("V"):
            packages.append(
                OsPackage("apk", fields["P"], fields["V"], fields.get("A", ""), fields.get("L"), source)
            )
    return packages


def _os_packages(view: Mapping[str, CapturedFile]) -> list[OsPackage]:
    packages: list[OsPackage] = []
    for path in sorted(view):
        if path == DPKG_STATUS or _DPKG_STATUS_D.match(path):
            packages.extend(parse_dpkg(view[path].data, path))
        elif path == APK_INSTALLED:
            packages.extend(parse_apk(view[path].data, path))
    return packages


def _os_release(view: Mapping[str, CapturedFile]) -> dict[str, str]:
    for path in _OS_RELEASE:
        if path in view:
            release = {}
            for line in view[path].data.decode("utf-8", errors="replace").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    release[key.strip()] = value.strip().strip("'\"")
            return release
    return {}


def _purl(package: OsPackage, release: Mapping[str, str]) -> str:
    distro_id = release.get("ID", "").lower()
    namespace = (
        "alpine"
        if package.ecosystem == "apk"
        else (distro_id if distro_id in ("debian", "ubuntu") else "debian")
    )
    qualifiers = []
    if package.arch:
        qualifiers.append(f"arch={quote(package.arch, safe='')}")
    if distro_id:
        version_id = release.get("VERSION_ID", "")
        distro = f"{distro_id}-{version_id}" if version_id else distro_id
        qualifiers.append(f"distro={quote(distro, safe='')}")
    query = "?" + "&".join(qualifiers) if qualifiers else ""
    name, version = quote(package.name, safe=""), quote(package.version, safe="")
    return f"pkg:{package.ecosystem}/{namespace}/{name}@{version}{query}"


def _layer_properties(image: Image, layer: int, path: str) -> list[dict[str, str]]:
    return [
        {"name": "bastion:layer", "value": image.layers[layer].digest},
        {"name": "bastion:layer-index", "value": str(layer)},
        {"name": "bastion:path", "value": path},
    ]


def _os_components(image: Image) -> list[dict[str, Any]]:
    """OS packages of the final filesystem, each attributed to the layer that introduced it."""
    origin: dict[tuple[str, str, str, str], int] = {}
    packages: list[OsPackage] = []
    for index, view in enumerate(image.views):
        packages = _os_packages(view)
        origin = {p.key: origin.get(p.key, index) for p in packages}
    release = _os_release(image.views[-1]) if image.views else {}
    components = []
    for package in packages:
        purl = _purl(package, release)
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": f"{purl}#{package.source}",
            "name": package.name,
            "version": package.version,
            "purl": purl,
            "properties": _layer_properties(image, origin[package.key], package.source),
        }
        if package.licence and len(package.licence) < 200:
            component["licenses"] = [{"license": {"name": package.licence}}]
        components.append(component)
    return components


def _python_components(image: Image) -> list[dict[str, Any]]:
    view = image.views[-1] if image.views else {}
    components = []
    for path in sorted(view):
        if not path.endswith(".dist-info/METADATA") or not _DIST_INFO.search(path):
            continue
        info = path.removesuffix("/METADATA")
        record = view.get(f"{info}/RECORD")
        component = distribution_component(view[path].data, record.data if record else None)
        if component is None:
            continue
        component["bom-ref"] = f"{component['purl']}#{info}"
        component["properties"] = _layer_properties(image, view[path].layer, info) + component["properties"]
        components.append(component)
    return components


def image_bom(path: Path, platform: Platform | None = None) -> tuple[dict[str, Any], tuple[Subject, Subject]]:
    """The BOM of the image at ``path`` and its subjects (image id, manifest digest).

    ``platform`` picks one image of a multi-platform index (see ``read_image``)."""
    image = read_image(path, wanted, platform=platform)
    image.require_intact()
    subjects = image.subjects
    properties = [
        {"name": "bastion:image-id", "value": image.config_digest},
        {"name": "bastion:manifest-digest", "value": image.manifest_digest},
        {"name": "bastion:layout", "value": image.layout},
    ]
    if image.index_digest is not None:  # chosen from a multi-image index: say which, and for what
        properties.append({"name": "bastion:index-digest", "value": image.index_digest})
        properties.append({"name": "bastion:platform", "value": image.platform or "unknown"})
    properties += [{"name": f"bastion:layer:{layer.index}", "value": layer.digest} for layer in image.layers]
    container: dict[str, Any] = {
        "type": "container",
        "bom-ref": "image",
        "name": image.name,
        "hashes": [{"alg": "SHA-256", "content": image.config_digest.removeprefix("sha256:")}],
        "properties": properties,
    }
    components = _os_components(image) + _python_components(image)
    unique = {c["bom-ref"]: c for c in components}
    ordered = [unique[ref] for ref in sorted(unique)]
    document = cyclonedx_document(subjects[0], container, ordered)
    canonical_json(document)  # fails loudly on anything that would not sign reproducibly
    return document, subjects


def signed_layers(predicate: Mapping[str, Any]) -> dict[int, str]:
    """The layer digests a signed image BOM lists, by index (empty if it lists none)."""
    metadata = predicate.get("metadata")
    component = metadata.get("component") if isinstance(metadata, dict) else None
    properties = component.get("properties") if isinstance(component, dict) else None
    layers: dict[int, str] = {}
    for item in properties if isinstance(properties, list) else []:
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name.startswith("bastion:layer:") and name[14:].isdigit():
            layers[int(name[14:])] = str(item.get("value"))
    return layers

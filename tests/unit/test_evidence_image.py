"""image: targets: docker-save tarballs and OCI layouts built here with tarfile, their BOMs, and tampering."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from bastion.cli import main as cli_main
from bastion.evidence import image as image_module
from bastion.evidence.attest import attest
from bastion.evidence.bom import bom_for_target
from bastion.evidence.errors import TargetError
from bastion.evidence.image import read_image
from bastion.evidence.imagebom import image_bom, wanted
from bastion.evidence.keys import Keyring
from bastion.evidence.targets import TargetKind, parse_target
from bastion.evidence.verify import Cause, Status, verify
from tests.unit.evidence_helpers import make_key

cyclonedx = pytest.importorskip("cyclonedx.validation.json")

Entry = tuple[str, bytes | None, str | None]  # (name, content or None, symlink target)

DPKG_BASE = b"""Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u4
Description: GNU C Library
 continuation line: shared libraries

Package: oldtool
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: curl
Status: install ok installed
Architecture: amd64
Version: 7.88.1-10+deb12u5
"""
DPKG_UPPER = (
    DPKG_BASE
    + b"""
Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.11-1~deb12u2
"""
)
APK = b"""C:Q1abc=
P:musl
V:1.2.4-r2
A:x86_64
L:MIT

P:busybox
V:1.36.1-r15
A:x86_64
L:GPL-2.0-only
"""
SITE = "usr/local/lib/python3.11/site-packages"
OLD = "usr/lib/python3/dist-packages/olddist-1.0.dist-info"
RECORD = b"requests/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n"


def _tar(entries: list[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content, link in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if link is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = link
                tar.addfile(info)
            else:
                data = content or b""
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def base_layer(*extra: Entry) -> bytes:
    return _tar(
        [
            ("etc/os-release", b'ID=debian\nVERSION_ID="12"\n', None),
            ("var/lib/dpkg/status", DPKG_BASE, None),
            ("lib/apk/db/installed", APK, None),
            (f"{OLD}/METADATA", b"Metadata-Version: 2.1\nName: olddist\nVersion: 1.0\n", None),
            (
                f"{SITE}/requests-2.31.0.dist-info/METADATA",
                b"Name: requests\nVersion: 2.31.0\nLicense: Apache-2.0\n",
                None,
            ),
            (f"{SITE}/requests-2.31.0.dist-info/RECORD", RECORD, None),
            ("usr/bin/python3", None, "/usr/bin/python3.11"),  # absolute links stay inside the image root
            *extra,
        ]
    )


def upper_layer(*extra: Entry) -> bytes:
    return _tar(
        [
            ("var/lib/dpkg/status", DPKG_UPPER, None),
            ("usr/lib/python3/dist-packages/.wh.olddist-1.0.dist-info", b"", None),
            *extra,
        ]
    )


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _config(layers: list[bytes]) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [_sha(x) for x in layers]},
        }
    ).encode()


def docker_save(path: Path, layers: list[bytes] | None = None) -> Path:
    """A legacy ``docker save`` tarball: manifest.json, <id>.json config, <id>/layer.tar."""
    layers = layers if layers is not None else [base_layer(), upper_layer()]
    config = _config(layers)
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    names = [f"{hashlib.sha256(x).hexdigest()}/layer.tar" for x in layers]
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["demo:1"], "Layers": names}]).encode()
    path.write_bytes(
        _tar(
            [("manifest.json", manifest, None), (config_name, config, None)]
            + [(n, x, None) for n, x in zip(names, layers, strict=True)]
        )
    )
    return path


GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def oci_layout(
    root: Path,
    layers: list[bytes] | None = None,
    *,
    blobs_of_layers: list[bytes] | None = None,
    media_type: str = GZIP_LAYER,
    ref: str = "demo:oci",
) -> Path:
    """An OCI image layout folder whose layers are ``layers`` (uncompressed tars: the config's diff ids)
    stored as ``blobs_of_layers`` under ``media_type`` (default: the layers gzip-compressed)."""
    layers = layers if layers is not None else [base_layer(), upper_layer()]
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = _sha(data)
        (blobs / digest.removeprefix("sha256:")).write_bytes(data)
        return digest

    compressed = (
        blobs_of_layers if blobs_of_layers is not None else [gzip.compress(x, mtime=0) for x in layers]
    )
    config = _config(layers)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put(config),
                "size": len(config),
            },
            "layers": [{"mediaType": media_type, "digest": put(c), "size": len(c)} for c in compressed],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": ref},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return root


def _as_tar(root: Path, out: Path) -> Path:
    with tarfile.open(out, "w") as tar:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                tar.add(path, path.relative_to(root).as_posix())
    return out


def _valid(document: dict[str, object]) -> None:
    from cyclonedx.schema import SchemaVersion

    error = cyclonedx.JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))
    assert error is None, error


def _by_name(document: dict[str, object]) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in document["components"]}  # type: ignore[attr-defined,index]


def _props(component: dict[str, object]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component["properties"]}  # type: ignore[attr-defined,index]


def _check_bom(path: Path, name: str) -> None:
    document, subjects = image_bom(path)
    _valid(document)
    image = read_image(path)
    assert subjects[0].digests[0].hex == image.config_digest.removeprefix("sha256:")
    assert document["metadata"]["component"]["name"] == name  # type: ignore[index]
    components = _by_name(document)
    assert components["libc6"]["purl"] == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
    assert components["musl"]["purl"] == "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=debian-12"
    assert components["requests"]["purl"] == "pkg:pypi/requests@2.31.0"
    assert components["requests"]["hashes"] == [
        {"alg": "SHA-256", "content": hashlib.sha256(RECORD).hexdigest()}
    ]
    assert "oldtool" not in components  # deinstalled
    assert "olddist" not in components  # whited out by the upper layer
    base, upper = image.layers
    assert _props(components["libc6"])["bastion:layer"] == base.digest  # unchanged: still the base layer's
    assert _props(components["openssl"])["bastion:layer"] == upper.digest
    assert _props(components["requests"])["bastion:layer"] == base.digest
    assert image_bom(path)[0] == document  # reproducible


def test_docker_save_tarball_bom(tmp_path: Path) -> None:
    path = docker_save(tmp_path / "demo.tar")
    _check_bom(path, "demo:1")
    assert read_image(path).layout == "docker-save"


def test_oci_layout_folder_and_tar_give_the_same_image(tmp_path: Path) -> None:
    root = oci_layout(tmp_path / "layout")
    _check_bom(root, "demo:oci")
    folder = read_image(root)
    assert all(layer.compressed for layer in folder.layers)
    tarred = read_image(_as_tar(root, tmp_path / "layout.tar"))
    assert (tarred.config_digest, tarred.manifest_digest) == (folder.config_digest, folder.manifest_digest)
    # the manifest digest is the index descriptor's, as a registry would name it
    index = json.loads((root / "index.json").read_text())
    assert folder.manifest_digest == index["manifests"][0]["digest"]


def test_opaque_whiteout_hides_a_whole_lower_folder(tmp_path: Path) -> None:
    upper = _tar([(f"{SITE}/.wh..wh..opq", b"", None)])
    document, _ = image_bom(docker_save(tmp_path / "i.tar", [base_layer(), upper]))
    assert "requests" not in _by_name(document)
    assert "libc6" in _by_name(document)


def _signed_world(tmp_path: Path) -> tuple[Keyring, object]:
    ring = Keyring(tmp_path / "home")
    return ring, make_key(ring)[1]


def test_attest_then_verify_an_oci_image_and_name_the_tampered_layer(tmp_path: Path) -> None:
    ring, signer = _signed_world(tmp_path)
    root = oci_layout(tmp_path / "layout")
    target = parse_target(f"image:{root}")
    (attestation,) = attest(target, signer)  # type: ignore[arg-type]
    subjects = attestation.statement.subjects
    assert [s.name for s in subjects] == ["demo:oci", "demo:oci#manifest"]
    assert verify(target, [attestation.bundle], ring).status is Status.VERIFIED

    blob_dir = root / "blobs" / "sha256"
    layer = read_image(root).layers[1]
    blob = blob_dir / layer.path.rsplit("/", 1)[1]
    blob.write_bytes(gzip.compress(upper_layer(("etc/evil", b"x", None)), mtime=0))
    result = verify(target, [attestation.bundle], ring)
    assert result.status is Status.FAILED
    assert (Cause.CHANGED, layer.path) in {(p.cause, p.file) for p in result.problems}
    assert any("layer 1" in p.detail for p in result.problems)
    with pytest.raises(TargetError, match="layer 1"):
        attest(target, signer)  # type: ignore[arg-type]
    with pytest.raises(TargetError, match="layer 1"):
        bom_for_target(target)


def test_docker_save_layer_tampering_is_caught_by_the_diff_ids(tmp_path: Path) -> None:
    ring, signer = _signed_world(tmp_path)
    path = docker_save(tmp_path / "demo.tar")
    target = parse_target(f"image:{path}")
    assert target.kind is TargetKind.IMAGE
    (attestation,) = attest(target, signer)  # type: ignore[arg-type]
    assert verify(target, [attestation.bundle], ring).status is Status.VERIFIED
    # swap the upper layer's bytes, keep the manifest and config: the config's diff_ids catch it
    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    layer_name = json.loads(members["manifest.json"])[0]["Layers"][1]
    members[layer_name] = upper_layer(("etc/evil", b"x", None))
    path.write_bytes(_tar([(n, d, None) for n, d in members.items()]))
    result = verify(target, [attestation.bundle], ring)
    assert result.status is Status.FAILED
    assert (Cause.CHANGED, layer_name) in {(p.cause, p.file) for p in result.problems}


def test_a_rebuilt_image_with_a_new_id_fails_as_another_subject(tmp_path: Path) -> None:
    ring, signer = _signed_world(tmp_path)
    path = docker_save(tmp_path / "demo.tar")
    (attestation,) = attest(parse_target(f"image:{path}"), signer)  # type: ignore[arg-type]
    docker_save(tmp_path / "other.tar", [base_layer(), upper_layer(("etc/motd", b"hi", None))])
    result = verify(parse_target(f"image:{tmp_path / 'other.tar'}"), [attestation.bundle], ring)
    causes = {p.cause for p in result.problems}
    assert result.status is Status.FAILED
    assert {Cause.SUBJECT_MISMATCH, Cause.CHANGED} <= causes  # new image id, and layer 1 named


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (("../../etc/passwd", b"x", None), "climbs out"),
        (("/etc/passwd", b"x", None), "absolute"),
        (("usr/lib/evil", None, "../../../../etc/shadow"), "leaves the layer"),
    ],
)
def test_hostile_layer_members_are_refused(tmp_path: Path, entry: Entry, message: str) -> None:
    path = docker_save(tmp_path / "i.tar", [base_layer(entry)])
    with pytest.raises(TargetError, match=message):
        image_bom(path)


def test_oversize_captured_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_module, "MAX_CAPTURED", 64)
    with pytest.raises(TargetError, match="byte limit"):
        image_bom(docker_save(tmp_path / "i.tar"))


def test_hostile_outer_archives_are_refused(tmp_path: Path) -> None:
    escaping = tmp_path / "escape.tar"
    escaping.write_bytes(_tar([("../manifest.json", b"[]", None)]))
    with pytest.raises(TargetError, match="climbs out"):
        read_image(escaping)
    linked = tmp_path / "linked.tar"
    linked.write_bytes(_tar([("manifest.json", None, "/etc/hostname")]))
    with pytest.raises(TargetError, match="outside the archive"):
        read_image(linked)
    root = oci_layout(tmp_path / "layout")
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    (root / "index.json").unlink()
    (root / "index.json").symlink_to(outside)
    with pytest.raises(TargetError, match="leaving the layout"):
        read_image(root)
    (tmp_path / "neither.tar").write_bytes(_tar([("hello", b"x", None)]))
    with pytest.raises(TargetError, match="neither"):
        read_image(tmp_path / "neither.tar")
    big = tmp_path / "big.tar"
    big.write_bytes(_tar([("manifest.json", b" " * (image_module.MAX_METADATA + 1), None)]))
    with pytest.raises(TargetError, match="larger than"):
        read_image(big)


def test_capture_selects_only_package_databases() -> None:
    assert wanted("var/lib/dpkg/status") and wanted("lib/apk/db/installed")
    assert wanted("var/lib/dpkg/status.d/base")
    assert wanted("usr/lib/python3.12/site-packages/x-1.dist-info/RECORD")
    assert not wanted("usr/lib/python3.12/site-packages/x/__init__.py")
    assert not wanted("var/lib/dpkg/status-old")


def test_bom_and_attest_commands_on_an_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "s3cret-passphrase")
    monkeypatch.delenv("BASTION_DATABASE_URL", raising=False)
    for name in ("keys", "attest", "verify", "bom"):
        monkeypatch.setitem(cli_main.COMMANDS, name, (f"bastion.cli.{name}", name, name))

    def run(*args: str) -> int:
        try:
            cli_main.main(list(args))
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    path = docker_save(tmp_path / "demo.tar")
    assert run("bom", f"image:{path}", "-o", str(tmp_path / "bom.json")) == 0
    _valid(json.loads((tmp_path / "bom.json").read_text()))
    assert run("keys", "generate", "--name", "ci") == 0
    bundle = tmp_path / "demo.sigstore.json"
    assert run("attest", f"image:{path}", "--key", "ci", "-o", str(bundle)) == 0
    assert run("verify", f"image:{path}", "--bundle", str(bundle)) == 0
    assert run("verify", f"image:{path}") == 0  # found in the evidence store by image id
    capsys.readouterr()

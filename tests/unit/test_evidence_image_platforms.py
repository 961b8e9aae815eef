"""Multi-platform image indexes: one image chosen by --platform, its subjects naming the index."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import UsageError
from bastion.evidence.attest import attest
from bastion.evidence.errors import TargetError
from bastion.evidence.image import Platform, choose_platform, read_image
from bastion.evidence.imagebom import image_bom
from bastion.evidence.keys import Keyring
from bastion.evidence.targets import parse_target
from bastion.evidence.verify import Cause, Status, verify
from tests.unit.conftest import Run
from tests.unit.evidence_helpers import make_key
from tests.unit.test_evidence_image import _as_tar, _by_name, _props, _sha, _tar, _valid, docker_save

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _layer(arch: str) -> bytes:
    status = f"Package: libc6\nStatus: install ok installed\nArchitecture: {arch}\nVersion: 2.36\n"
    return _tar(
        [
            ("etc/os-release", b"ID=debian\nVERSION_ID=12\n", None),
            ("var/lib/dpkg/status", status.encode(), None),
        ]
    )


class Layout:
    """An OCI layout folder written blob by blob, with correct digests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def put(self, data: bytes) -> str:
        digest = _sha(data)
        (self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
        return digest

    def image(
        self, os_name: str, arch: str, variant: str | None = None, *, config_variant: bool = True
    ) -> dict[str, Any]:
        """Write one image; return its manifest descriptor, platform included."""
        layer = _layer(arch)
        blob = gzip.compress(layer, mtime=0)
        config: dict[str, Any] = {"os": os_name, "architecture": arch, "rootfs": {"type": "layers"}}
        config["rootfs"]["diff_ids"] = [_sha(layer)]
        if variant and config_variant:
            config["variant"] = variant
        config_bytes = json.dumps(config).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": self.put(config_bytes),
                    "size": len(config_bytes),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": self.put(blob),
                        "size": len(blob),
                    }
                ],
            }
        ).encode()
        platform = {"os": os_name, "architecture": arch} | ({"variant": variant} if variant else {})
        return {
            "mediaType": MANIFEST,
            "digest": self.put(manifest),
            "size": len(manifest),
            "platform": platform,
        }

    def attestation_manifest(self) -> dict[str, Any]:
        """What buildx adds beside each image: a manifest for platform unknown/unknown."""
        data = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST, "config": {}, "layers": []}).encode()
        return {
            "mediaType": MANIFEST,
            "digest": self.put(data),
            "size": len(data),
            "platform": {"os": "unknown", "architecture": "unknown"},
        }

    def index(
        self, descriptors: list[dict[str, Any]], *, nested: bool, name: str = "demo:multi"
    ) -> str | None:
        """index.json listing ``descriptors`` directly, or through one nested index blob (its digest)."""
        annotations = {"org.opencontainers.image.ref.name": name}
        if not nested:
            listed = [d | {"annotations": annotations} for d in descriptors]
            (self.root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": listed}))
            return None
        inner = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": descriptors}).encode()
        digest = self.put(inner)
        top = {"mediaType": INDEX, "digest": digest, "size": len(inner), "annotations": annotations}
        (self.root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
        return digest


def two_platforms(root: Path, *, nested: bool = True) -> tuple[Path, dict[str, dict[str, Any]], str | None]:
    layout = Layout(root)
    amd64 = layout.image("linux", "amd64")
    arm64 = layout.image("linux", "arm64", "v8")
    index = layout.index([amd64, layout.attestation_manifest(), arm64], nested=nested)
    return root, {"amd64": amd64, "arm64": arm64}, index


def test_without_a_platform_the_error_lists_the_platforms(tmp_path: Path) -> None:
    root, _, _ = two_platforms(tmp_path / "multi")
    with pytest.raises(TargetError, match=r"2 images, for platforms: linux/amd64, linux/arm64/v8") as caught:
        read_image(root)
    assert "--platform" in (caught.value.hint or "")
    with pytest.raises(TargetError, match="linux/amd64, linux/arm64/v8"):
        image_bom(root)


@pytest.mark.parametrize("nested", [True, False])
def test_the_chosen_platform_is_read_and_named_in_the_subjects(tmp_path: Path, nested: bool) -> None:
    root, descriptors, index = two_platforms(tmp_path / "multi", nested=nested)
    if index is None:  # listed in index.json itself: that file is the index
        index = _sha((root / "index.json").read_bytes())
    for asked, arch in (("linux/arm64", "arm64"), ("linux/arm64/v8", "arm64"), ("linux/amd64", "amd64")):
        image = read_image(root, platform=Platform.parse(asked))
        assert image.manifest_digest == descriptors[arch]["digest"]
        assert image.config["architecture"] == arch
        assert image.index_digest == index
        config_subject, manifest_subject = image.subjects
        assert manifest_subject.digests[0].hex == descriptors[arch]["digest"].removeprefix("sha256:")
        assert manifest_subject.name == f"demo:multi#manifest?platform={image.platform}&index={index}"
        assert config_subject.name == "demo:multi"
    document, _ = image_bom(root, Platform.parse("linux/arm64"))
    _valid(document)
    properties = _props(document["metadata"]["component"])  # type: ignore[arg-type,index]
    assert properties["bastion:platform"] == "linux/arm64/v8"
    assert properties["bastion:index-digest"] == index
    assert properties["bastion:manifest-digest"] == descriptors["arm64"]["digest"]
    assert "arch=arm64" in _by_name(document)["libc6"]["purl"]  # type: ignore[operator]
    # the tarred layout reads the same
    tarred = read_image(_as_tar(root, tmp_path / "multi.tar"), platform=Platform.parse("linux/arm64"))
    assert tarred.subjects == read_image(root, platform=Platform.parse("linux/arm64")).subjects


def test_a_platform_the_index_lacks_is_refused_with_the_list(tmp_path: Path) -> None:
    root, _, _ = two_platforms(tmp_path / "multi")
    with pytest.raises(
        TargetError, match=r"no image for platform linux/s390x; it offers: linux/amd64, linux/arm64/v8"
    ):
        read_image(root, platform=Platform.parse("linux/s390x"))
    with pytest.raises(TargetError, match="no image for platform linux/arm64/v7"):
        read_image(root, platform=Platform.parse("linux/arm64/v7"))


def test_two_images_for_one_platform_need_the_variant(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "arm")
    layout.index([layout.image("linux", "arm", "v6"), layout.image("linux", "arm", "v7")], nested=True)
    with pytest.raises(TargetError, match="2 images for platform linux/arm"):
        read_image(layout.root, platform=Platform.parse("linux/arm"))
    assert read_image(layout.root, platform=Platform.parse("linux/arm/v7")).platform == "linux/arm/v7"


def test_a_config_without_a_variant_trusts_the_index_for_it(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "arm")
    v7 = layout.image("linux", "arm", "v7", config_variant=False)
    layout.index([layout.image("linux", "amd64"), v7], nested=True)
    image = read_image(layout.root, platform=Platform.parse("linux/arm/v7"))
    assert (image.manifest_digest, image.platform) == (v7["digest"], "linux/arm/v7")


def test_single_platform_layouts_are_read_as_before_and_checked_against_a_platform(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "one")
    only = layout.image("linux", "amd64")
    layout.index([only, layout.attestation_manifest()], nested=True)
    image = read_image(layout.root)
    assert image.index_digest is None  # one image: nothing to choose, subjects as before
    assert [s.name for s in image.subjects] == ["demo:multi", "demo:multi#manifest"]
    assert read_image(layout.root, platform=Platform.parse("linux/amd64")).manifest_digest == only["digest"]
    with pytest.raises(TargetError, match="no image for platform linux/arm64"):
        read_image(layout.root, platform=Platform.parse("linux/arm64"))
    # a docker save tarball has no index: its config says what it is for
    saved = docker_save(tmp_path / "demo.tar")
    assert read_image(saved, platform=Platform.parse("linux/amd64")).layout == "docker-save"
    with pytest.raises(TargetError, match="an image for linux/amd64, not linux/arm64"):
        read_image(saved, platform=Platform.parse("linux/arm64"))


def test_one_image_under_two_tags_is_one_image(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "tags")
    only = layout.image("linux", "amd64")
    tagged = [
        only | {"annotations": {"org.opencontainers.image.ref.name": t}} for t in ("demo:1", "demo:latest")
    ]
    (layout.root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": tagged}))
    image = read_image(layout.root)
    assert (image.name, image.manifest_digest, image.index_digest) == ("demo:1", only["digest"], None)


def test_a_tampered_nested_index_is_a_mismatch(tmp_path: Path) -> None:
    root, _, index = two_platforms(tmp_path / "multi")
    assert index is not None
    blob = root / "blobs" / "sha256" / index.removeprefix("sha256:")
    blob.write_bytes(blob.read_bytes() + b" ")
    image = read_image(root, platform=Platform.parse("linux/amd64"))
    assert [m.what for m in image.mismatches] == ["index"]
    with pytest.raises(TargetError, match="index"):
        image_bom(root, Platform.parse("linux/amd64"))


def test_platform_text_is_checked() -> None:
    assert str(Platform.parse("linux/arm/v7")) == "linux/arm/v7"
    assert Platform.parse("linux/arm64").matches(Platform("linux", "arm64", "v8"))
    assert Platform.parse("linux/arm64/v8").matches(Platform("linux", "arm64"))
    assert not Platform.parse("linux/arm/v7").matches(Platform("linux", "arm", "v6"))
    for bad in ("linux", "linux/", "/amd64", "a/b/c/d", ""):
        with pytest.raises(UsageError):
            Platform.parse(bad)


def test_attest_and_verify_one_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ring = Keyring(tmp_path / "home")
    signer = make_key(ring)[1]
    root, descriptors, _ = two_platforms(tmp_path / "multi")
    target = parse_target(f"image:{root}")
    with choose_platform(Platform.parse("linux/arm64")):
        (attestation,) = attest(target, signer)
        assert verify(target, [attestation.bundle], ring).status is Status.VERIFIED
    manifest_subject = attestation.statement.subjects[1]
    assert manifest_subject.digests[0].hex == descriptors["arm64"]["digest"].removeprefix("sha256:")
    # the same bundle against the other platform's image: another subject
    monkeypatch.setenv("BASTION_IMAGE_PLATFORM", "linux/amd64")
    result = verify(target, [attestation.bundle], ring)
    assert result.status is Status.FAILED
    assert Cause.SUBJECT_MISMATCH in {p.cause for p in result.problems}
    monkeypatch.setenv("BASTION_IMAGE_PLATFORM", "linux/arm64")
    assert verify(target, [attestation.bundle], ring).status is Status.VERIFIED
    monkeypatch.delenv("BASTION_IMAGE_PLATFORM")
    result = verify(target, [attestation.bundle], ring)  # cannot tell which image: could not decide
    assert result.status is not Status.VERIFIED
    assert any("linux/amd64, linux/arm64/v8" in p.detail for p in result.problems)


def test_platform_option_on_the_commands(
    tmp_path: Path, bastion: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, descriptors, _ = two_platforms(tmp_path / "multi")
    tarball = _as_tar(root, tmp_path / "multi.tar")
    code, _, err = bastion("bom", f"image:{tarball}")
    assert code == 2
    assert "linux/amd64, linux/arm64/v8" in err
    out = tmp_path / "bom.json"
    assert bastion("bom", f"image:{tarball}", "--platform", "linux/arm64", "-o", str(out))[0] == 0
    assert descriptors["arm64"]["digest"] in out.read_text()
    assert bastion("keys", "generate", "--name", "ci")[0] == 0
    bundle = tmp_path / "arm64.sigstore.json"
    code, _, err = bastion(
        "attest", f"image:{tarball}", "--platform", "linux/arm64", "--key", "ci", "-o", str(bundle)
    )
    assert code == 0, err
    verify = ("verify", f"image:{tarball}", "--bundle", str(bundle))
    assert bastion(*verify, "--platform", "linux/arm64")[0] == 0
    assert bastion(*verify, "--platform", "linux/amd64")[0] == 1  # another image than the one signed
    monkeypatch.setenv("BASTION_IMAGE_PLATFORM", "linux/arm64")
    assert bastion(*verify)[0] == 0
    monkeypatch.delenv("BASTION_IMAGE_PLATFORM")
    # --platform is for image: targets, and must look like os/arch
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.bin").write_bytes(b"x")
    code, _, err = bastion("bom", f"dir:{tmp_path / 'model'}", "--platform", "linux/amd64")
    assert code == 2
    assert "--platform applies to image: targets" in err
    code, _, err = bastion("attest", f"image:{tarball}", "--platform", "amd64", "--key", "ci")
    assert code == 2
    assert "os/arch" in err

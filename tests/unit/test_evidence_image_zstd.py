"""zstd image layers: OCI layouts built with zstandard, read streaming; broken ones refused."""

from __future__ import annotations

import hashlib
import json
import sys
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from bastion.evidence.attest import attest
from bastion.evidence.errors import TargetError
from bastion.evidence.image import read_image
from bastion.evidence.imagebom import image_bom
from bastion.evidence.keys import Keyring
from bastion.evidence.targets import parse_target
from bastion.evidence.verify import Cause, Status, verify
from tests.unit.evidence_helpers import make_key
from tests.unit.test_evidence_image import (
    RECORD,
    _as_tar,
    _by_name,
    _config,
    _props,
    _sha,
    _tar,
    _valid,
    base_layer,
    oci_layout,
    upper_layer,
)

zstandard = pytest.importorskip("zstandard")

ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd"


def zstd(data: bytes, *, checksum: bool = True) -> bytes:
    return bytes(zstandard.ZstdCompressor(level=3, write_checksum=checksum).compress(data))


def zstd_layout(root: Path, blobs_of_layers: list[bytes], diff_layers: list[bytes]) -> Path:
    """An OCI layout whose layer blobs are ``blobs_of_layers`` (already compressed) as ``+zstd``."""
    return oci_layout(
        root, diff_layers, blobs_of_layers=blobs_of_layers, media_type=ZSTD_LAYER, ref="demo:zstd"
    )


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_zstd_layers_give_the_same_bom_as_gzip_ones(tmp_path: Path) -> None:
    layers = [base_layer(), upper_layer()]
    root = zstd_layout(tmp_path / "layout", [zstd(x) for x in layers], layers)
    image = read_image(root)
    assert [layer.compression for layer in image.layers] == ["zstd", "zstd"]
    assert all(layer.compressed for layer in image.layers)
    assert [layer.diff_id for layer in image.layers] == [_sha(x) for x in layers]
    assert not image.mismatches
    document, subjects = image_bom(root)
    _valid(document)
    components = _by_name(document)
    assert components["libc6"]["purl"] == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
    assert components["requests"]["hashes"] == [
        {"alg": "SHA-256", "content": hashlib.sha256(RECORD).hexdigest()}
    ]
    assert "olddist" not in components  # the zstd upper layer's whiteout applied
    assert _props(components["openssl"])["bastion:layer"] == image.layers[1].digest
    assert subjects[0].name == "demo:zstd"
    # the same layout as a tar reads the same
    tarred = read_image(_as_tar(root, tmp_path / "layout.tar"))
    assert (tarred.config_digest, tarred.manifest_digest) == (image.config_digest, image.manifest_digest)


def test_zstd_is_sniffed_from_the_bytes_across_frames_and_skippable_frames(tmp_path: Path) -> None:
    """Several frames and a skippable frame (as zstd:chunked writes) decode as one layer."""
    layer = base_layer()
    half = len(layer) // 2
    skippable = b"\x5e\x2a\x4d\x18" + (6).to_bytes(4, "little") + b"chunks"
    blob = zstd(layer[:half]) + zstd(layer[half:]) + skippable
    root = zstd_layout(tmp_path / "layout", [blob], [layer])
    (only,) = read_image(root).layers
    assert (only.compression, only.diff_id) == ("zstd", _sha(layer))
    # a layout that starts with the skippable frame is still recognised as zstd
    root2 = zstd_layout(tmp_path / "layout2", [skippable + zstd(layer)], [layer])
    assert read_image(root2).layers[0].diff_id == _sha(layer)


def test_a_large_zstd_layer_is_read_in_bounded_memory(tmp_path: Path) -> None:
    big = 64 << 20
    layer = _tar([("var/lib/big.bin", bytes(big), None), ("var/lib/dpkg/status", b"Package: a\n", None)])
    blob = zstd(layer)
    del layer
    root = zstd_layout(tmp_path / "layout", [blob], [_tar([])])  # the diff id is checked, not trusted
    tracemalloc.start()
    try:
        image = read_image(root)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 << 20, f"peak {peak} bytes for a {big} byte layer"
    assert image.layers[0].diff_id is not None
    assert len(image.mismatches) == 1  # the config's diff id was of another tar: named, not trusted
    assert image.mismatches[0].what == "layer 0 (uncompressed)"


def test_a_truncated_zstd_layer_is_refused_and_verify_names_it(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "home")
    signer = make_key(ring)[1]
    layers = [base_layer(), upper_layer()]
    blobs = [zstd(x) for x in layers]
    root = zstd_layout(tmp_path / "layout", blobs, layers)
    target = parse_target(f"image:{root}")
    (attestation,) = attest(target, signer)
    assert verify(target, [attestation.bundle], ring).status is Status.VERIFIED

    layer = read_image(root).layers[1]
    blob_file = root / layer.path
    blob_file.write_bytes(blobs[1][: len(blobs[1]) // 2])
    before = _snapshot(root)
    with pytest.raises(TargetError, match="layer 1"):
        image_bom(root)
    with pytest.raises(TargetError, match="layer 1"):
        attest(target, signer)
    result = verify(target, [attestation.bundle], ring)
    assert result.status is Status.FAILED
    assert (Cause.CHANGED, layer.path) in {(p.cause, p.file) for p in result.problems}
    assert _snapshot(root) == before  # nothing written, nothing lost


def test_a_truncated_zstd_layer_without_a_blob_digest_is_caught_by_its_content(tmp_path: Path) -> None:
    """A docker-save layer has no blob digest: the broken stream itself (or the diff id) must catch it."""
    layer = base_layer()
    blob = zstd(layer)
    config = _config([layer])
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["z:1"], "Layers": ["l/layer.tar"]}]).encode()
    path = tmp_path / "z.tar"
    for cut in (len(blob) // 2, len(blob) - 2):
        entries = [
            ("manifest.json", manifest, None),
            (config_name, config, None),
            ("l/layer.tar", blob[:cut], None),
        ]
        path.write_bytes(_tar(entries))
        with pytest.raises(TargetError, match="layer 0"):
            image_bom(path)


def test_a_corrupted_zstd_layer_is_a_clear_error(tmp_path: Path) -> None:
    layer = base_layer()
    blob = bytearray(zstd(layer))
    for i in range(len(blob) // 3, len(blob) // 3 + 16):
        blob[i] ^= 0xA5
    config = _config([layer])
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps([{"Config": config_name, "Layers": ["l/layer.tar"]}]).encode()
    path = tmp_path / "z.tar"
    path.write_bytes(
        _tar(
            [
                ("manifest.json", manifest, None),
                (config_name, config, None),
                ("l/layer.tar", bytes(blob), None),
            ]
        )
    )
    with pytest.raises(TargetError, match="layer 0"):
        image_bom(path)


def test_without_zstandard_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layers = [base_layer()]
    root = zstd_layout(tmp_path / "layout", [zstd(x) for x in layers], layers)
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import zstandard now raises ImportError
    with pytest.raises(TargetError, match="zstandard") as caught:
        read_image(root)
    assert "bastion-mlsecops[zstd]" in (caught.value.hint or "")


def test_zstd_attest_and_verify_through_the_cli(tmp_path: Path, bastion: object) -> None:
    run = bastion
    layers = [base_layer(), upper_layer()]
    root = zstd_layout(tmp_path / "layout", [zstd(x) for x in layers], layers)
    tarball = _as_tar(root, tmp_path / "z.tar")
    assert run("keys", "generate", "--name", "ci")[0] == 0  # type: ignore[operator]
    bundle = tmp_path / "z.sigstore.json"
    assert run("attest", f"image:{tarball}", "--key", "ci", "-o", str(bundle))[0] == 0  # type: ignore[operator]
    assert run("verify", f"image:{tarball}", "--bundle", str(bundle))[0] == 0  # type: ignore[operator]
    with tarfile.open(tarball) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    layer_path = read_image(root).layers[0].path
    members[layer_path] = members[layer_path][:-100]
    tarball.write_bytes(_tar([(n, d, None) for n, d in members.items()]))
    code, out, _ = run("verify", f"image:{tarball}", "--bundle", str(bundle))  # type: ignore[operator]
    assert code == 1
    assert "layer 0" in out
    out_file = tmp_path / "again.sigstore.json"
    code, _, err = run("attest", f"image:{tarball}", "--key", "ci", "-o", str(out_file))  # type: ignore[operator]
    assert code == 2
    assert "layer 0" in err
    assert not out_file.exists()

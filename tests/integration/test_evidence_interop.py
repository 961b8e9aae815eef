"""Interop with OpenSSF model-signing (the `model_signing` package), in both directions, P-256 keys."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bastion.evidence.bundle import read_bundles
from bastion.evidence.hashing import HashSpec, Method
from bastion.evidence.keys import KeyAlgorithm, Keyring, generate_private_key, public_pem
from bastion.evidence.targets import parse_target
from bastion.evidence.verify import Cause, Status, verify
from tests.unit.evidence_helpers import make_key, make_model, sign

model_signing = pytest.importorskip("model_signing")


_HAS_BLAKE3 = importlib.util.find_spec("blake3") is not None


@pytest.mark.parametrize(
    "spec",
    [
        HashSpec(),
        HashSpec(Method.SHARDS, shard_size=4096),
        pytest.param(
            HashSpec(algorithm="blake3"),
            marks=pytest.mark.skipif(not _HAS_BLAKE3, reason="the blake3 extra is not installed"),
        ),
    ],
    ids=["files", "shards", "files-blake3"],
)
def test_model_signing_verifies_bastion_bundles(tmp_path: Path, spec: HashSpec) -> None:
    ring = Keyring(tmp_path / "home")
    info, signer = make_key(ring)
    model = make_model(tmp_path / "model")
    (tmp_path / "key.pub").write_text(info.public_pem)
    (tmp_path / "b.json").write_bytes(sign(model, signer, spec).to_json())
    config = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=tmp_path / "key.pub")
    config.verify(model, tmp_path / "b.json")  # raises on any mismatch
    (model / "a.b").write_bytes(b"tampered")
    config = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=tmp_path / "key.pub")
    with pytest.raises(ValueError, match=r"a\.b"):
        config.verify(model, tmp_path / "b.json")


def test_model_signing_cli_default_verifies_bastion_files_bundle(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from model_signing._cli import main as ms_cli

    ring = Keyring(tmp_path / "home")
    info, signer = make_key(ring)
    model = make_model(tmp_path / "model")
    (tmp_path / "key.pub").write_text(info.public_pem)
    (tmp_path / "b.json").write_bytes(sign(model, signer).to_json())
    args = [
        "verify",
        "key",
        "--signature",
        str(tmp_path / "b.json"),
        "--public_key",
        str(tmp_path / "key.pub"),
        str(model),
    ]
    result = CliRunner().invoke(ms_cli, args)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("shards", [False, True], ids=["files", "shards"])
def test_bastion_verifies_model_signing_bundles(tmp_path: Path, shards: bool) -> None:
    from cryptography.hazmat.primitives import serialization

    key = generate_private_key(KeyAlgorithm.ECDSA_P256)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "key.pem").write_bytes(pem)
    model = make_model(tmp_path / "model")
    hashing = model_signing.hashing.Config()
    if shards:
        hashing = hashing.use_shard_serialization(shard_size=4096)
    config = model_signing.signing.Config().use_elliptic_key_signer(private_key=tmp_path / "key.pem")
    config.set_hashing_config(hashing).sign(model, tmp_path / "ms.json")

    ring = Keyring(tmp_path / "home")
    ring.import_public("openssf", public_pem(key))
    target = parse_target(f"dir:{model}")
    result = verify(target, read_bundles(tmp_path / "ms.json"), ring)
    assert result.status is Status.VERIFIED, result.problems
    (model / "sub" / "tokenizer.json").write_text("{}")
    result = verify(target, read_bundles(tmp_path / "ms.json"), ring)
    assert {(p.cause, p.file) for p in result.problems} == {(Cause.CHANGED, "sub/tokenizer.json")}
    assert (
        verify(target, read_bundles(tmp_path / "ms.json"), Keyring(tmp_path / "empty")).status
        is Status.FAILED
    )

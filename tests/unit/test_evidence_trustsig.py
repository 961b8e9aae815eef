"""The trust file signed by a pinned root key: good, unsigned, tampered, wrong root, bad signature."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bastion.evidence.errors import TrustFileError
from bastion.evidence.keys import KeyAlgorithm, Keyring, KeyStatus, generate_private_key
from bastion.evidence.signers import LocalKeySigner, Signer
from bastion.evidence.targets import parse_target
from bastion.evidence.verify import Cause, verify
from tests.unit.evidence_helpers import make_key, make_model, sign

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def _no_pin_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # set, then delete: monkeypatch then restores the variable's absence after the test, even though
    # `verify --trust-root` sets it process-wide
    monkeypatch.setenv("BASTION_TRUST_ROOT", "")
    monkeypatch.delenv("BASTION_TRUST_ROOT")


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _signed_home(home: Path) -> tuple[Signer, Signer]:
    """A keyring with an artifact key 'dev' and a trust-only root key, signed by the root."""
    ring = Keyring(home)
    _, dev = make_key(ring, "dev")
    _, root = make_key(ring, "root", scopes=("trust",))
    ring.sign_trust(root)
    return dev, root


def test_a_signed_trust_file_verifies_against_its_pinned_root(home: Path) -> None:
    _, root = _signed_home(home)
    ring = Keyring(home, trust_root=root.key_id)
    assert [e.name for e in ring.entries()] == ["dev", "root"]
    signature = ring.trust_signature()
    assert signature is not None and signature.root_key_id == root.key_id and signature.pinned


def test_the_pin_comes_from_the_environment_too(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, root = _signed_home(home)
    monkeypatch.setenv("BASTION_TRUST_ROOT", "sha256:" + root.key_id.upper())
    assert Keyring(home).trust_root == root.key_id


def test_re_indenting_the_file_does_not_break_the_signature(home: Path) -> None:
    _, root = _signed_home(home)
    ring = Keyring(home, trust_root=root.key_id)
    ring.trust_path.write_text(json.dumps(json.loads(ring.trust_path.read_text()), indent=7))
    assert len(ring.entries()) == 2


def test_an_unsigned_trust_file_is_refused_when_a_root_is_pinned(home: Path) -> None:
    ring = Keyring(home)
    make_key(ring, "dev")
    assert ring.trust_signature() is None  # no pin: accepted, as before
    pinned = Keyring(home, trust_root="ab" * 32)
    with pytest.raises(TrustFileError, match="not signed, and a signed one is required"):
        pinned.entries()


@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "unpinned"])
def test_a_key_slipped_into_a_signed_trust_file_is_refused(home: Path, pinned: bool) -> None:
    _, root = _signed_home(home)
    data = json.loads((home / "trust.json").read_text())
    attacker = Keyring(home.parent / "attacker")
    info, _ = make_key(attacker, "dev")
    data["keys"].append(info.to_dict())
    (home / "trust.json").write_text(json.dumps(data))
    ring = Keyring(home, trust_root=root.key_id if pinned else None)
    with pytest.raises(TrustFileError, match="changed after it was signed"):
        ring.entries()


def test_re_enabling_a_disabled_key_by_hand_is_refused(home: Path) -> None:
    ring = Keyring(home)
    _, root = make_key(ring, "root", scopes=("trust",))
    make_key(ring, "dev")
    ring.set_status("dev", KeyStatus.DISABLED)
    ring.sign_trust(root)
    text = (home / "trust.json").read_text().replace('"disabled"', '"active"')
    (home / "trust.json").write_text(text)
    with pytest.raises(TrustFileError, match="changed after it was signed"):
        Keyring(home, trust_root=root.key_id).entries()


def test_a_trust_file_re_signed_by_another_root_is_refused(home: Path) -> None:
    _, root = _signed_home(home)
    other = LocalKeySigner(generate_private_key(KeyAlgorithm.ED25519))
    Keyring(home).sign_trust(other)  # whoever can write BASTION_HOME can do this...
    assert Keyring(home).trust_signature() is not None  # ...and without a pin it is believed
    with pytest.raises(TrustFileError, match="not by the pinned root"):
        Keyring(home, trust_root=root.key_id).entries()


def test_a_corrupted_signature_is_refused(home: Path) -> None:
    _, root = _signed_home(home)
    data = json.loads((home / "trust.json").read_text())
    sig = bytearray(base64.b64decode(data["signature"]["signatures"][0]["sig"]))
    sig[-1] ^= 1
    data["signature"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    (home / "trust.json").write_text(json.dumps(data))
    with pytest.raises(TrustFileError, match="changed after it was signed"):
        Keyring(home, trust_root=root.key_id).entries()
    data["signature"]["signatures"][0]["sig"] = "not base64!"
    (home / "trust.json").write_text(json.dumps(data))
    with pytest.raises(TrustFileError, match="not valid base64"):
        Keyring(home, trust_root=root.key_id).entries()
    del data["signature"]["public_key"]
    (home / "trust.json").write_text(json.dumps(data))
    with pytest.raises(TrustFileError, match="malformed"):
        Keyring(home).entries()


def test_only_the_pinned_root_may_sign(home: Path) -> None:
    dev, root = _signed_home(home)
    with pytest.raises(TrustFileError, match="not the pinned trust root"):
        Keyring(home, trust_root=root.key_id).sign_trust(dev)


def test_changing_the_keys_drops_the_signature_until_re_signed(home: Path) -> None:
    _, root = _signed_home(home)
    make_key(Keyring(home), "ci")
    ring = Keyring(home, trust_root=root.key_id)
    with pytest.raises(TrustFileError, match="not signed"):
        ring.entries()
    ring.sign_trust(root)
    assert [e.name for e in ring.entries()] == ["dev", "root", "ci"]


def test_a_malformed_pin_is_an_error(home: Path) -> None:
    with pytest.raises(TrustFileError, match="64 hex digits"):
        Keyring(home, trust_root="abc123")


def test_verification_with_a_tampered_trust_file_decides_nothing(home: Path, tmp_path: Path) -> None:
    dev, root = _signed_home(home)
    model = make_model(tmp_path / "model")
    bundle = sign(model, dev)
    (home / "trust.json").write_text((home / "trust.json").read_text().replace('"dev"', '"dev2"'))
    with pytest.raises(TrustFileError) as caught:
        verify(parse_target(f"dir:{model}"), [bundle], Keyring(home, trust_root=root.key_id))
    assert caught.value.exit_code == 2


def test_a_trust_only_root_key_cannot_vouch_for_artifacts(home: Path, tmp_path: Path) -> None:
    _, root = _signed_home(home)
    model = make_model(tmp_path / "model")
    result = verify(parse_target(f"dir:{model}"), [sign(model, root)], Keyring(home, trust_root=root.key_id))
    assert [p.cause for p in result.problems] == [Cause.OUT_OF_SCOPE]


# --- the CLI ------------------------------------------------------------------------------------


def test_cli_sign_status_pin_and_refuse(
    bastion: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model(tmp_path / "model")
    bundle = tmp_path / "b.json"
    code, out, _ = bastion("keys", "trust", "status")
    assert code == 0 and "no trust file yet" in out
    assert bastion("keys", "generate", "--name", "dev")[0] == 0
    assert bastion("keys", "generate", "--name", "root", "--scope", "trust")[0] == 0
    code, out, err = bastion("keys", "trust", "status")
    assert code == 0 and "not signed" in out
    code, out, err = bastion("keys", "trust", "sign", "--key", "root")
    assert code == 0 and "export BASTION_TRUST_ROOT=" in err
    root_id = err.split("BASTION_TRUST_ROOT=")[1].split()[0]
    code, out, _ = bastion("keys", "trust", "status", "--trust-root", root_id)
    assert code == 0 and "signed by the pinned root" in out
    assert bastion("attest", f"dir:{model}", "--key", "dev", "-o", str(bundle), "--no-store")[0] == 0
    assert bastion("verify", str(model), "--bundle", str(bundle), "--trust-root", root_id)[0] == 0

    # a key change drops the signature: a pinned verify now refuses to decide, with the fix in the hint
    code, _, err = bastion("keys", "disable", "dev")
    assert code == 0 and "signature was dropped" in err
    code, out, err = bastion("verify", str(model), "--bundle", str(bundle), "--trust-root", root_id)
    assert code == 2 and "not signed, and a signed one is required" in err and "keys trust sign" in err
    monkeypatch.setenv("BASTION_TRUST_ROOT", root_id)
    assert bastion("keys", "trust", "status")[0] == 2
    assert bastion("keys", "trust", "sign", "--key", "dev")[0] == 2  # disabled, and not the root anyway
    assert bastion("keys", "trust", "sign", "--key", "root")[0] == 0
    code, out, _ = bastion("verify", str(model), "--bundle", str(bundle))
    assert code == 1 and "key-disabled" in out

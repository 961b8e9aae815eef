"""`keys enable` (undo a mistaken disable, never revive a rotated-out key) and `keys export-private`
(encrypted PKCS#8 only, a new 0600 file, nothing on screen)."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from bastion.errors import UsageError
from bastion.evidence.errors import KeyNotFoundError, PassphraseError
from bastion.evidence.keys import Keyring, KeyStatus, load_private_key, public_pem
from bastion.evidence.signers import signer_from_uri
from bastion.evidence.targets import parse_target
from bastion.evidence.verify import Cause, Status, verify
from tests.unit.conftest import Run
from tests.unit.evidence_helpers import FAST_SCRYPT, PASSPHRASE, make_key, make_model, sign

EXPORT = "another long export passphrase"  # a throwaway test passphrase


@pytest.fixture()
def ring(tmp_path: Path) -> Keyring:
    return Keyring(tmp_path / "home")


def _status(ring: Keyring, key_id: str) -> KeyStatus:
    info = ring.by_id(key_id)
    assert info is not None
    return info.status


# --- enable ----------------------------------------------------------------------------------------


def test_enable_undoes_a_disable_and_what_it_signed_verifies_again(ring: Keyring, tmp_path: Path) -> None:
    info, signer = make_key(ring)
    model = make_model(tmp_path / "model")
    bundle = sign(model, signer)
    target = parse_target(f"dir:{model}")
    ring.set_status("dev", KeyStatus.DISABLED)
    result = verify(target, [bundle], ring)
    assert result.status is Status.FAILED
    assert Cause.KEY_DISABLED in {p.cause for p in result.problems}
    enabled = ring.enable("dev")
    assert enabled.key_id == info.key_id and enabled.status is KeyStatus.ACTIVE
    assert _status(ring, info.key_id) is KeyStatus.ACTIVE
    assert verify(target, [bundle], ring).status is Status.VERIFIED
    assert signer_from_uri("dev", lambda _: PASSPHRASE, keyring=ring).key_id == info.key_id


def test_enable_refuses_a_key_that_is_not_disabled(ring: Keyring) -> None:
    make_key(ring)
    with pytest.raises(UsageError, match="is not disabled"):
        ring.enable("dev")
    with pytest.raises(KeyNotFoundError):
        ring.enable("ghost")


def test_enable_refuses_a_rotated_out_key(ring: Keyring) -> None:
    old, _ = make_key(ring)
    ring.rotate("dev", PASSPHRASE, scrypt_n=FAST_SCRYPT)
    with pytest.raises(UsageError, match="retired by rotation"):
        ring.enable(old.key_id)
    assert _status(ring, old.key_id) is KeyStatus.RETIRED
    # retired, then disabled (found compromised): its name has moved on, so it stays disabled
    ring.set_status(old.key_id, KeyStatus.DISABLED)
    with pytest.raises(UsageError, match="replaced by the active key"):
        ring.enable(old.key_id)
    assert _status(ring, old.key_id) is KeyStatus.DISABLED


def test_enable_refuses_a_disabled_key_whose_name_was_given_to_a_new_key(ring: Keyring) -> None:
    old, _ = make_key(ring)
    ring.set_status("dev", KeyStatus.DISABLED)
    new, _ = make_key(ring)  # a fresh key under the same name
    with pytest.raises(UsageError, match=f"replaced by the active key {new.short_id}"):
        ring.enable("dev")
    assert {e.key_id: e.status for e in ring.entries()} == {
        old.key_id: KeyStatus.DISABLED,
        new.key_id: KeyStatus.ACTIVE,
    }
    ring.set_status(new.key_id, KeyStatus.DISABLED)  # the hint's way back: retire the replacement first
    assert ring.enable(old.key_id).status is KeyStatus.ACTIVE
    assert ring.find("dev").key_id == old.key_id


def test_two_disabled_keys_of_one_name_are_told_apart_by_id(ring: Keyring) -> None:
    first, _ = make_key(ring)
    ring.set_status("dev", KeyStatus.DISABLED)
    second, _ = make_key(ring)
    ring.set_status(second.key_id, KeyStatus.DISABLED)
    with pytest.raises(UsageError, match="2 disabled keys are named 'dev'") as caught:
        ring.enable("dev")
    assert "key id" in (caught.value.hint or "")
    assert ring.enable(first.key_id[:16]).key_id == first.key_id
    assert _status(ring, second.key_id) is KeyStatus.DISABLED


# --- export-private ----------------------------------------------------------------------------------


def test_export_writes_encrypted_pkcs8_only_to_a_new_0600_file(ring: Keyring, tmp_path: Path) -> None:
    info, signer = make_key(ring)
    out = tmp_path / "dev.pem"
    assert ring.export_private("dev", PASSPHRASE, EXPORT, out).key_id == info.key_id
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    pem = out.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert b"BEGIN PRIVATE KEY" not in pem and EXPORT.encode() not in pem
    key = serialization.load_pem_private_key(pem, EXPORT.encode())
    assert public_pem(key).decode() == info.public_pem  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="password"):
        serialization.load_pem_private_key(pem, b"not the passphrase")
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        load_private_key(pem, "not the passphrase", source="dev.pem")
    # Bastion signs with the exported file as it does with the sealed key
    exported = signer_from_uri(f"file:{out}", lambda _: EXPORT, keyring=ring)
    assert exported.key_id == signer.key_id == info.key_id


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_opens_the_exported_key(ring: Keyring, tmp_path: Path) -> None:
    info, _ = make_key(ring)
    out = tmp_path / "dev.pem"
    ring.export_private("dev", PASSPHRASE, EXPORT, out)
    done = subprocess.run(
        ["openssl", "pkey", "-in", str(out), "-passin", "env:EXPORT_PW", "-pubout"],
        capture_output=True,
        text=True,
        env={"EXPORT_PW": EXPORT, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == info.public_pem
    wrong = subprocess.run(
        ["openssl", "pkey", "-in", str(out), "-passin", "pass:nope", "-pubout"],
        capture_output=True,
        check=False,
    )
    assert wrong.returncode != 0


def test_export_refuses_and_writes_nothing(ring: Keyring, tmp_path: Path) -> None:
    make_key(ring)
    out = tmp_path / "dev.pem"
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        ring.export_private("dev", "not it", EXPORT, out)
    assert not out.exists()
    with pytest.raises(PassphraseError, match="without a passphrase"):
        ring.export_private("dev", PASSPHRASE, "", out)
    assert not out.exists()
    out.write_text("keep me")
    with pytest.raises(UsageError, match="refusing to overwrite"):
        ring.export_private("dev", PASSPHRASE, EXPORT, out)
    assert out.read_text() == "keep me"
    link = tmp_path / "link.pem"
    link.symlink_to(tmp_path / "nowhere.pem")  # a dangling link: would create its target
    with pytest.raises(UsageError, match="refusing to overwrite"):
        ring.export_private("dev", PASSPHRASE, EXPORT, link)
    assert not (tmp_path / "nowhere.pem").exists()


def test_export_refuses_disabled_and_public_only_keys(ring: Keyring, tmp_path: Path) -> None:
    info, _ = make_key(ring)
    ring.set_status("dev", KeyStatus.DISABLED)
    with pytest.raises(UsageError, match="disabled"):
        ring.export_private("dev", PASSPHRASE, EXPORT, tmp_path / "a.pem")
    ring.import_public("theirs", make_key(Keyring(tmp_path / "other"), "theirs")[0].public_pem.encode())
    with pytest.raises(KeyNotFoundError, match="no private key"):
        ring.export_private("theirs", PASSPHRASE, EXPORT, tmp_path / "b.pem")
    assert not list(tmp_path.glob("*.pem"))
    ring.enable("dev")
    ring.export_private(info.key_id, PASSPHRASE, EXPORT, tmp_path / "c.pem")
    assert (tmp_path / "c.pem").exists()


# --- the commands ------------------------------------------------------------------------------------


def test_enable_and_export_private_commands(
    tmp_path: Path, bastion: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert bastion("keys", "generate", "--name", "ci")[0] == 0
    assert bastion("keys", "disable", "ci")[0] == 0
    code, out, _ = bastion("keys", "enable", "ci")
    assert code == 0 and "enabled 'ci'" in out
    code, _, err = bastion("keys", "enable", "ci")
    assert code == 2 and "not disabled" in err

    out_file = tmp_path / "ci.pem"
    monkeypatch.delenv("BASTION_EXPORT_PASSPHRASE", raising=False)
    code, _, err = bastion("keys", "export-private", "ci", "-o", str(out_file))
    assert code == 2 and "BASTION_EXPORT_PASSPHRASE" in err  # no terminal to ask on
    assert not out_file.exists()

    monkeypatch.setenv("BASTION_EXPORT_PASSPHRASE", EXPORT)
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "wrong passphrase")
    code, _, err = bastion("keys", "export-private", "ci", "-o", str(out_file))
    assert code == 2 and "wrong passphrase" in err
    assert not out_file.exists()

    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "s3cret-passphrase")
    code, out, err = bastion("keys", "export-private", "ci", "-o", str(out_file))
    assert code == 0, err
    assert "PRIVATE KEY" not in out + err and EXPORT not in out + err
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    assert out_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    before = out_file.read_bytes()
    code, _, err = bastion("keys", "export-private", "ci", "-o", str(out_file))
    assert code == 2 and "refusing to overwrite" in err
    assert out_file.read_bytes() == before

    code, out, _ = bastion("keys", "show", "ci")
    key_id = json.loads(out)["key_id"]
    assert bastion("keys", "rotate", "ci")[0] == 0
    code, _, err = bastion("keys", "enable", key_id)
    assert code == 2 and "retired by rotation" in err

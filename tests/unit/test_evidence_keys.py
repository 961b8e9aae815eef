from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from bastion.errors import UsageError
from bastion.evidence.errors import KeyNotFoundError, PassphraseError, TrustFileError
from bastion.evidence.keys import KeyAlgorithm, Keyring, KeyStatus, encrypt_private_key, generate_private_key
from bastion.evidence.signers import signer_from_uri
from tests.unit.evidence_helpers import FAST_SCRYPT, PASSPHRASE, make_key


@pytest.fixture()
def ring(tmp_path: Path) -> Keyring:
    return Keyring(tmp_path / "home")


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_generated_key_is_sealed_identified_and_signs(ring: Keyring, algorithm: KeyAlgorithm) -> None:
    info, signer = make_key(ring, algorithm=algorithm)
    assert info.key_id == hashlib.sha256(info.public_pem.encode()).hexdigest() == signer.key_id
    sealed = ring.private_key_path(info)
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o600
    text = sealed.read_text()
    assert "PRIVATE KEY" not in text and PASSPHRASE not in text
    assert PASSPHRASE not in ring.trust_path.read_text() and PASSPHRASE not in repr(signer)
    assert signer.algorithm is algorithm


def test_wrong_or_missing_passphrase_is_a_clear_error(ring: Keyring) -> None:
    make_key(ring)
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        signer_from_uri("dev", lambda _: "nope", keyring=ring)
    with pytest.raises(PassphraseError, match="no passphrase"):
        signer_from_uri("dev", lambda _: None, keyring=ring)


def test_a_sealed_key_moved_to_another_key_id_does_not_open(ring: Keyring) -> None:
    info, _ = make_key(ring)
    envelope = json.loads(ring.private_key_path(info).read_text())
    envelope["key_id"] = "0" * 64  # bound as associated data: any edit breaks the seal
    ring.private_key_path(info).write_text(json.dumps(envelope))
    with pytest.raises(PassphraseError):
        signer_from_uri("dev", lambda _: PASSPHRASE, keyring=ring)


def test_rotate_retires_the_old_key_and_disable_stops_signing(ring: Keyring) -> None:
    old, _ = make_key(ring)
    retired, new = ring.rotate("dev", PASSPHRASE, scrypt_n=FAST_SCRYPT)
    assert retired.key_id == old.key_id and new.key_id != old.key_id
    statuses = {e.key_id: e.status for e in ring.entries()}
    assert statuses == {old.key_id: KeyStatus.RETIRED, new.key_id: KeyStatus.ACTIVE}
    assert ring.find("dev").key_id == new.key_id
    with pytest.raises(UsageError, match="retired"):
        signer_from_uri(old.key_id, lambda _: PASSPHRASE, keyring=ring)
    ring.set_status("dev", KeyStatus.DISABLED)
    with pytest.raises(UsageError, match="disabled"):
        signer_from_uri("dev", lambda _: PASSPHRASE, keyring=ring)


def test_duplicate_names_unknown_keys_and_bad_names_are_refused(ring: Keyring) -> None:
    make_key(ring)
    with pytest.raises(UsageError, match="exists"):
        make_key(ring)
    with pytest.raises(KeyNotFoundError):
        ring.find("ghost")
    with pytest.raises(UsageError):
        ring.generate("../escape", PASSPHRASE)
    with pytest.raises(PassphraseError):
        ring.generate("empty", "")


def test_malformed_trust_file_is_a_config_error(ring: Keyring) -> None:
    make_key(ring)
    data = json.loads(ring.trust_path.read_text())
    data["keys"][0]["key_id"] = "ab" * 32
    ring.trust_path.write_text(json.dumps(data))
    with pytest.raises(TrustFileError, match="does not match"):
        ring.entries()
    ring.trust_path.write_text("{not json")
    with pytest.raises(TrustFileError):
        ring.entries()


def test_file_and_env_signer_uris(ring: Keyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_private_key(KeyAlgorithm.ECDSA_P256)
    sealed = encrypt_private_key(key, PASSPHRASE, scrypt_n=FAST_SCRYPT)
    path = tmp_path / "k.key"
    path.write_bytes(sealed)
    from_file = signer_from_uri(f"file:{path}", lambda _: PASSPHRASE)
    monkeypatch.setenv("SIGNING_KEY", sealed.decode())
    from_env = signer_from_uri("env:SIGNING_KEY", lambda _: PASSPHRASE)
    assert from_file.key_id == from_env.key_id
    assert from_file.sign(b"x") == from_env.sign(b"x")  # RFC 6979: deterministic
    with pytest.raises(KeyNotFoundError):
        signer_from_uri(f"file:{tmp_path / 'missing'}", lambda _: PASSPHRASE)
    with pytest.raises(UsageError, match="scheme"):
        signer_from_uri("kms:whatever", lambda _: PASSPHRASE)

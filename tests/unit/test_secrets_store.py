"""The secrets store: envelope encryption, tampering caught, versions, names, and the audit trail."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from bastion.core.chain import GENESIS, chain_hash
from bastion.errors import BastionError
from bastion.secrets import (
    SecretNameError,
    SecretNotFoundError,
    SecretsIntegrityError,
    SecretsPassphraseError,
    SecretStore,
    StoreFormatError,
)

PASS = "correct horse battery staple"  # noqa: S105 - test passphrase
VALUE = "hf_" + "QwErTyUiOpAsDfGhJkLzXcVbNmQwErTyUi"  # looks like a real token on purpose
OTHER = "postgres-pa55-" + "x7Kq9Lm2"


@pytest.fixture()
def store(tmp_path: Path) -> SecretStore:
    s = SecretStore(tmp_path / "secrets", scrypt_n=2**14)
    s.set("HF_TOKEN", VALUE, PASS)
    s.set("DB_PASSWORD", OTHER, PASS)
    return s


def _doc(store: SecretStore) -> dict:  # type: ignore[type-arg]
    return json.loads(store.path.read_text())


def _write(store: SecretStore, doc: dict) -> None:  # type: ignore[type-arg]
    store.path.write_text(json.dumps(doc))


def _flip(b64: str, index: int = 0) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[index % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_roundtrip_and_nothing_in_clear_on_disk(store: SecretStore) -> None:
    assert store.get("HF_TOKEN", PASS) == VALUE
    assert store.get("DB_PASSWORD", PASS) == OTHER
    raw = store.path.read_bytes()
    assert VALUE.encode() not in raw and OTHER.encode() not in raw
    assert PASS.encode() not in raw
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700


def test_each_version_has_its_own_data_key(store: SecretStore) -> None:
    store.rotate("HF_TOKEN", VALUE, PASS)  # the same value again
    v1, v2 = _doc(store)["secrets"]["HF_TOKEN"]["versions"]
    assert v1["wrapped_key"] != v2["wrapped_key"] and v1["ciphertext"] != v2["ciphertext"]


def test_wrong_passphrase_is_a_clear_error_and_audited(store: SecretStore) -> None:
    with pytest.raises(SecretsPassphraseError, match="wrong passphrase") as info:
        store.get("HF_TOKEN", "not the passphrase")
    assert info.value.exit_code == 2
    last = store.audit.records()[-1]
    assert (last["action"], last["name"], last["outcome"]) == ("get", "HF_TOKEN", "failure")
    assert "wrong passphrase" in last["reason"]
    with pytest.raises(SecretsPassphraseError):
        store.rotate("HF_TOKEN", "new-value-123", "not the passphrase")
    with pytest.raises(SecretsPassphraseError):
        store.delete("HF_TOKEN", "not the passphrase")
    with pytest.raises(SecretsPassphraseError):
        store.set("NEW_ONE", "new-value-123", "")
    assert store.get("HF_TOKEN", PASS) == VALUE  # nothing was changed by the failed attempts


@pytest.mark.parametrize("field", ["ciphertext", "wrapped_key", "nonce", "key_nonce"])
@pytest.mark.parametrize("index", [0, 7, -1])
def test_a_flipped_bit_anywhere_is_caught(store: SecretStore, field: str, index: int) -> None:
    doc = _doc(store)
    version = doc["secrets"]["HF_TOKEN"]["versions"][0]
    version[field] = _flip(version[field], index)
    _write(store, doc)
    with pytest.raises(SecretsIntegrityError, match=r"HF_TOKEN.*altered"):
        store.get("HF_TOKEN", PASS)
    assert store.get("DB_PASSWORD", PASS) == OTHER  # the other secrets still open


def test_a_ciphertext_moved_to_another_name_or_version_is_caught(store: SecretStore) -> None:
    doc = _doc(store)
    doc["secrets"]["DB_PASSWORD"] = doc["secrets"]["HF_TOKEN"]  # swap whole entries
    _write(store, doc)
    with pytest.raises(SecretsIntegrityError):
        store.get("DB_PASSWORD", PASS)
    doc = _doc(store)
    doc["secrets"]["HF_TOKEN"]["versions"][0]["version"] = 2  # renumber
    _write(store, doc)
    with pytest.raises(SecretsIntegrityError):
        store.get("HF_TOKEN", PASS)


def test_tampered_key_check_or_kdf_reads_as_wrong_passphrase(store: SecretStore) -> None:
    doc = _doc(store)
    doc["check"]["ciphertext"] = _flip(doc["check"]["ciphertext"])
    _write(store, doc)
    with pytest.raises(SecretsPassphraseError):
        store.get("HF_TOKEN", PASS)
    doc = _doc(store)
    doc["kdf"]["n"] = 2**30
    _write(store, doc)
    with pytest.raises(StoreFormatError, match="out of range"):
        store.get("HF_TOKEN", PASS)


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[]", b'{"format": "other"}', b'{"format": "bastion-secrets-v1", "secrets": []}'],
)
def test_a_malformed_store_is_a_clear_error(store: SecretStore, content: bytes) -> None:
    store.path.write_bytes(content)
    with pytest.raises(StoreFormatError):
        store.get("HF_TOKEN", PASS)


def test_unknown_names_and_versions(store: SecretStore) -> None:
    with pytest.raises(SecretNotFoundError, match="no secret named 'NOPE'"):
        store.get("NOPE", PASS)
    with pytest.raises(SecretNotFoundError, match="no version 9"):
        store.get("HF_TOKEN", PASS, version=9)
    with pytest.raises(SecretNotFoundError, match="no secrets store"):
        SecretStore(store.root.parent / "elsewhere").get("HF_TOKEN", PASS)
    with pytest.raises(BastionError, match="exists"):
        store.set("HF_TOKEN", "again-value-1", PASS)


@pytest.mark.parametrize(
    "name", ["", "1ABC", "A-B", "a b", "A" * 129, "x;rm", "PATH", "LD_PRELOAD", "BASTION_SECRETS_PASSPHRASE"]
)
def test_names_are_validated(store: SecretStore, name: str) -> None:
    with pytest.raises(SecretNameError):
        store.set(name, "some-value-123", PASS)


@pytest.mark.parametrize("value", ["", "a\0b"])
def test_unusable_values_are_refused(store: SecretStore, value: str) -> None:
    with pytest.raises(BastionError):
        store.set("FINE_NAME", value, PASS)


def test_rotate_keeps_the_previous_version_until_deleted(store: SecretStore) -> None:
    v2 = store.rotate("HF_TOKEN", "rotated-value-2", PASS)
    assert v2.version == 2
    assert store.get("HF_TOKEN", PASS) == "rotated-value-2"
    assert store.get("HF_TOKEN", PASS, version=1) == VALUE
    info = store.info("HF_TOKEN")
    assert [v.version for v in info.versions] == [1, 2] and info.current.version == 2
    assert store.delete("HF_TOKEN", PASS, old=True) == 1
    with pytest.raises(SecretNotFoundError):
        store.get("HF_TOKEN", PASS, version=1)
    assert store.rotate("HF_TOKEN", "rotated-value-3", PASS).version == 3  # numbers never reused
    assert store.delete("HF_TOKEN", PASS, version=2) == 1
    assert store.get("HF_TOKEN", PASS) == "rotated-value-3"
    assert store.delete("HF_TOKEN", PASS) == 1
    assert [s.name for s in store.list()] == ["DB_PASSWORD"]
    with pytest.raises(SecretNotFoundError):
        store.rotate("HF_TOKEN", "x-value-1234", PASS)


def test_list_needs_no_passphrase_and_holds_no_value(store: SecretStore) -> None:
    listing = json.dumps([s.to_dict() for s in store.list()])
    assert "HF_TOKEN" in listing and "DB_PASSWORD" in listing
    assert VALUE not in listing and OTHER not in listing


def test_change_passphrase_rewraps_data_keys_only(store: SecretStore) -> None:
    before = _doc(store)["secrets"]["HF_TOKEN"]["versions"][0]
    assert store.change_passphrase(PASS, "a new passphrase") == 2
    after = _doc(store)["secrets"]["HF_TOKEN"]["versions"][0]
    assert after["ciphertext"] == before["ciphertext"] and after["wrapped_key"] != before["wrapped_key"]
    with pytest.raises(SecretsPassphraseError):
        store.get("HF_TOKEN", PASS)
    assert store.get("HF_TOKEN", "a new passphrase") == VALUE


def test_every_access_is_audited_chained_and_value_free(store: SecretStore) -> None:
    store.get("HF_TOKEN", PASS)
    store.rotate("HF_TOKEN", "rotated-value-2", PASS)
    with pytest.raises(SecretNotFoundError):
        store.get("MISSING", PASS)
    store.environment(PASS, ["DB_PASSWORD"], program="python")
    store.delete("HF_TOKEN", PASS, old=True)
    records = store.audit.records()
    assert [(r["action"], r["name"], r["outcome"]) for r in records] == [
        ("set", "HF_TOKEN", "success"),
        ("set", "DB_PASSWORD", "success"),
        ("get", "HF_TOKEN", "success"),
        ("rotate", "HF_TOKEN", "success"),
        ("get", "MISSING", "failure"),
        ("run", "DB_PASSWORD", "success"),
        ("delete", "HF_TOKEN", "success"),
    ]
    for r in records:
        assert r["caller"] and r["time"].endswith("Z")
    assert records[5]["program"] == "python" and records[5]["version"] == 1
    raw = store.audit.path.read_text()
    for secret in (VALUE, OTHER, "rotated-value-2", PASS):
        assert secret not in raw
    prev = GENESIS
    for seq, r in enumerate(records):
        assert r["seq"] == seq and r["prev_hash"] == prev and chain_hash(prev, r) == r["hash"]
        prev = r["hash"]
    assert stat.S_IMODE(store.audit.path.stat().st_mode) == 0o600


def test_the_audit_log_verifies_with_bastion_audit_verify(store: SecretStore) -> None:
    from bastion.gateway.audit import verify_chain

    store.get("HF_TOKEN", PASS)
    assert verify_chain(store.audit.path).ok
    lines = store.audit.path.read_text().splitlines()
    lines[1] = lines[1].replace('"success"', '"failure"')
    store.audit.path.write_text("\n".join(lines) + "\n")
    assert not verify_chain(store.audit.path).ok


def test_an_audit_log_that_cannot_be_continued_stops_the_access(store: SecretStore) -> None:
    with store.audit.path.open("a") as fh:
        fh.write("garbage\n")
    with pytest.raises(StoreFormatError, match="audit"):
        store.get("HF_TOKEN", PASS)


def test_store_files_are_replaced_atomically(store: SecretStore) -> None:
    store.rotate("HF_TOKEN", "rotated-value-2", PASS)
    assert not [p for p in os.listdir(store.root) if p.endswith(".tmp")]

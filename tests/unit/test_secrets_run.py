"""``run``: secrets reach one real child process as environment variables; exit codes come back."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bastion.errors import UsageError
from bastion.secrets import (
    PASSPHRASE_ENV,
    CommandNotFoundError,
    SecretNotFoundError,
    SecretsPassphraseError,
    SecretStore,
    run_with_secrets,
)
from bastion.secrets.inject import exit_status

PASS = "run-test-passphrase"  # noqa: S105 - test passphrase
TOKEN = "tok-" + "Zq8Lm3Xv9Rt2Wp7K"


@pytest.fixture()
def store(tmp_path: Path) -> SecretStore:
    s = SecretStore(tmp_path / "secrets", scrypt_n=2**14)
    s.set("API_TOKEN", TOKEN, PASS)
    s.set("OTHER_SECRET", "other-value-42", PASS)
    return s


def _probe(out: Path) -> list[str]:
    code = (
        "import json, os, sys; "
        f"json.dump({{k: os.environ.get(k) for k in ('API_TOKEN', 'OTHER_SECRET', {PASSPHRASE_ENV!r})}}, "
        f"open({str(out)!r}, 'w')); sys.exit(int(os.environ.get('EXIT_WITH', '0')))"
    )
    return [sys.executable, "-c", code]


def test_secrets_are_injected_into_a_real_child(
    store: SecretStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    out = tmp_path / "env.json"
    monkeypatch.setenv(PASSPHRASE_ENV, PASS)
    monkeypatch.setenv("API_TOKEN", "shadowed-by-the-store")
    assert run_with_secrets(store, PASS, _probe(out)) == 0
    seen = json.loads(out.read_text())
    assert seen == {"API_TOKEN": TOKEN, "OTHER_SECRET": "other-value-42", PASSPHRASE_ENV: None}
    assert os.environ[PASSPHRASE_ENV] == PASS  # only the child lost it


def test_only_restricts_what_is_injected(store: SecretStore, tmp_path: Path) -> None:
    import json

    out = tmp_path / "env.json"
    assert run_with_secrets(store, PASS, _probe(out), only=["API_TOKEN"]) == 0
    assert json.loads(out.read_text())["OTHER_SECRET"] is None
    runs = [r for r in store.audit.records() if r["action"] == "run"]
    assert [(r["name"], r["outcome"]) for r in runs] == [("API_TOKEN", "success")]


def test_exit_code_is_propagated(store: SecretStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXIT_WITH", "42")
    assert run_with_secrets(store, PASS, _probe(tmp_path / "e.json")) == 42
    assert exit_status(-9) == 137


def test_arguments_are_not_interpreted_by_a_shell(store: SecretStore, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    code = "import sys; print(sys.argv[1])"
    assert run_with_secrets(store, PASS, [sys.executable, "-c", code, f"; touch {marker}"]) == 0
    assert not marker.exists()


def test_failures_run_nothing_and_are_audited(store: SecretStore, tmp_path: Path) -> None:
    out = tmp_path / "never.json"
    with pytest.raises(SecretsPassphraseError):
        run_with_secrets(store, "wrong", _probe(out))
    with pytest.raises(SecretNotFoundError):
        run_with_secrets(store, PASS, _probe(out), only=["NOT_THERE"])
    with pytest.raises(CommandNotFoundError) as info:
        run_with_secrets(store, PASS, ["definitely-not-a-command-xyz"])
    assert info.value.exit_code == 127
    with pytest.raises(UsageError):
        run_with_secrets(store, PASS, [])
    assert not out.exists()
    failures = [(r["action"], r["name"]) for r in store.audit.records() if r["outcome"] == "failure"]
    assert failures == [("run", "*"), ("run", "NOT_THERE"), ("run", "*"), ("run", "*")]

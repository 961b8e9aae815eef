"""``bastion secrets`` on the command line: values never as arguments, stdout only for `get`, clean errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bastion.cli import main as cli_main
from bastion.cli.secrets import secrets
from bastion.secrets import SecretStore

PASS = "cli-test-passphrase"  # noqa: S105 - test passphrase
VALUE = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BASTION_SECRETS_PASSPHRASE", PASS)
    # create the store with cheap scrypt parameters; the CLI reads them from the file
    SecretStore(tmp_path / "home" / "secrets", scrypt_n=2**14).set("SEED", "seed-value-123", PASS)
    return tmp_path / "home"


def _run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(secrets, list(args), input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_set_get_list_rotate_delete(home: Path) -> None:
    code, out, err = _run("set", "GH_TOKEN", "--from-stdin", input=VALUE + "\n")
    assert code == 0 and out == "" and "version 1" in err
    code, out, _ = _run("get", "GH_TOKEN")
    assert (code, out) == (0, VALUE + "\n")
    assert _run("get", "GH_TOKEN", "-n")[1] == VALUE
    code, out, _ = _run("list")
    assert "GH_TOKEN" in out and "v1" in out and VALUE not in out
    code, _, err = _run("rotate", "GH_TOKEN", "--from-stdin", input="second-value-456")
    assert code == 0 and "version 2" in err
    assert _run("get", "GH_TOKEN")[1] == "second-value-456\n"
    assert _run("get", "GH_TOKEN", "--version", "1")[1] == VALUE + "\n"
    listing = json.loads(_run("list", "--format", "json")[1])
    gh = next(e for e in listing if e["name"] == "GH_TOKEN")
    assert gh["current_version"] == 2 and [v["version"] for v in gh["versions"]] == [1, 2]
    assert _run("delete", "GH_TOKEN", "--old")[0] == 0
    assert _run("delete", "GH_TOKEN")[0] == 0
    assert "GH_TOKEN" not in _run("list")[1]
    audit = (home / "secrets" / "audit.jsonl").read_text()
    assert VALUE not in audit and "second-value-456" not in audit and PASS not in audit


def test_value_from_a_named_environment_variable(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_VALUE", VALUE)
    assert _run("set", "FROM_ENV", "--value-env", "MY_VALUE")[0] == 0
    assert _run("get", "FROM_ENV")[1] == VALUE + "\n"


def test_a_value_is_never_accepted_as_an_argument(home: Path) -> None:
    code, _, err = _run("set", "GH_TOKEN", VALUE)
    assert code == 2 and "unexpected extra argument" in err.lower()
    assert not any(e.name == "GH_TOKEN" for e in SecretStore(home / "secrets").list())


def test_run_injects_into_a_real_child_and_propagates_its_exit_code(home: Path, tmp_path: Path) -> None:
    _run("set", "X", "--from-stdin", input="twelve-chars")
    out = tmp_path / "len.txt"
    code = f"import os, sys; open({str(out)!r}, 'w').write(str(len(os.environ['X']))); sys.exit(3)"
    exit_code, _, _ = _run("run", "--only", "X", "--", sys.executable, "-c", code)
    assert exit_code == 3
    assert out.read_text() == "12"


def test_errors_exit_2_without_a_traceback(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli_main.COMMANDS, "secrets", ("bastion.cli.secrets", "secrets", "secrets"))

    def exit_code(*args: str) -> int:
        with pytest.raises(SystemExit) as info:
            cli_main.main(["secrets", *args])
        return int(info.value.code or 0)

    assert exit_code("get", "NOPE") == 2
    assert "no secret named 'NOPE'" in capsys.readouterr().err
    monkeypatch.setenv("BASTION_SECRETS_PASSPHRASE", "wrong")
    assert exit_code("get", "SEED") == 2
    err = capsys.readouterr().err
    assert "wrong passphrase" in err and "Traceback" not in err
    monkeypatch.setenv("BASTION_SECRETS_PASSPHRASE", PASS)
    store = home / "secrets" / "store.json"
    doc = json.loads(store.read_text())
    doc["secrets"]["SEED"]["versions"][0]["ciphertext"] = (
        "AAAA" + doc["secrets"]["SEED"]["versions"][0]["ciphertext"][4:]
    )
    store.write_text(json.dumps(doc))
    assert exit_code("get", "SEED") == 2
    err = capsys.readouterr().err
    assert "failed authentication" in err and "Traceback" not in err
    assert exit_code("set", "bad-name", "--from-stdin") == 2
    assert exit_code("run", "--", "no-such-program-xyz") == 127


def test_no_passphrase_and_no_terminal_is_a_clear_error(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.secrets import SecretsPassphraseError

    monkeypatch.delenv("BASTION_SECRETS_PASSPHRASE")
    with pytest.raises(SecretsPassphraseError, match="no terminal"):
        _run("get", "SEED")
    last = SecretStore(home / "secrets").audit.records()[-1]
    assert (last["action"], last["outcome"]) == ("get", "failure")


def test_importing_the_secrets_cli_loads_no_cryptography() -> None:
    import subprocess

    code = "import bastion.cli.secrets, sys; print(any(m.startswith('cryptography') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

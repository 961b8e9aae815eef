"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bastion.cli import main as cli_main

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture()
def bastion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """``bastion(*args)`` runs the CLI in-process under a throwaway BASTION_HOME and returns
    (exit code, stdout, stderr); the key passphrase never appears in either."""
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "s3cret-passphrase")
    monkeypatch.delenv("BASTION_DATABASE_URL", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        try:
            cli_main.main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        assert "s3cret-passphrase" not in out + err
        return code, out, err

    return run

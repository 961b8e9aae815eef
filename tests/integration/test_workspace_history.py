"""``bastion scan --history``: secrets removed from the working tree are still found in git history."""

from __future__ import annotations

import json
import random
import shutil
import string
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import bastion
from bastion.cli.app import cli
from bastion.errors import InputError

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")

_rng = random.Random(5)
TOKEN = "ghp_" + "".join(_rng.choice(string.ascii_letters + string.digits) for _ in range(36))
DB_PASSWORD = "Xk9pQ2vLm7zR"  # noqa: S105 - a planted test secret
DB_URL = f"postgresql://trainer:{DB_PASSWORD}@db.internal:5432/ml"
NB_KEY = "hf_" + "".join(_rng.choice(string.ascii_letters) for _ in range(34))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [
            "git",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def notebook(output: str) -> str:
    cell = {
        "cell_type": "code",
        "execution_count": 1,
        "metadata": {},
        "source": ["print(login())\n"],
        "outputs": [{"name": "stdout", "output_type": "stream", "text": [output]}],
    }
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("history") / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text(
        f'GITHUB_TOKEN = "{TOKEN}"\n'
        'API_KEY = "<your-api-key>"  # decoy: a placeholder\n'
        'AWS_KEY = "AKIAIOSFODNN7EXAMPLE"  # decoy: the documented example key\n'
    )
    (root / ".env").write_text(f"DATABASE_URL={DB_URL}\n")
    (root / "README.md").write_text("# project\n")
    shas = {"leak": commit(root, "first version")}
    (root / "train.py").write_text(
        'import os\nGITHUB_TOKEN = os.environ["GITHUB_TOKEN"]\nAPI_KEY = "<your-api-key>"\n'
    )
    (root / ".env").unlink()
    shas["fix"] = commit(root, "remove the credentials")
    (root / "nb").mkdir()
    (root / "nb" / "eda.ipynb").write_text(notebook(f"logged in with {NB_KEY}\n"))
    shas["notebook"] = commit(root, "exploration")
    (root / "nb" / "eda.ipynb").write_text(notebook("logged in\n"))
    shas["cleared"] = commit(root, "clear outputs")
    return root, shas


def _secrets(report: bastion.ScanReport) -> set[tuple[str, str, str | None]]:
    return {(f.file, f.rule_id, f.member) for f in report.findings if f.category.value == "secret"}


def test_the_working_tree_alone_is_clean(repo: tuple[Path, dict[str, str]]) -> None:
    root, _ = repo
    assert _secrets(bastion.scan([root], families=["workspace"])) == set()


def test_removed_secrets_are_found_with_their_commit(repo: tuple[Path, dict[str, str]]) -> None:
    root, shas = repo
    report = bastion.scan([root], families=["workspace"], history=True)
    leak, nb = shas["leak"][:12], shas["notebook"][:12]
    assert _secrets(report) == {
        ("train.py", "BAS-S002", f"commit {leak}"),
        (".env", "BAS-S011", f"commit {leak}"),
        ("nb/eda.ipynb", "BAS-S006", f"commit {nb}!cell 1 output 1, line 1"),
    }
    token = next(f for f in report.findings if f.rule_id == "BAS-S002")
    assert token.line == 1 and "git history" in token.message
    assert "bastion secrets" in token.remediation
    assert report.verdict.value == "unsafe" and report.problems == ()
    assert report.extras["history_commits"] == 4


def test_values_are_masked_in_every_output(repo: tuple[Path, dict[str, str]]) -> None:
    root, _ = repo
    for fmt in ("json", "sarif", "text"):
        result = CliRunner().invoke(cli, ["scan", str(root), "--history", "--format", fmt])
        assert result.exit_code == 1, result.output
        for secret in (TOKEN, DB_PASSWORD, NB_KEY):
            assert secret not in result.output
    doc = json.loads(CliRunner().invoke(cli, ["scan", str(root), "--history", "-f", "json"]).output)
    assert any(f["member"] and f["member"].startswith("commit ") for f in doc["findings"])


def test_max_commits_bounds_the_walk_and_says_so(repo: tuple[Path, dict[str, str]]) -> None:
    root, _ = repo
    report = bastion.scan([root], families=["workspace"], history=True, history_max_commits=2)
    assert {f.file for f in report.findings} == {"nb/eda.ipynb"}  # the first commit is out of reach
    assert any("only the 2 newest of 4 commits" in s.reason for s in report.skipped)
    strict = bastion.scan([root], families=["workspace"], history=True, history_max_commits=2, strict=True)
    assert any("2 newest of 4" in p.message for p in strict.problems)


def test_a_secret_still_in_the_working_tree_is_reported_once(tmp_path: Path) -> None:
    root = tmp_path / "still"
    root.mkdir()
    git(root, "init", "-q")
    (root / "app.py").write_text(f'TOKEN = "{TOKEN}"\n')
    commit(root, "one")
    report = bastion.scan([root], families=["workspace"], history=True)
    assert _secrets(report) == {("app.py", "BAS-S002", None)}


def test_a_subfolder_gets_only_its_own_history(repo: tuple[Path, dict[str, str]]) -> None:
    root, shas = repo
    report = bastion.scan([root / "nb"], families=["workspace"], history=True)
    assert {(f.file, f.member) for f in report.findings} == {
        ("eda.ipynb", f"commit {shas['notebook'][:12]}!cell 1 output 1, line 1")
    }


def test_not_a_repository_or_model_only_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    with pytest.raises(InputError, match="not one"):
        bastion.scan([tmp_path], families=["workspace"], history=True)
    result = CliRunner().invoke(cli, ["scan", str(tmp_path), "--only", "model", "--history"])
    assert isinstance(result.exception, InputError)


def test_a_hostile_repository_config_runs_nothing(tmp_path: Path) -> None:
    root = tmp_path / "hostile"
    root.mkdir()
    git(root, "init", "-q")
    (root / "a.py").write_text(f'TOKEN = "{TOKEN}"\n')
    commit(root, "one")
    (root / "a.py").write_text("TOKEN = None\n")
    commit(root, "two")
    marker = tmp_path / "pwned"
    hook = tmp_path / "fsmonitor.sh"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    git(root, "config", "core.fsmonitor", str(hook))
    git(root, "config", "log.showSignature", "true")
    git(root, "config", "gpg.program", str(hook))
    git(root, "config", "core.pager", str(hook))
    (root / "a.py").write_text("TOKEN = 1\n")  # dirty working tree: index refresh would ask fsmonitor
    report = bastion.scan([root], families=["workspace"], history=True)
    assert {f.file for f in report.findings} == {"a.py"}
    assert not marker.exists()

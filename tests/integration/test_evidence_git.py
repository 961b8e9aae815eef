"""git: targets on real repositories made with the git command: sign a commit, then change history."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from bastion.evidence.attest import attest
from bastion.evidence.bundle import Bundle
from bastion.evidence.errors import TargetError
from bastion.evidence.gitrepo import strip_credentials
from bastion.evidence.keys import Keyring
from bastion.evidence.signers import Signer
from bastion.evidence.targets import parse_target
from bastion.evidence.verify import Cause, Status, verify
from tests.unit.evidence_helpers import make_key

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)
    return done.stdout.decode().strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "weights").mkdir()
    (root / "weights" / "model.safetensors").write_bytes(bytes(range(256)) * 16)
    (root / "config.json").write_text('{"architectures": ["Tiny"]}')
    (root / ".gitignore").write_text("*.tmp\n")
    (root / "run.sh").symlink_to("config.json")
    (root / "empty").write_bytes(b"")
    git(root, "remote", "add", "origin", "https://builder:ghp_s3cr3t@example.org/org/repo.git")
    commit(root, "first")
    return root


@pytest.fixture()
def keys(tmp_path: Path) -> tuple[Keyring, Signer]:
    ring = Keyring(tmp_path / "home")
    return ring, make_key(ring)[1]


def _sign(target: str, signer: Signer) -> tuple[Bundle, dict[str, object]]:
    (a,) = attest(parse_target(target), signer)
    return a.bundle, a.statement.predicate


def _problems(target: str, bundle: Bundle, ring: Keyring) -> tuple[Status, set[tuple[Cause, str | None]]]:
    result = verify(parse_target(target), [bundle], ring)
    return result.status, {(p.cause, p.file) for p in result.problems}


def test_statement_records_commit_tree_and_a_credential_free_remote(
    repo: Path, keys: tuple[Keyring, Signer]
) -> None:
    ring, signer = keys
    bundle, predicate = _sign(f"git:{repo}", signer)
    recorded = predicate["bastion"]["git"]  # type: ignore[index]
    assert recorded == {
        "commit": git(repo, "rev-parse", "HEAD"),
        "tree": git(repo, "rev-parse", "HEAD^{tree}"),
        "remote": "https://example.org/org/repo.git",
    }
    names = [r["name"] for r in predicate["resources"]]  # type: ignore[index]
    assert names == [".gitignore", "config.json", "empty", "run.sh", "weights/model.safetensors"]
    assert "ghp_s3cr3t" not in bundle.to_json().decode()
    assert _problems(f"git:{repo}", bundle, ring) == (Status.VERIFIED, set())
    assert _sign(f"git:{repo}", signer)[0].to_json() == bundle.to_json()  # reproducible


def test_uncommitted_changes_are_not_part_of_the_subject(repo: Path, keys: tuple[Keyring, Signer]) -> None:
    ring, signer = keys
    bundle, _ = _sign(f"git:{repo}", signer)
    (repo / "config.json").write_text("tampered in the working tree")
    (repo / "untracked.py").write_text("import os")
    assert _problems(f"git:{repo}", bundle, ring) == (Status.VERIFIED, set())


def test_new_commits_report_changed_added_and_removed_files(repo: Path, keys: tuple[Keyring, Signer]) -> None:
    ring, signer = keys
    bundle, _ = _sign(f"git:{repo}", signer)
    signed = git(repo, "rev-parse", "HEAD")
    (repo / "config.json").write_text('{"architectures": ["Evil"]}')
    (repo / "empty").unlink()
    (repo / "backdoor.py").write_text("import os")
    commit(repo, "second")
    assert _problems(f"git:{repo}", bundle, ring) == (
        Status.FAILED,
        {(Cause.CHANGED, "config.json"), (Cause.REMOVED, "empty"), (Cause.ADDED, "backdoor.py")},
    )
    # the signed commit, named explicitly (or relative to HEAD), still verifies
    assert _problems(f"git:{repo}@{signed}", bundle, ring) == (Status.VERIFIED, set())
    assert _problems(f"git:{repo}@HEAD~1", bundle, ring) == (Status.VERIFIED, set())


def test_a_commit_with_the_same_tree_verifies_with_a_note(repo: Path, keys: tuple[Keyring, Signer]) -> None:
    ring, signer = keys
    bundle, _ = _sign(f"git:{repo}", signer)
    git(
        repo,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.org",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "noop",
    )
    result = verify(parse_target(f"git:{repo}"), [bundle], ring)
    assert result.status is Status.VERIFIED
    assert any("signed commit" in note for note in result.notes)


def test_rewritten_history_fails_when_the_signed_commit_is_gone(
    repo: Path, keys: tuple[Keyring, Signer]
) -> None:
    ring, signer = keys
    bundle, _ = _sign(f"git:{repo}", signer)
    git(repo, "checkout", "-q", "--orphan", "rewritten")
    commit(repo, "same files, new history")
    git(repo, "branch", "-D", "main")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    status, problems = _problems(f"git:{repo}", bundle, ring)
    assert status is Status.FAILED
    assert {cause for cause, _ in problems} == {Cause.MISSING_COMMIT}


def test_a_tampered_object_in_the_store_is_a_changed_file(repo: Path, keys: tuple[Keyring, Signer]) -> None:
    ring, signer = keys
    bundle, _ = _sign(f"git:{repo}", signer)
    oid = git(repo, "rev-parse", "HEAD:config.json")
    loose = repo / ".git" / "objects" / oid[:2] / oid[2:]
    body = b'{"architectures": ["Evil"]}'
    loose.chmod(0o644)
    loose.write_bytes(zlib.compress(b"blob %d\0" % len(body) + body))
    assert _problems(f"git:{repo}", bundle, ring) == (Status.FAILED, {(Cause.CHANGED, "config.json")})


def test_include_globs_apply_to_the_tree(repo: Path, keys: tuple[Keyring, Signer]) -> None:
    from bastion.evidence.attest import HashOptions
    from bastion.evidence.hashing import Selection

    _, signer = keys
    (a,) = attest(parse_target(f"git:{repo}"), signer, None, HashOptions(selection=Selection(("weights/*",))))
    assert [r["name"] for r in a.statement.predicate["resources"]] == ["weights/model.safetensors"]


def test_bad_git_targets_are_clear_errors(tmp_path: Path, repo: Path, keys: tuple[Keyring, Signer]) -> None:
    _, signer = keys
    with pytest.raises(TargetError, match="no commit 'nope'"):
        attest(parse_target(f"git:{repo}@nope"), signer)
    (tmp_path / "plain").mkdir()
    with pytest.raises(TargetError, match="not a git repository"):
        attest(parse_target(f"git:{tmp_path / 'plain'}"), signer)
    with pytest.raises(TargetError, match="not a revision"):
        attest(parse_target(f"git:{repo}@--output=/tmp/x"), signer)


def test_folder_names_with_at_signs_are_paths_not_revisions(tmp_path: Path) -> None:
    odd = tmp_path / "me@work"
    odd.mkdir()
    assert parse_target(f"git:{odd}").rev is None
    assert parse_target(f"git:{odd}@v1").rev == "v1"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:token@host/r.git", "https://host/r.git"),
        ("https://token@host/r.git", "https://host/r.git"),
        ("git@github.com:org/r.git", "git@github.com:org/r.git"),
        ("ssh://git@host/r.git", "ssh://git@host/r.git"),
        ("/srv/mirror.git", "/srv/mirror.git"),
    ],
)
def test_remote_urls_lose_their_credentials(url: str, expected: str) -> None:
    assert strip_credentials(url) == expected


def test_cli_attest_and_verify_a_commit(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bastion.cli import main as cli_main

    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "cli-home"))
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "s3cret-passphrase")
    monkeypatch.delenv("BASTION_DATABASE_URL", raising=False)
    for name in ("keys", "attest", "verify"):
        monkeypatch.setitem(cli_main.COMMANDS, name, (f"bastion.cli.{name}", name, name))

    def run(*args: str) -> int:
        try:
            cli_main.main(list(args))
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    bundle = tmp_path / "repo.sigstore.json"
    assert run("keys", "generate", "--name", "ci") == 0
    assert run("attest", f"git:{repo}", "--key", "ci", "-o", str(bundle)) == 0
    assert run("verify", f"git:{repo}", "--bundle", str(bundle)) == 0
    (repo / "config.json").write_text("{}")
    commit(repo, "change")
    capsys.readouterr()
    assert run("verify", f"git:{repo}") == 1  # latest evidence for the repo's name; says what changed
    assert "changed: config.json" in capsys.readouterr().out


def test_bom_of_a_commit_lists_its_tracked_files(repo: Path) -> None:
    from bastion.evidence.bom import bom_for_target

    (repo / "config.json").write_text("uncommitted")
    document, subject = bom_for_target(parse_target(f"git:{repo}"))
    files = {c["name"]: c["hashes"][0]["content"] for c in document["components"]}
    blob = git(repo, "show", "HEAD:config.json").encode()
    assert files["config.json"] == hashlib.sha256(blob).hexdigest()
    assert subject.digests[0].hex == document["metadata"]["component"]["hashes"][0]["content"]

""".gitignore semantics, baselines by fingerprint, inline ignores, detect-secrets and gitleaks files."""

from __future__ import annotations

import hashlib
import json
import random
import string
from pathlib import Path

import pytest

import bastion
from bastion.errors import ConfigError
from bastion.scanners.workspace.baseline import apply_baseline, inline_ignored, load_baseline, write_baseline
from bastion.scanners.workspace.gitignore import IgnoreRules, parse_patterns

RNG = random.Random(3)
SECRET = "ghp_" + "".join(RNG.choice(string.ascii_letters + string.digits) for _ in range(36))


def _rules(text: str, base: str = "") -> IgnoreRules:
    return IgnoreRules([(base, parse_patterns(text))])


@pytest.mark.parametrize(
    ("patterns", "path", "is_dir", "ignored"),
    [
        ("*.log", "a/b/x.log", False, True),
        ("/build", "build/x.py", False, True),
        ("/build", "src/build/x.py", False, False),
        ("build/", "src/build/x.py", False, True),
        ("build/", "build", False, False),
        ("docs/*.md", "docs/a.md", False, True),
        ("docs/*.md", "docs/sub/a.md", False, False),
        ("**/secrets/*.json", "a/b/secrets/k.json", False, True),
        ("data/**", "data/x/y.csv", False, True),
        ("*.env\n!example.env", "example.env", False, False),
        ("*.env\n!example.env", "prod.env", False, True),
        ("\\#notes", "#notes", False, True),
        ("x[0-9].txt", "x7.txt", False, True),
        ("# comment\n\n", "x", False, False),
    ],
)
def test_gitignore_semantics(patterns: str, path: str, is_dir: bool, ignored: bool) -> None:
    assert _rules(patterns).ignored(path, is_dir) is ignored


def test_nested_gitignore_is_relative_to_its_folder() -> None:
    rules = IgnoreRules([("", parse_patterns("*.tmp")), ("sub", parse_patterns("/local.cfg"))])
    assert rules.ignored("sub/local.cfg", False)
    assert not rules.ignored("local.cfg", False)
    assert rules.ignored("sub/deep/a.tmp", False)


def _project(tmp_path: Path, extra_lines: str = "") -> Path:
    (tmp_path / "app.py").write_text(f"{extra_lines}TOKEN = '{SECRET}'\nimport pickle\npickle.load(f)\n")
    return tmp_path


def test_baseline_survives_edits_above_the_finding(tmp_path: Path) -> None:
    root = _project(tmp_path)
    report = bastion.scan(root, families=["workspace"])
    assert {f.rule_id for f in report.findings} == {"BAS-S002", "BAS-C001"}
    base = tmp_path.parent / f"{tmp_path.name}-baseline.json"
    assert write_baseline(report, base) == 2
    assert SECRET not in base.read_text()
    _project(tmp_path, extra_lines="# a new header\n\n\n")
    moved = bastion.scan(root, families=["workspace"], baseline=base)
    assert moved.findings == () and moved.extras["baselined"] == 2
    (tmp_path / "app.py").write_text((tmp_path / "app.py").read_text() + "pickle.loads(b)\n")
    new = bastion.scan(root, families=["workspace"], baseline=base)
    assert [f.rule_id for f in new.findings] == ["BAS-C001"]  # a second occurrence is new


def test_baseline_rejects_other_files(tmp_path: Path) -> None:
    p = tmp_path / "b.json"
    p.write_text(json.dumps({"results": {}}))
    with pytest.raises(ConfigError):
        load_baseline(p)
    report = bastion.scan(_project(tmp_path), families=["workspace"])
    assert apply_baseline(report, frozenset()).findings == report.findings


def test_inline_ignore(tmp_path: Path) -> None:
    assert inline_ignored("x = 1  # bastion: ignore[BAS-S002] test fixture", "BAS-S002")
    assert not inline_ignored("x = 1  # bastion: ignore[BAS-S001] other", "BAS-S002")
    assert inline_ignored("x = 1  # bastion: ignore", "BAS-C001")
    (tmp_path / "a.py").write_text(f"T = '{SECRET}'  # bastion: ignore[BAS-S002] revoked, kept as fixture\n")
    assert bastion.scan(tmp_path, families=["workspace"]).findings == ()


def test_detect_secrets_baseline_and_gitleaksignore(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(f"T = '{SECRET}'\n")
    (tmp_path / "b.py").write_text(f"\n\nT = '{SECRET}'\n")
    (tmp_path / "c.py").write_text(f"T = '{SECRET}'\n")
    sha1 = hashlib.sha1(SECRET.encode()).hexdigest()  # noqa: S324 - detect-secrets' own format
    ds = {
        "version": "1.5.0",
        "results": {"a.py": [{"type": "GitHub Token", "hashed_secret": sha1, "line_number": 1}]},
    }
    (tmp_path / ".secrets.baseline").write_text(json.dumps(ds))
    (tmp_path / ".gitleaksignore").write_text("# accepted\nb.py:github-pat:3\n")
    report = bastion.scan(tmp_path, families=["workspace"])
    assert [f.file for f in report.findings] == ["c.py"]


def test_gitignored_files_are_not_workspace_leaks(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text(".env\nvenv/\n")
    (tmp_path / ".env").write_text(f"GITHUB_TOKEN={SECRET}\n")
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "lib.py").write_text("import pickle\npickle.load(f)\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text(f"url = https://x:{SECRET}@github.com/o/r\n")
    report = bastion.scan(tmp_path, families=["workspace"])
    assert report.findings == ()
    assert any(s.file == "venv/" and "gitignore" in s.reason for s in report.skipped)

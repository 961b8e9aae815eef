"""Dependencies: pins, allowlists, insecure sources, and advisories from an offline OSV snapshot."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

import bastion
from bastion.errors import ConfigError
from bastion.scanners.workspace import dependencies as deps
from bastion.scanners.workspace.advisories import import_osv, load_snapshot, version_key

OSV = {
    "id": "GHSA-test-0001",
    "aliases": ["CVE-2099-0001"],
    "summary": "remote code execution in loader",
    "database_specific": {"severity": "CRITICAL"},
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "Torch"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.6.0"}]}],
        }
    ],
}
OSV2 = {
    "id": "PYSEC-2099-2",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "pyyaml"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "5.1"}, {"last_affected": "5.3.1"}]}],
            "versions": ["4.2b1"],
        },
        {"package": {"ecosystem": "npm", "name": "pyyaml"}, "ranges": []},
    ],
}


@pytest.fixture()
def snapshot(tmp_path: Path) -> Path:
    src = tmp_path / "osv"
    src.mkdir()
    (src / "a.json").write_text(json.dumps(OSV))
    (src / "b.json").write_text(json.dumps(OSV2))
    target = tmp_path / "snap.json"
    meta = import_osv([src], target)
    assert meta["sources"][0]["advisories"] == 2 and len(meta["sources"][0]["sha256"]) == 64
    assert meta["imported_at"]
    return target


def _ids(hits: list[deps.DepHit]) -> list[str]:
    return [h.rule.rule_id for h in hits]


def test_versions_order() -> None:
    order = ["1.0.dev1", "1.0a1", "1.0b2", "1.0rc1", "1.0", "1.0.post1", "1.0.1", "1.10", "2!0.1"]
    keys = [version_key(v) for v in order]
    assert all(k is not None for k in keys)
    assert keys == sorted(keys)  # type: ignore[type-var]
    assert version_key("1.0") == version_key("1.0.0")
    assert version_key("not a version") is None


def test_requirements(snapshot: Path) -> None:
    snap = load_snapshot(snapshot)
    text = (
        "# comment\n"
        "torch==2.3.1\n"
        "torch-geometric==2.6.0  # fine\n"
        "requests\n"
        "numpy>=1.24\n"
        "pyyaml==5.3\n"
        "pyyaml==4.2b1 \\\n    --hash=sha256:abc\n"
        "git+https://github.com/org/pkg.git@main#egg=pkg\n"
        "--extra-index-url https://pypi.internal/simple\n"
        "--index-url http://mirror.internal/simple\n"
        "--trusted-host mirror.internal\n"
        "-r other.txt\n"
    )
    hits = deps.check_requirements(text, None, snap)
    by_line = {(h.line, h.rule.rule_id) for h in hits}
    assert by_line == {
        (2, "BAS-D004"),
        (4, "BAS-D001"),
        (5, "BAS-D002"),
        (6, "BAS-D004"),
        (7, "BAS-D004"),
        (9, "BAS-D005"),
        (10, "BAS-D005"),
        (11, "BAS-D005"),
        (12, "BAS-D005"),
    }
    torch = next(h for h in hits if h.line == 2)
    assert torch.severity is not None and torch.severity.value == "critical"
    assert "CVE-2099-0001" in torch.message and "2.6.0" in torch.message


def test_allowlist() -> None:
    allow = deps.load_allowlist("# approved\ntorch\nNumPy>=1\nscikit_learn\n")
    hits = deps.check_requirements("torch==2.6.0\nnumpy==2.0\nscikit-learn==1.5\nleftpad==0.1\n", allow, None)
    assert [(h.line, h.rule.rule_id) for h in hits] == [(4, "BAS-D003")]


def test_pyproject_and_poetry() -> None:
    text = (
        '[project]\nname = "app"\ndependencies = ["torch>=2.6", "requests", "app[dev]"]\n'
        '[project.optional-dependencies]\ndev = ["pytest"]\n'
        '[tool.poetry.dependencies]\npython = "^3.11"\npandas = "*"\nnumpy = "^2.0"\n'
    )
    hits = deps.check_pyproject(text, None, None)
    assert sorted((h.line, h.rule.rule_id) for h in hits) == [
        (3, "BAS-D001"),
        (5, "BAS-D001"),
        (8, "BAS-D001"),
    ]
    with pytest.raises(Exception, match="pyproject"):
        deps.check_pyproject("[project\n", None, None)


def test_lock_files(snapshot: Path) -> None:
    snap = load_snapshot(snapshot)
    poetry = (
        '[[package]]\nname = "torch"\nversion = "2.5.1"\n\n[[package]]\nname = "numpy"\nversion = "2.0.0"\n'
    )
    assert _ids(deps.check_lock("poetry.lock", poetry, None, snap)) == ["BAS-D004"]
    pipfile = json.dumps(
        {"default": {"torch": {"version": "==2.6.0"}}, "develop": {"pyyaml": {"version": "==5.2"}}}
    )
    assert _ids(deps.check_lock("Pipfile.lock", pipfile, None, snap)) == ["BAS-D004"]


def test_import_from_zip_and_reject_garbage(tmp_path: Path) -> None:
    z = tmp_path / "all.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("GHSA-test-0001.json", json.dumps(OSV))
    meta = import_osv([z], tmp_path / "s.json")
    assert meta["packages"] == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError):
        import_osv([bad], tmp_path / "s2.json")


def test_advisories_cli_import_and_status(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bastion.cli.advisories import advisories

    src = tmp_path / "osv.json"
    src.write_text(json.dumps([OSV, OSV2]))
    snap = tmp_path / "snap.json"
    runner = CliRunner()
    result = runner.invoke(advisories, ["import", str(src), "--snapshot", str(snap)])
    assert result.exit_code == 0, result.output
    assert "imported 2 PyPI advisories for 2 packages" in result.output
    status = runner.invoke(advisories, ["status", "--snapshot", str(snap)])
    assert status.exit_code == 0 and "sha256:" in status.output
    req = tmp_path / "requirements.txt"
    req.write_text("torch==2.5.0\n")
    from bastion.scanners.workspace.config import load_config

    report = bastion.scan(
        req, families=["workspace"], workspace_config=load_config(tmp_path, advisories=snap)
    )
    assert [f.rule_id for f in report.findings] == ["BAS-D004"]


def _environment(prefix: Path, dists: dict[str, str]) -> Path:
    """A Python environment as installers leave it on disk: ``*.dist-info/METADATA`` per distribution."""
    site = prefix / "lib" / "python3.11" / "site-packages"
    for name, version in dists.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nbody\n")
    (site / "broken-1.0.dist-info").mkdir()  # no METADATA: not a distribution, nothing to judge
    return prefix


def test_installed_packages_of_an_environment(tmp_path: Path, snapshot: Path) -> None:
    from bastion.scanners.workspace.config import load_config

    env = _environment(
        tmp_path / "venv", {"torch": "2.5.0", "PyYAML": "5.2", "numpy": "2.1.0", "leftpad": "0.1"}
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "approved.txt").write_text("torch\npyyaml\nnumpy\n")
    (project / ".bastion.toml").write_text('[workspace]\npackage-allowlist = "approved.txt"\n')
    config = load_config(project, advisories=snapshot)
    report = bastion.scan(project, environments=[env], workspace_config=config)
    got = sorted((Path(f.file).parent.name, f.rule_id) for f in report.findings)
    assert got == [
        ("PyYAML-5.2.dist-info", "BAS-D004"),  # inside PYSEC-2099-2's 5.1..5.3.1 range
        ("leftpad-0.1.dist-info", "BAS-D003"),  # not on the allowlist
        ("torch-2.5.0.dist-info", "BAS-D004"),  # fixed in 2.6.0
    ]
    assert report.extras["distributions"] == 4
    assert not report.problems


def test_environment_needs_the_workspace_checks(tmp_path: Path) -> None:
    from bastion.errors import InputError

    env = _environment(tmp_path / "venv", {"torch": "2.5.0"})
    with pytest.raises(InputError, match="--environment"):
        bastion.scan(tmp_path, families=["model"], environments=[env])
    from bastion.evidence.errors import TargetError

    with pytest.raises(TargetError, match="does not look like a Python environment"):
        bastion.scan(tmp_path, environments=[tmp_path / "not-a-venv"])

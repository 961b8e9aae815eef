"""End to end: the demo's sample workspace through the engine, the CLI, JSON and SARIF."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

import bastion
from bastion.cli.app import cli
from bastion.core import Verdict
from bastion.demo.workspace_stage import SampleWorkspace, run_workspace_stage, write_sample_workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> SampleWorkspace:
    return write_sample_workspace(tmp_path_factory.mktemp("ws") / "project")


def _secrets_in(root: Path) -> list[str]:
    """Every planted secret value, read back from the files (to prove none reaches the output)."""
    text = (root / "notebooks" / "explore.ipynb").read_text()
    start = text.index("sk-proj-")
    url = (root / "train.py").read_text().split("trainer:", 1)[1].split("@", 1)[0]
    return [text[start : start + 56], url]


@pytest.mark.parametrize("workers", [1, 2])
def test_every_planted_finding_and_no_decoy(ws: SampleWorkspace, workers: int) -> None:
    report = bastion.scan(ws.root, workers=workers)  # auto: a project folder gets workspace checks
    found = {(f.file, f.rule_id) for f in report.findings}
    assert found == ws.planted
    assert not {f.file for f in report.findings} & ws.decoy_files
    assert report.verdict is Verdict.UNSAFE
    assert report.problems == ()


def test_demo_stage_passes(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_workspace_stage(Console(file=out, width=120), tmp_path)
    assert "Found 11/11 planted problems, 0 reports on decoys" in out.getvalue()


def test_only_model_ignores_the_workspace(ws: SampleWorkspace) -> None:
    report = bastion.scan(ws.root, families=["model"])
    assert report.findings == ()


def test_cli_json_masks_secrets_and_exits_1(ws: SampleWorkspace) -> None:
    result = CliRunner().invoke(cli, ["scan", str(ws.root), "--only", "workspace", "--format", "json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    cats = {f["category"] for f in doc["findings"]}
    assert cats == {"secret", "pii", "unsafe_code", "dockerfile"}
    for secret in _secrets_in(ws.root):
        assert secret not in result.output
    nb = next(f for f in doc["findings"] if f["rule_id"] == "BAS-S007")
    assert nb["member"] == "cell 2 output 1, line 1" and isinstance(nb["line"], int)


def test_cli_sarif_and_baseline_roundtrip(ws: SampleWorkspace, tmp_path: Path) -> None:
    base = tmp_path / "baseline.json"
    runner = CliRunner()
    first = runner.invoke(
        cli, ["scan", str(ws.root), "--only", "workspace", "--write-baseline", str(base), "-f", "sarif"]
    )
    assert first.exit_code == 1
    sarif = json.loads(first.stdout)
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} >= {"BAS-S007", "BAS-P003", "BAS-K003"}
    again = runner.invoke(
        cli, ["scan", str(ws.root), "--only", "workspace", "--baseline", str(base), "-f", "json"]
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["findings"] == []


def test_json_report_validates_against_schema(ws: SampleWorkspace) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from importlib import resources

    from bastion.render.json_report import render_json

    schema = json.loads(resources.files("bastion.render").joinpath("scan-report.schema.json").read_text())
    jsonschema.validate(json.loads(render_json(bastion.scan(ws.root, families=["workspace"]))), schema)


def test_bad_input_never_crashes(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text("print 'python 2'\n")
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9 " * 10 + b"password = 'Zq8mR2vLp9xW'\n")
    (tmp_path / "bin.dat").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "huge_line.json").write_text('{"w": "' + "QUJD" * 500_000 + '"}')
    (tmp_path / "Dockerfile").write_text("FROM\n\\\n")
    (tmp_path / "requirements.txt").write_text("===\n[[[\n")
    (tmp_path / "pyproject.toml").write_text("[project\n")
    report = bastion.scan(tmp_path)
    assert {p.file for p in report.problems} == {"setup.py", "pyproject.toml"}
    assert [f.file for f in report.findings] == ["latin.txt"]

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bastion import __version__
from bastion.cli.app import cli
from bastion.cli.main import COMMANDS
from tests.conftest import pickle_call

HEAVY = ("numpy", "torch", "sklearn", "tensorflow", "h5py", "onnx", "safetensors", "rich", "joblib", "scipy")


def _modules_after(code: str) -> set[str]:
    out = (
        subprocess.run(
            [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return set(json.loads(out))


def test_importing_the_cli_loads_no_heavy_module() -> None:
    loaded = _modules_after("import bastion.cli.main")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_json_scan_of_a_pickle_loads_no_framework(tmp_path: Path) -> None:
    target = tmp_path / "m.pkl"
    target.write_bytes(pickle_call("os", "system"))
    code = (
        "from bastion.cli.main import main\n"
        "try:\n"
        f"    main(['scan', {str(target)!r}, '--format', 'json'])\n"
        "except SystemExit:\n"
        "    pass"
    )
    loaded = _modules_after(code)
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_help_starts_fast() -> None:
    """Start-up budget is 0.2 s on a quiet machine; allow for a noisy shared CI box."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bastion", "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    assert sorted(times)[2] < 0.6


def test_bad_fail_on_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["scan", str(tmp_path), "--fail-on", "severe"])
    assert result.exit_code == 2
    assert "unknown severity" in result.output


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bastion", "scan", str(tmp_path / "nope.pt")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_scan_exit_codes_and_output_file(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle_call("os", "system"))
    out = tmp_path / "report.sarif"
    result = CliRunner().invoke(cli, ["scan", str(evil), "--format", "sarif", "-o", str(out)])
    assert result.exit_code == 1
    doc = json.loads(out.read_text())
    assert doc["runs"][0]["results"][0]["properties"]["callable"] == "os.system"


def test_text_output_unsupported(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# hello\n")
    result = CliRunner().invoke(cli, ["scan", str(tmp_path)])
    assert result.exit_code == 3
    assert "NOTHING SCANNABLE" in result.output

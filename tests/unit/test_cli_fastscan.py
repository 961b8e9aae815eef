"""The Click-free fast path of ``bastion scan`` (bastion.cli.fastscan): where it runs, it must be
indistinguishable from the Click command (same request, exit code, output); everywhere else it must
decline and leave the command line to Click."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import click
import pytest

from bastion.cli import fastscan
from bastion.cli.app import cli
from bastion.cli.scan import scan as scan_command
from bastion.cli.scan_run import FAMILIES, FORMATS, ScanRequest
from tests.conftest import benign_pickle, pickle_call


def _torch_zip(data_pkl: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", b"\x00" * 64)
        z.writestr("archive/version", "3\n")
        z.writestr("archive/.data/serialization_id", "0760530726789829938111114007459246324676")
    return buf.getvalue()


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    models = tmp_path / "models"
    models.mkdir()
    (models / "benign.pkl").write_bytes(benign_pickle())
    (models / "evil.pkl").write_bytes(pickle_call("os", "system"))
    (models / "model.pt").write_bytes(_torch_zip(benign_pickle()))
    (models / "evil.pt").write_bytes(_torch_zip(pickle_call("subprocess", "check_output")))
    (tmp_path / "notes.md").write_text("# hello\n")
    return {
        "benign": models / "benign.pkl",
        "evil": models / "evil.pkl",
        "torch": models / "model.pt",
        "evil_torch": models / "evil.pt",
        "dir": models,
        "notes": tmp_path / "notes.md",
        "out": tmp_path / "report.out",
        "tmp": tmp_path,
    }


def _argv(template: list[str], files: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in files.items()}) for a in template]


# argv the fast path runs; each must behave exactly as the Click command
RUN_CASES: dict[str, list[str]] = {
    "benign-json": ["scan", "{benign}", "--format", "json"],
    "evil-json": ["scan", "{evil}", "--format=json", "--no-progress"],
    "evil-text": ["scan", "{evil}", "--no-progress"],
    "benign-text": ["scan", "{benign}"],
    "evil-sarif": ["scan", "{evil}", "-f", "sarif"],
    "torch-json": ["scan", "{torch}", "--no-progress", "--format", "json"],
    "evil-torch-text": ["scan", "{evil_torch}", "-f", "text"],
    "folder": ["scan", "{dir}", "--format", "json", "--no-progress"],
    "several": ["scan", "{benign}", "{evil}", "{torch}", "-f", "json"],
    "options-first": ["scan", "--format", "json", "--fail-on", "medium", "{evil}"],
    "fail-on-critical": ["scan", "{evil}", "--fail-on", "critical", "-f", "json"],
    "fail-on-upper": ["scan", "{evil_torch}", "--fail-on=LOW", "-f", "json"],
    "fail-on-info": ["scan", "{benign}", "--fail-on", "info", "-f", "sarif"],
    "output-sarif": ["scan", "{evil}", "-o", "{out}", "--format", "sarif"],
    "output-json": ["scan", "{torch}", "--output={out}", "-f", "json"],
    "output-text": ["scan", "{evil}", "--output", "{out}"],
    "only-model": ["scan", "{dir}", "--only", "model", "-f", "json"],
    "only-workspace": ["scan", "{notes}", "--only=workspace", "-f", "json"],
    "nothing-scannable": ["scan", "{notes}", "-f", "json"],
    "same-path-twice": ["scan", "{benign}", "{benign}", "-f", "json"],
}


def _normalise(text: str) -> Any:
    """Output without what differs between two runs of the same scan: the time it took."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        # Rich may wrap the line before the duration: match any whitespace around it
        return re.sub(r"\bin(\s+)\d+\.\d+s", r"in\1Xs", text)

    def drop(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: drop(v) for k, v in value.items() if k != "duration_s"}
        if isinstance(value, list):
            return [drop(v) for v in value]
        return value

    return drop(doc)


def _via_click(argv: list[str]) -> int:
    try:
        cli.main(args=argv, prog_name="bastion", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    raise AssertionError("the Click command did not exit")


@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_fast_path_matches_click(
    case: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _argv(RUN_CASES[case], files)
    out_file = files["out"]

    fast_code = fastscan.fast_scan(argv)
    fast_out, fast_err = capsys.readouterr()
    fast_file = out_file.read_text() if out_file.exists() else None
    out_file.unlink(missing_ok=True)

    click_code = _via_click(argv)
    click_out, click_err = capsys.readouterr()
    click_file = out_file.read_text() if out_file.exists() else None

    assert fast_code is not None, "the fast path declined an invocation it should run"
    assert fast_code == click_code
    assert _normalise(fast_out) == _normalise(click_out)
    assert fast_err == click_err
    assert (fast_file is None) == (click_file is None)
    if fast_file is not None and click_file is not None:
        assert _normalise(fast_file) == _normalise(click_file)
    if "-o" in argv or any(a.startswith("--output") for a in argv):
        assert fast_file is not None and fast_out == ""


@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_fast_path_builds_the_request_click_builds(
    case: str, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every field, including those the fast path never sets, equals what Click passes on."""
    argv = _argv(RUN_CASES[case], files)
    seen: list[ScanRequest] = []

    def capture(request: ScanRequest) -> int:
        seen.append(request)
        return 0

    monkeypatch.setattr("bastion.cli.scan.run_scan", capture)
    assert _via_click(argv) == 0
    assert seen == [fastscan.parse(argv)]


DECLINED: dict[str, list[str]] = {
    "no-args": [],
    "no-paths": ["scan"],
    "only-options": ["scan", "--format", "json"],
    "other-command": ["gate", "{evil}"],
    "group-option-first": ["--version", "scan", "{evil}"],
    "help": ["scan", "--help"],
    "help-after-path": ["scan", "{evil}", "--help"],
    "short-help": ["scan", "{evil}", "-h"],
    "unknown-option": ["scan", "{evil}", "--frobnicate"],
    "unhandled-option": ["scan", "{evil}", "--strict"],
    "unhandled-short": ["scan", "{evil}", "-j", "2"],
    "double-dash": ["scan", "--", "{evil}"],
    "missing-path": ["scan", "{tmp}/nope.pt"],
    "one-path-missing": ["scan", "{evil}", "{tmp}/nope.pt"],
    "empty-path": ["scan", ""],
    "dash-path": ["scan", "-"],
    "bad-format": ["scan", "{evil}", "--format", "xml"],
    "bad-format-case": ["scan", "{evil}", "--format", "JSON"],
    "bad-fail-on": ["scan", "{evil}", "--fail-on", "severe"],
    "bad-only": ["scan", "{evil}", "--only", "secrets"],
    "missing-value": ["scan", "{evil}", "--format"],
    "empty-value": ["scan", "{evil}", "--format="],
    "option-as-value": ["scan", "{evil}", "-o", "--format"],
    "glued-short": ["scan", "{evil}", "-fjson"],
    "short-with-equals": ["scan", "{evil}", "-f=json"],
    "flag-with-value": ["scan", "{evil}", "--no-progress=yes"],
    "repeated-format": ["scan", "{evil}", "-f", "json", "--format", "text"],
    "repeated-progress": ["scan", "{evil}", "--progress", "--no-progress"],
    "output-is-folder": ["scan", "{evil}", "-o", "{tmp}"],
}


@pytest.mark.parametrize("case", sorted(DECLINED))
def test_fast_path_declines(case: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    argv = _argv(DECLINED[case], files)
    assert fastscan.parse(argv) is None
    assert fastscan.fast_scan(argv) is None
    assert capsys.readouterr() == ("", "")


def test_fast_path_declines_shell_completion(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fastscan.COMPLETION_VAR, "bash_complete")
    assert fastscan.parse(["scan", str(files["evil"])]) is None


def test_declined_invocations_still_get_clicks_errors(files: dict[str, Path]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bastion", "scan", str(files["evil"]), "--format", "xml"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Invalid value for '--format'" in proc.stderr


def test_option_tables_match_the_click_command() -> None:
    params = {p.name: p for p in scan_command.params}
    spellings: dict[str, set[str]] = {}
    for spelling, dest in fastscan.VALUE_OPTIONS.items():
        spellings.setdefault(dest, set()).add(spelling)
        param = params[dest]
        assert isinstance(param, click.Option)
        assert not param.is_flag and not param.multiple and param.nargs == 1
    for spelling, (dest, value) in fastscan.FLAG_OPTIONS.items():
        spellings.setdefault(dest, set()).add(spelling)
        param = params[dest]
        assert isinstance(param, click.Option) and param.is_flag
        assert (spelling in param.opts) is value and (spelling in param.secondary_opts) is not value
    for dest, names in spellings.items():
        param = params[dest]
        assert names == {*param.opts, *param.secondary_opts}, f"{dest}: an alias the fast path misses"
    # values: the same choices; nothing Click would read from the environment
    fmt, only = params["fmt"].type, params["only"].type
    assert isinstance(fmt, click.Choice) and tuple(fmt.choices) == FORMATS
    assert isinstance(only, click.Choice) and tuple(only.choices) == FAMILIES
    assert all(p.envvar is None for p in scan_command.params)
    assert "auto_envvar_prefix" not in cli.context_settings
    assert "auto_envvar_prefix" not in scan_command.context_settings
    paths = params["paths"]
    assert isinstance(paths, click.Argument) and paths.nargs == -1 and paths.required


def _modules_after(code: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    )
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_fast_json_and_sarif_scans_import_neither_click_nor_rich(files: dict[str, Path], fmt: str) -> None:
    code = (
        "from bastion.cli.main import main\n"
        "try:\n"
        f"    main(['scan', {str(files['evil_torch'])!r}, '--format', {fmt!r}, '--no-progress'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 1, exc.code"
    )
    loaded = _modules_after(code)
    assert "bastion.scanners.pickle" in loaded  # the scan really ran
    assert not {m for m in loaded if m.split(".")[0] in ("click", "rich")}
    # a torch zip's text members (digits that open like a protobuf tag) import no protobuf parser
    assert not {"bastion.scanners.onnx", "bastion.scanners.savedmodel"} & loaded


@pytest.mark.parametrize("target", ["benign", "torch"])
def test_one_file_scan_imports_only_what_it_needs(files: dict[str, Path], target: str) -> None:
    """A CI job scanning one model file per process pays for every import: the worker pool, the
    workspace checks and joblib's dtype arithmetic belong to other scans."""
    code = (
        "from bastion.cli.main import main\n"
        "try:\n"
        f"    main(['scan', {str(files[target])!r}, '--format', 'json', '--no-progress'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code"
    )
    loaded = _modules_after(code)
    assert "bastion.scanners.pickle" in loaded  # the scan really ran
    unneeded = (
        "multiprocessing",
        "concurrent.futures",
        "bastion.scanners.workspace",
        "bastion.scanners.pickle.dtypes",
    )
    assert not {m for m in loaded if m.startswith(unneeded)}


def test_importing_the_entry_point_imports_no_click() -> None:
    assert "click" not in _modules_after("import bastion.cli.main")


def test_interrupt_ends_as_under_click(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(_request: ScanRequest) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("bastion.cli.fastscan.run_scan", interrupted)
    monkeypatch.setattr("bastion.cli.scan.run_scan", interrupted)
    argv = ["scan", str(files["evil"]), "-f", "json"]
    assert fastscan.fast_scan(argv) == 1
    fast = capsys.readouterr()
    assert _via_click(argv) == 1
    assert fast == capsys.readouterr()
    assert fast.err == "\nAborted!\n"


def _console_script(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``main()`` as the console script does (no argv: it reads sys.argv), with the standard
    streams buffered as they are by default (some machines set PYTHONUNBUFFERED)."""
    code = f"import sys\nfrom bastion.cli.main import main\nsys.argv = ['bastion', *{args!r}]\nmain()\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60, env=env
    )


def test_console_script_exits_without_teardown_and_loses_no_output(files: dict[str, Path]) -> None:
    """The console script ends a fast-path scan with os._exit (no interpreter teardown): every
    byte written to stdout, stderr and ``-o`` must still be there, and the exit code unchanged."""
    proc = _console_script(["scan", str(files["dir"]), "--format", "json", "--no-progress"])
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["verdict"] == "unsafe" and len(report["findings"]) >= 2

    # a report smaller than the stream's buffer: only the explicit flush writes it
    proc = _console_script(["scan", str(files["benign"]), "--format", "json", "--no-progress"])
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout) < 8192 and json.loads(proc.stdout)["verdict"] == "safe"

    proc = _console_script(["scan", str(files["benign"]), "--format", "sarif", "-o", str(files["out"])])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert json.loads(files["out"].read_text())["version"] == "2.1.0"

    proc = _console_script(["scan", str(files["evil"]), "--no-progress"])  # text, through Rich
    assert proc.returncode == 1
    assert "UNSAFE" in proc.stdout and proc.stdout.endswith("\n")

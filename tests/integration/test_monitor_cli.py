"""``bastion monitor`` end to end through click: files in, reports and exit codes out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from bastion.cli.monitor import monitor
from bastion.monitor.synthetic import apply_scenario, make_table


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("monitor")
    train = root / "train.csv"
    pacsv.write_csv(make_table(20_000, n_numeric=6, n_categorical=2, seed=0), train)
    clean = root / "clean.parquet"
    pq.write_table(make_table(5_000, n_numeric=6, n_categorical=2, seed=1), clean)
    drifted = root / "drifted.jsonl"
    table = apply_scenario(make_table(5_000, n_numeric=6, n_categorical=2, seed=2), "mean_shift").table
    drifted.write_text("\n".join(json.dumps(r) for r in table.to_pylist()) + "\n", encoding="utf-8")
    tiny = root / "tiny.csv"
    pacsv.write_csv(make_table(5, n_numeric=6, n_categorical=2, seed=3), tiny)
    return {"root": root, "train": train, "clean": clean, "drifted": drifted, "tiny": tiny}


@pytest.fixture()
def baseline(data: dict[str, Path], tmp_path: Path) -> Path:
    out = tmp_path / "baseline"
    result = CliRunner().invoke(monitor, ["baseline", "--data", str(data["train"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_baseline_writes_sagemaker_compatible_files(baseline: Path) -> None:
    stats = json.loads((baseline / "statistics.json").read_text())
    assert stats["dataset"]["item_count"] == 20_000
    num = next(f for f in stats["features"] if f["name"] == "num_00")
    assert num["inferred_type"] == "Fractional"
    assert set(num["numerical_statistics"]) >= {
        "common",
        "mean",
        "sum",
        "std_dev",
        "min",
        "max",
        "distribution",
    }
    assert num["numerical_statistics"]["common"] == {"num_present": 20_000, "num_missing": 0}
    assert "kll" in num["numerical_statistics"]["distribution"]
    cat = next(f for f in stats["features"] if f["name"] == "cat_00")
    assert cat["inferred_type"] == "String"
    assert cat["string_statistics"]["distribution"]["categorical"]["buckets"]
    constraints = json.loads((baseline / "constraints.json").read_text())
    assert constraints["monitoring_config"]["distribution_constraints"]["perform_comparison"] == "Enabled"
    count = next(f for f in constraints["features"] if f["name"] == "num_03")
    assert count["inferred_type"] == "Integral" and count["num_constraints"] == {"is_non_negative": True}
    assert next(f for f in constraints["features"] if f["name"] == "cat_00")["string_constraints"]["domains"]
    assert json.loads((baseline / "bastion-baseline.json").read_text())["schema_version"].endswith("/1")


@pytest.mark.parametrize(
    ("window", "code", "status"),
    [("clean", 0, "OK"), ("drifted", 1, "ALARM"), ("tiny", 3, "INSUFFICIENT_DATA")],
)
def test_check_json_and_exit_codes(
    data: dict[str, Path], baseline: Path, window: str, code: int, status: str
) -> None:
    result = CliRunner().invoke(
        monitor, ["check", "--baseline", str(baseline), "--data", str(data[window]), "--format", "json"]
    )
    assert result.exit_code == code, result.output
    doc = json.loads(result.output)
    assert doc["status"] == status and doc["schema_version"] == "bastion.monitor.check/1"
    if window == "drifted":
        assert doc["drifted_columns"] == ["num_00", "num_01", "num_02"]
        column = doc["columns"]["num_00"]
        assert set(column) >= {"drift", "method", "statistic", "threshold", "p_value"}
        assert column["drift"] is True and column["statistic"] >= column["threshold"]
        assert {v["feature_name"] for v in doc["violations"]} >= {"num_00", "num_01", "num_02"}
        assert all(
            set(v) >= {"feature_name", "constraint_check_type", "description"} for v in doc["violations"]
        )


def test_check_text_and_html(data: dict[str, Path], baseline: Path, tmp_path: Path) -> None:
    text = CliRunner().invoke(monitor, ["check", "--baseline", str(baseline), "--data", str(data["drifted"])])
    assert text.exit_code == 1
    assert "status: ALARM" in text.output and "drifted columns: num_00, num_01, num_02" in text.output
    page = tmp_path / "report.html"
    html = CliRunner().invoke(
        monitor,
        [
            "check",
            "--baseline",
            str(baseline),
            "--data",
            str(data["drifted"]),
            "--format",
            "html",
            "-o",
            str(page),
        ],
    )
    assert html.exit_code == 1
    content = page.read_text()
    assert content.startswith("<!doctype html>") and content.count("<svg") == 8
    assert "<script" not in content and "http" not in content.replace("http://www.w3.org/2000/svg", "")


def test_errors_exit_2_with_a_diagnosis(data: dict[str, Path], tmp_path: Path, baseline: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01")
    result = CliRunner().invoke(monitor, ["baseline", "--data", str(bad), "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "binary" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(monitor, ["check", "--baseline", str(tmp_path / "none"), "--data", str(bad)])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_merge_of_partition_baselines(data: dict[str, Path], baseline: Path, tmp_path: Path) -> None:
    part = tmp_path / "part"
    CliRunner().invoke(monitor, ["baseline", "--data", str(data["clean"]), "--out", str(part)])
    merged = tmp_path / "merged"
    result = CliRunner().invoke(monitor, ["merge", str(baseline), str(part), "--out", str(merged)])
    assert result.exit_code == 0, result.output
    stats = json.loads((merged / "statistics.json").read_text())
    assert stats["dataset"]["item_count"] == 25_000
    check = CliRunner().invoke(monitor, ["check", "--baseline", str(merged), "--data", str(data["clean"])])
    assert check.exit_code == 0, check.output


def test_alarm_workflow(
    data: dict[str, Path], baseline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    assert runner.invoke(monitor, ["alarm-set", "inputs", "-n", "2", "-m", "2"]).exit_code == 0
    bad = runner.invoke(monitor, ["alarm-set", "x", "--webhook", "ftp://example.org"])
    assert bad.exit_code == 2 and "http" in bad.output
    for window in ("drifted", "drifted"):
        runner.invoke(
            monitor,
            ["check", "--baseline", str(baseline), "--data", str(data[window]), "--monitor", "inputs"],
        )
    listed = json.loads(runner.invoke(monitor, ["alarms", "--format", "json"]).output)
    assert [(a["name"], a["state"]) for a in listed["alarms"]] == [("inputs", "ALARM")]
    history = json.loads(runner.invoke(monitor, ["history", "inputs", "--format", "json"]).output)
    assert [e["state_after"] for e in history["evaluations"]] == ["INSUFFICIENT_DATA", "ALARM"]
    assert (tmp_path / "home" / "monitor.db").is_file()


def test_importing_the_monitor_cli_is_light() -> None:
    code = "import sys, bastion.cli.monitor, bastion.monitor; print(sorted(m for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    loaded = {name.split(".")[0] for name in out.strip("[]\n").replace("'", "").split(", ")}
    assert not loaded & {"numpy", "pyarrow", "pandas", "scipy", "polars"}


def test_every_subcommand_has_help() -> None:
    for name in monitor.commands:
        result = CliRunner().invoke(monitor, [name, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output

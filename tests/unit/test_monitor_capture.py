"""Reading the gateway's captured traffic: layout, time window, metadata and outputs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from bastion.cli.app import cli
from bastion.errors import InputError, UsageError
from bastion.monitor import baseline_from_batches, write_baseline
from bastion.monitor.capture import CaptureReader, parse_time
from bastion.monitor.check import Status, check_batches

START = dt.datetime(2026, 11, 27, 22, 0, tzinfo=dt.UTC)


def write_capture(
    root: Path,
    model: str,
    rows: int,
    *,
    start: dt.datetime = START,
    step: dt.timedelta = dt.timedelta(seconds=10),
    shift: float = 0.0,
    seed: int = 0,
    proba: bool = False,
    per_file: int = 500,
) -> list[dt.datetime]:
    """Rows as the gateway writes them: <root>/<model>/<YYYY-MM-DD>/<file>.jsonl, one row a line."""
    rng = np.random.default_rng(seed)
    times = []
    handles: dict[Path, Any] = {}
    try:
        for i in range(rows):
            at = start + i * step
            times.append(at)
            amount = float(rng.lognormal(3.0, 0.5)) + shift
            score = 1.0 / (1.0 + np.exp(-(amount - 20.0) / 5.0))
            record: dict[str, Any] = {
                "_time": at.isoformat().replace("+00:00", "Z"),
                "_request_id": f"req-{i}",
                "_model": model,
                "_version": "1.2.0",
                "amount": amount,
                "country": ["fr", "de", "us"][int(rng.integers(0, 3))],
                "prediction": [round(1 - score, 6), round(score, 6)] if proba else int(score > 0.5),
            }
            path = root / model / at.date().isoformat() / f"part-{i // per_file:05d}.jsonl"
            if path not in handles:
                path.parent.mkdir(parents=True, exist_ok=True)
                handles[path] = path.open("w", encoding="utf-8")
            handles[path].write(json.dumps(record) + "\n")
    finally:
        for handle in handles.values():
            handle.close()
    return times


def test_reads_the_model_folder_drops_metadata_and_keeps_the_prediction(tmp_path: Path) -> None:
    write_capture(tmp_path, "fraud", 1_000)
    write_capture(tmp_path, "other", 50, seed=1)
    reader = CaptureReader(tmp_path, "fraud")
    batches = list(reader)
    names = set().union(*(b.schema.names for b in batches))
    assert names == {"amount", "country", "prediction"}
    assert sum(b.num_rows for b in batches) == 1_000
    summary = reader.summary
    assert summary.days == ["2026-11-27", "2026-11-28"] and summary.files == 3
    assert (summary.rows_read, summary.rows_kept, summary.rows_outside) == (1_000, 1_000, 0)


def test_time_window_selects_day_folders_and_rows(tmp_path: Path) -> None:
    times = write_capture(tmp_path, "fraud", 2_000)  # 22:00 on the 27th, every 10 s, for 5.5 hours
    since, until = times[400], times[1_500]
    reader = CaptureReader(tmp_path, "fraud", since, until)
    assert sum(b.num_rows for b in reader) == 1_100  # [since, until): the end is excluded
    assert reader.summary.rows_outside == reader.summary.rows_read - 1_100
    only_28th = CaptureReader(tmp_path, "fraud", dt.datetime(2026, 11, 28, tzinfo=dt.UTC))
    assert sum(b.num_rows for b in only_28th) == 2_000 - 720
    assert only_28th.summary.days == ["2026-11-28"]  # the 27th's folder is not even opened
    assert only_28th.summary.rows_read == 2_000 - 720  # the files of the 28th, nothing else read


def test_list_predictions_become_numeric_output_columns(tmp_path: Path) -> None:
    write_capture(tmp_path, "fraud", 300, proba=True)
    batch = next(iter(CaptureReader(tmp_path, "fraud")))
    assert {"prediction_0", "prediction_1"} <= set(batch.schema.names)
    p0, p1 = (batch.column(n).to_numpy(zero_copy_only=False) for n in ("prediction_0", "prediction_1"))
    np.testing.assert_allclose(p0 + p1, 1.0, atol=1e-5)


def test_partial_last_line_other_models_rows_and_rows_without_time(tmp_path: Path) -> None:
    write_capture(tmp_path, "fraud", 100)
    day = tmp_path / "fraud" / "2026-11-27"
    with (day / "part-00000.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"_time": "2026-11-27T22:30:00Z", "_model": "other", "amount": 1.0}) + "\n")
        handle.write(json.dumps({"amount": 2.0, "country": "fr", "prediction": 0}) + "\n")  # no _time
        handle.write('{"_time": "2026-11-27T22:31:00Z", "amou')  # the gateway is still writing
    (tmp_path / "fraud" / "notes").mkdir()
    (day / "empty.jsonl").touch()
    reader = CaptureReader(tmp_path, "fraud", since=START)
    assert sum(b.num_rows for b in reader) == 100
    s = reader.summary
    assert (s.rows_outside, s.rows_without_time, s.partial_lines) == (1, 1, 1)
    assert any("notes" in x for x in s.skipped) and any("empty" in x for x in s.skipped)


def test_naive_and_offset_times_are_utc(tmp_path: Path) -> None:
    folder = tmp_path / "m" / "2026-11-28"
    folder.mkdir(parents=True)
    lines = [
        {"_time": "2026-11-28T10:00:00", "x": 1.0},  # no offset: UTC
        {"_time": "2026-11-28T12:30:00+02:00", "x": 2.0},  # 10:30 UTC
        {"_time": "not a time", "x": 3.0},
        {"_time": "2026-11-28T11:00:00.5Z", "x": 4.0},
    ]
    (folder / "a.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    reader = CaptureReader(tmp_path, "m", parse_time("2026-11-28T10:15Z"), parse_time("2026-11-28T11:00:01"))
    values = [v for b in reader for v in b.column("x").to_pylist()]
    assert values == [2.0, 4.0] and reader.summary.rows_without_time == 1
    assert parse_time("2026-11-28") == dt.datetime(2026, 11, 28, tzinfo=dt.UTC)


def test_bad_names_and_missing_folders_are_rejected(tmp_path: Path) -> None:
    write_capture(tmp_path, "fraud", 10)
    for name in ("../etc", "", ".", ".hidden", "a/b"):
        with pytest.raises(UsageError):
            CaptureReader(tmp_path, name)
    with pytest.raises(InputError, match="no capture for model 'nope'") as caught:
        list(CaptureReader(tmp_path, "nope"))
    assert "models captured: fraud" in caught.value.diagnostics()
    with pytest.raises(UsageError, match="later"):
        CaptureReader(tmp_path, "fraud", START, START)
    (tmp_path / "fraud" / "2026-11-27" / "x.parquet").write_bytes(b"PAR1....PAR1")
    with pytest.raises(InputError, match="not JSON lines"):
        list(CaptureReader(tmp_path, "fraud"))


def test_outputs_are_drift_checked_from_capture(tmp_path: Path) -> None:
    times = write_capture(tmp_path, "fraud", 6_000, step=dt.timedelta(seconds=1))
    base = baseline_from_batches(CaptureReader(tmp_path, "fraud", until=times[3_000]))
    assert set(base.profile.columns) == {"amount", "country", "prediction"}
    clean = check_batches(base, CaptureReader(tmp_path, "fraud", since=times[3_000]))
    assert clean.status is Status.OK, clean.violations
    later = START + dt.timedelta(days=1)
    write_capture(tmp_path, "fraud", 3_000, start=later, shift=15.0, seed=3)  # inputs and outputs move
    drifted = check_batches(base, CaptureReader(tmp_path, "fraud", since=later))
    assert drifted.status is Status.ALARM
    assert {"amount", "prediction"} <= set(drifted.drifted_columns)


def test_cli_check_and_baseline_from_capture(tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    times = write_capture(capture, "fraud", 4_000, step=dt.timedelta(seconds=1))
    runner = CliRunner()
    out = runner.invoke(
        cli,
        ["monitor", "baseline", "--capture", str(capture), "--model", "fraud", "--until",
         times[2_000].isoformat(), "--out", str(tmp_path / "b"), "--format", "json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["rows"] == 2_000 and doc["capture"]["rows_kept"] == 2_000
    args = ["monitor", "check", "--baseline", str(tmp_path / "b"), "--capture", str(capture)]
    out = runner.invoke(
        cli, [*args, "--model", "fraud", "--since", times[2_000].isoformat(), "--format", "json"]
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["status"] == "OK" and doc["capture"]["rows_kept"] == 2_000
    assert set(doc["columns"]) == {"amount", "country", "prediction"}
    out = runner.invoke(cli, [*args, "--model", "fraud", "--last", "1h", "--until", times[-1].isoformat()])
    assert out.exit_code == 0 and "capture of model fraud" in out.output, out.output
    for bad in (["--since", "yesterday"], ["--last", "1y"], ["--data", str(capture)], []):
        out = runner.invoke(cli, [*args, "--model", "fraud", *bad] if bad != [] else args)
        assert out.exit_code == 2, (bad, out.output)
    write_baseline(baseline_from_batches(CaptureReader(capture, "fraud")), tmp_path / "all")


def test_aware_times_are_converted_to_utc_days(tmp_path: Path) -> None:
    write_capture(tmp_path, "fraud", 2_000)  # 22:00 on the 27th to 03:33 on the 28th, UTC
    paris = dt.timezone(dt.timedelta(hours=1))
    reader = CaptureReader(
        tmp_path, "fraud", since=dt.datetime(2026, 11, 28, 1, 0, tzinfo=paris)
    )  # 00:00 UTC
    assert sum(b.num_rows for b in reader) == 2_000 - 720
    assert reader.summary.days == ["2026-11-28"]
    assert reader.summary.since == dt.datetime(2026, 11, 28, tzinfo=dt.UTC)

"""Hostile and malformed inputs give clear errors (or typed violations), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bastion.errors import ConfigError, InputError
from bastion.monitor import build_baseline, check, load_baseline, write_baseline
from bastion.monitor.check import Status
from bastion.monitor.sources import DataFormat, sniff


def _csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _numbers(n: int = 200) -> list[str]:
    return [f"{i % 17 * 0.5},{'ab'[i % 2]}" for i in range(n)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\x00\x01\x02binary", "binary"),
        (b"PAR1" + b"\x00" * 20, "truncated"),
        (b"\xff\xfe\xfa\xfb not text at all" * 4, "neither UTF-8"),
    ],
)
def test_unreadable_files_are_input_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        build_baseline([path])


def test_truncated_parquet_is_an_input_error(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"x": list(range(1000))}), good)
    data = good.read_bytes()
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(data[: len(data) // 2] + b"PAR1")  # keeps both magics, loses the footer
    with pytest.raises(InputError, match="Parquet"):
        build_baseline([bad])


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        ("a,b", ["1,2", "3,4,5"], "malformed CSV"),
        ("a,a", ["1,2"], "appears twice"),
        ("", ["1,2"], "no header"),
    ],
)
def test_malformed_csv(tmp_path: Path, header: str, rows: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_baseline([_csv(tmp_path / "d.csv", header, rows)])


def test_header_only_csv_has_no_rows(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no rows"):
        build_baseline([_csv(tmp_path / "d.csv", "a,b", [])])


def test_bad_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n{"a": 2\n', encoding="utf-8")
    with pytest.raises(InputError, match="line 2 is not valid JSON"):
        build_baseline([path])
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(InputError, match="not a JSON object"):
        build_baseline([path])


def test_json_lines_with_mixed_types_are_profiled(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    lines = [json.dumps({"x": i * 0.5, "c": "ab"[i % 2], "nested": {"k": i}}) for i in range(100)]
    lines.append(json.dumps({"x": "oops", "c": 3}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    base = build_baseline([path])
    assert base.profile.columns["x"].kind is not None
    assert base.profile.rows == 101


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        build_baseline([tmp_path / "nope.csv"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no data files"):
        build_baseline([tmp_path / "empty"])


def test_format_is_sniffed_not_taken_from_the_name(tmp_path: Path) -> None:
    lying = tmp_path / "data.csv"
    pq.write_table(pa.table({"x": [1.0, 2.0]}), lying)
    assert sniff(lying) is DataFormat.PARQUET
    jsonl = tmp_path / "data.parquet"
    jsonl.write_text('{"x": 1}\n', encoding="utf-8")
    assert sniff(jsonl) is DataFormat.JSONL


def test_words_in_a_numeric_column_are_a_type_violation(tmp_path: Path) -> None:
    base = build_baseline([_csv(tmp_path / "train.csv", "x,c", _numbers())])
    window = _csv(tmp_path / "w.csv", "x,c", [*_numbers(), "hello,a", "world,b"])
    report = check(base, window)
    assert report.status is Status.ALARM
    assert [(v.feature_name, v.constraint_check_type) for v in report.violations] == [
        ("x", "data_type_check")
    ]


def test_missing_and_extra_columns(tmp_path: Path) -> None:
    base = build_baseline([_csv(tmp_path / "train.csv", "x,c", _numbers())])
    window = _csv(tmp_path / "w.csv", "x,extra", [f"{i % 17 * 0.5},1" for i in range(200)])
    report = check(base, window)
    kinds = {(v.feature_name, v.constraint_check_type, v.severity) for v in report.violations}
    assert kinds == {("c", "missing_column_check", "error"), ("extra", "extra_column_check", "warning")}


def test_folder_of_mixed_formats_is_one_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    _csv(folder / "a.csv", "x,c", _numbers(100))
    pq.write_table(pa.table({"x": [1.0] * 50, "c": ["a"] * 50}), folder / "b.bin")
    (folder / ".hidden.csv").write_text("garbage\x00", encoding="utf-8")
    base = build_baseline([folder])
    assert base.profile.rows == 150


def test_edited_constraints_are_honoured_and_validated(tmp_path: Path) -> None:
    out = tmp_path / "baseline"
    write_baseline(build_baseline([_csv(tmp_path / "train.csv", "x,c", _numbers())]), out)
    constraints = json.loads((out / "constraints.json").read_text())
    feature = next(f for f in constraints["features"] if f["name"] == "c")
    feature["string_constraints"]["domains"] = ["a"]  # the user narrows the domain
    (out / "constraints.json").write_text(json.dumps(constraints))
    report = check(load_baseline(out), tmp_path / "train.csv")
    assert [(v.feature_name, v.constraint_check_type) for v in report.violations] == [
        ("c", "categorical_values_check")
    ]
    feature["string_constraints"]["domainz"] = ["a"]
    (out / "constraints.json").write_text(json.dumps(constraints))
    with pytest.raises(ConfigError, match="unknown field"):
        load_baseline(out)
    constraints["bastion"]["alpha"] = 2
    del feature["string_constraints"]["domainz"]
    (out / "constraints.json").write_text(json.dumps(constraints))
    with pytest.raises(ConfigError, match="alpha"):
        load_baseline(out)


def test_tampered_baseline_profile_is_rejected(tmp_path: Path) -> None:
    out = tmp_path / "baseline"
    write_baseline(build_baseline([_csv(tmp_path / "train.csv", "x,c", _numbers())]), out)
    doc = json.loads((out / "bastion-baseline.json").read_text())
    doc["profile"]["columns"]["x"]["sketch"]["n"] = 10**9
    (out / "bastion-baseline.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="malformed profile"):
        load_baseline(out)
    (out / "bastion-baseline.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not readable JSON"):
        load_baseline(out)

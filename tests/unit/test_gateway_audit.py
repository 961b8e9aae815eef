"""The audit chain: every edit, removal, insertion or reordering is caught; restarts continue the chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bastion.cli.audit import audit
from bastion.gateway.audit import GENESIS, AuditLog, chain_hash, verify_chain


def _log(path: Path, n: int = 5) -> list[str]:
    log = AuditLog(path)
    for i in range(n):
        log.append({"kind": "access", "requestId": f"r{i}", "status": 200, "caller": "alice"})
    log.close()
    return path.read_text().splitlines()


def test_an_untouched_chain_verifies(tmp_path: Path) -> None:
    lines = _log(tmp_path / "a.jsonl")
    report = verify_chain(tmp_path / "a.jsonl")
    assert report.ok and report.records == 5
    first = json.loads(lines[0])
    assert first["prev_hash"] == GENESIS and first["seq"] == 0 and first["hash"] == chain_hash(GENESIS, first)


def test_a_restart_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _log(path, 3)
    _log(path, 2)
    report = verify_chain(path)
    assert report.ok and report.records == 5
    assert [json.loads(line)["seq"] for line in path.read_text().splitlines()] == [0, 1, 2, 3, 4]


def _tampered(tmp_path: Path, how: str) -> Path:
    path = tmp_path / "a.jsonl"
    lines = _log(path)
    if how == "edit":
        record = json.loads(lines[2])
        record["status"] = 403
        lines[2] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    elif how == "edit-and-rehash":  # the attacker recomputes this record's hash, but not the next one's link
        record = json.loads(lines[2])
        record["caller"] = "mallory"
        record["hash"] = chain_hash(record["prev_hash"], record)
        lines[2] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    elif how == "remove":
        del lines[1]
    elif how == "insert":
        lines.insert(2, lines[2])
    elif how == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
    elif how == "garbage":
        lines[3] = "not json"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("how", ["edit", "edit-and-rehash", "remove", "insert", "reorder", "garbage"])
def test_tampering_is_detected(tmp_path: Path, how: str) -> None:
    report = verify_chain(_tampered(tmp_path, how))
    assert not report.ok
    assert report.problems[0].line in (2, 3, 4)


def test_cli_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    good = tmp_path / "good" / "a.jsonl"
    good.parent.mkdir()
    _log(good)
    ok = runner.invoke(audit, ["verify", str(good)])
    assert ok.exit_code == 0 and "chain intact, 5 records" in ok.output
    bad = _tampered(tmp_path, "remove")
    broken = runner.invoke(audit, ["verify", str(bad), "--format", "json"])
    assert broken.exit_code == 1 and json.loads(broken.output)["ok"] is False
    missing = runner.invoke(audit, ["verify", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code != 0


def test_a_broken_tail_is_not_silently_continued(tmp_path: Path) -> None:
    from bastion.errors import InputError

    path = tmp_path / "a.jsonl"
    _log(path, 2)
    with path.open("a") as handle:
        handle.write("{half a record\n")
    with pytest.raises(InputError):
        AuditLog(path)

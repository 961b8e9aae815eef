"""Organisations extend the allowlist with their own catalogue file, from the API and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bastion
from bastion.core import Verdict
from tests.conftest import pickle_call


def _catalogue(tmp_path: Path, entries: list[dict[str, str]]) -> Path:
    path = tmp_path / "acme.json"
    doc = {"schema_version": 1, "kind": "allowlist", "framework": "acme", "version": "1", "entries": entries}
    path.write_text(json.dumps(doc))
    return path


def test_own_class_is_flagged_until_allowlisted(tmp_path: Path) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle_call("acme.models", "build_churn_net", "v3"))
    assert bastion.scan(model).verdict is Verdict.UNSAFE
    allow = _catalogue(tmp_path, [{"module": "acme.models", "name": "build_churn_net", "use": "call"}])
    assert bastion.scan(model, allowlists=[allow]).verdict is Verdict.SAFE


def test_an_allowlist_cannot_unblock_a_denylisted_callable(tmp_path: Path) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle_call("os", "system"))
    allow = _catalogue(tmp_path, [{"module": "os", "name": "system", "use": "call"}])
    assert bastion.scan(model, allowlists=[allow]).verdict is Verdict.UNSAFE


def test_cli_reports_a_malformed_catalogue_clearly(tmp_path: Path) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle_call("acme.models", "build_churn_net"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "kind": "allowlist", "entries": "nope"}')
    proc = subprocess.run(
        [sys.executable, "-m", "bastion", "scan", str(model), "--allowlist", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "bastion: error: catalogue" in proc.stderr
    assert "Traceback" not in proc.stderr

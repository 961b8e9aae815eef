"""The demo policy stage: the clean signed release is allowed, tampered and unsafe copies refused."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console


def test_policy_stage_refuses_tampered_and_unsafe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn")
    monkeypatch.setattr("bastion.evidence.keys.SCRYPT_N", 2**14)
    from bastion.demo.policy_stage import run_policy_stage
    from bastion.demo.samples import make_project

    make_project(tmp_path / "project")
    out = io.StringIO()
    assert run_policy_stage(Console(file=out, width=200), tmp_path, tmp_path / "project" / "release")
    text = out.getvalue()
    assert "clean copy: WARN" in text and "tampered copy: FAIL" in text and "unsafe copy: FAIL" in text
    assert "churn-model.joblib was changed since it was signed" in text
    assert "pickle calls os.system" in text

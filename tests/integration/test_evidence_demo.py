from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from bastion.demo.evidence_stage import run_evidence_stage
from tests.unit.evidence_helpers import make_model


def test_demo_stage_verifies_then_catches_one_flipped_bit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "demo-passphrase-xyz")
    model = make_model(tmp_path / "model")
    out = io.StringIO()
    (tmp_path / "work").mkdir()
    assert run_evidence_stage(Console(file=out, width=200), tmp_path / "work", model)
    text = out.getvalue()
    assert "VERIFIED" in text and "changed: model.safetensors" in text and "demo-passphrase-xyz" not in text
    assert (
        model.joinpath("model.safetensors").read_bytes() == bytes(range(256)) * 64
    )  # the original is untouched

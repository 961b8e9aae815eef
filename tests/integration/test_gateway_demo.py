"""The demo's gateway stage runs end to end on loopback and reports success only when it behaved."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from bastion.demo.gateway_stage import run_gateway_stage


def test_gateway_stage(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_gateway_stage(Console(file=out, width=160), tmp_path)
    text = out.getvalue()
    assert "intact" in text and "block" in text and "429" in text

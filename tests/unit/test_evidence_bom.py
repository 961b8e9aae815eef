"""CycloneDX 1.6 documents, validated with cyclonedx-python-lib's strict JSON schema validator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.evidence.bom import bom_for_target
from bastion.evidence.targets import parse_target
from tests.unit.evidence_helpers import make_model

cyclonedx = pytest.importorskip("cyclonedx.validation.json")


def _valid(document: dict[str, object]) -> None:
    from cyclonedx.schema import SchemaVersion

    error = cyclonedx.JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))
    assert error is None, error


def test_model_folder_bom_has_model_card_files_and_datasets(tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    document, subject = bom_for_target(parse_target(f"dir:{model}"))
    _valid(document)
    component = document["metadata"]["component"]  # type: ignore[index]
    assert component["type"] == "machine-learning-model"
    assert component["modelCard"]["modelParameters"]["modelArchitecture"] == "BertForMaskedLM"
    assert component["modelCard"]["modelParameters"]["architectureFamily"] == "bert"
    assert component["licenses"] == [{"license": {"name": "apache-2.0"}}]
    kinds = {c["name"]: c["type"] for c in document["components"]}  # type: ignore[index,attr-defined]
    assert kinds["wikipedia"] == kinds["bookcorpus"] == "data"
    assert kinds["sub/tokenizer.json"] == "file"
    assert bom_for_target(parse_target(f"dir:{model}"))[0] == document  # reproducible
    assert subject.digests[0].hex == component["hashes"][0]["content"]


def _dist(site: Path, name: str, version: str, record: bool = True) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nLicense: MIT\n")
    if record:
        (info / "RECORD").write_text(
            f"{name}/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n"
        )


def test_python_environment_bom_lists_every_distribution_with_hashes(tmp_path: Path) -> None:
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    _dist(site, "Torch_Utils", "1.0")
    _dist(site, "numpy", "2.0.1", record=False)
    document, subject = bom_for_target(parse_target(f"env:{tmp_path / 'venv'}"))
    _valid(document)
    purls = [c["purl"] for c in document["components"]]  # type: ignore[attr-defined,index]
    assert purls == ["pkg:pypi/numpy@2.0.1", "pkg:pypi/torch-utils@1.0"]
    _dist(site, "evil", "6.6.6")
    assert bom_for_target(parse_target(f"env:{tmp_path / 'venv'}"))[1] != subject

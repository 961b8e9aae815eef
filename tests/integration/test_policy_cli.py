"""``verify --policy``, ``gate`` and ``report posture`` through click, on real evidence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bastion.cli.attest import attest
from bastion.cli.gate import gate
from bastion.cli.keys import keys
from bastion.cli.report import report
from bastion.cli.verify import verify
from bastion.errors import UsageError
from tests.conftest import pickle_call

EXAMPLES = Path(__file__).parents[2] / "examples" / "policies"
MIT = EXAMPLES / "hf-license-mit" / "policy.yaml"
PROD = EXAMPLES / "prod-models" / "policy.yaml"


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "s3cret-passphrase")
    monkeypatch.delenv("BASTION_DATABASE_URL", raising=False)
    monkeypatch.setattr("bastion.evidence.keys.SCRYPT_N", 2**14)
    result = CliRunner().invoke(keys, ["generate", "--name", "ci"])
    assert result.exit_code == 0, result.output
    return tmp_path / "home"


def _model(root: Path, licence: str) -> Path:
    root.mkdir()
    (root / "README.md").write_text(f"---\nlicense: {licence}\n---\n# a model\n")
    (root / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return root


def test_seed_example_mit_licence(home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    mit = _model(tmp_path / "mit", "mit")
    apache = _model(tmp_path / "apache", "apache-2.0")
    unsigned = _model(tmp_path / "unsigned", "mit")
    (unsigned / "notes.txt").write_text("never attested")  # other bytes: no evidence matches its digest
    for model in (mit, apache):
        assert (
            runner.invoke(attest, [f"dir:{model}", "--key", "ci", "-o", str(tmp_path / "b.json")]).exit_code
            == 0
        )
    ok = runner.invoke(verify, [f"dir:{mit}", "--policy", str(MIT)])
    assert ok.exit_code == 0, ok.output
    assert "PASS  license-mit" in ok.output
    other = runner.invoke(verify, [f"dir:{apache}", "--policy", str(MIT), "--format", "json"])
    assert other.exit_code == 1
    verdict = json.loads(other.output)
    (licence,) = [r for r in verdict["rules"] if r["rule"] == "license-mit"]
    assert licence["outcome"] == "fail" and licence["reasons"] == ["licence apache-2.0 is not MIT"]
    none = runner.invoke(verify, [f"dir:{unsigned}", "--policy", str(MIT)])
    assert none.exit_code == 2 and "VERDICT: ERROR" in none.output
    (mit / "README.md").write_text("---\nlicense: mit\n---\n# a model, edited after signing\n")
    assert runner.invoke(verify, [f"dir:{mit}", "--policy", str(MIT)]).exit_code == 1


def test_sarif_needs_policy_and_plain_verify_is_unchanged(home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    model = _model(tmp_path / "m", "mit")
    assert (
        runner.invoke(attest, [f"dir:{model}", "--key", "ci", "-o", str(tmp_path / "b.json")]).exit_code == 0
    )
    assert runner.invoke(verify, [f"dir:{model}"]).exit_code == 0
    result = runner.invoke(verify, [f"dir:{model}", "--format", "sarif"])
    assert isinstance(result.exception, UsageError) and "need --policy" in result.exception.message


def test_gate_passes_clean_refuses_hostile_and_signs_verdict(home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    clean = _model(tmp_path / "clean", "mit")
    result = runner.invoke(gate, [str(clean), "--policy", str(PROD), "--key", "ci", "--format", "json"])
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output[result.output.index("{") : result.output.rindex("}") + 1])
    assert verdict["outcome"] == "warn"  # provenance-required is a warning in the example
    assert {e["kind"] for e in verdict["evidence"]} == {"manifest", "bom", "scan"}
    hostile = _model(tmp_path / "hostile", "mit")
    (hostile / "pytorch_model.bin").write_bytes(pickle_call("os", "system"))
    sarif_path = tmp_path / "gate.sarif"
    result = runner.invoke(
        gate, [str(hostile), "--policy", str(PROD), "--key", "ci", "--format", "sarif", "-o", str(sarif_path)]
    )
    assert result.exit_code == 1
    sarif = json.loads(sarif_path.read_text())
    failing = {r["ruleId"] for r in sarif["runs"][0]["results"] if r["level"] == "error"}
    assert failing == {"no-findings-above", "no-unsafe-formats"}
    posture = runner.invoke(report, ["posture", str(clean), "--format", "json"])
    assert posture.exit_code == 0, posture.output
    controls = {c["id"]: c["status"] for c in json.loads(posture.output)["controls"]}
    assert controls["AML.M0013"] == "evidenced" and controls["AML.M0014"] == "evidenced"
    assert controls["AML.M0005"] == "missing"
    page = tmp_path / "posture.html"
    assert (
        runner.invoke(report, ["posture", str(hostile), "--format", "html", "-o", str(page)]).exit_code == 0
    )
    text = page.read_text()
    assert "<script" not in text and "http://" not in text and "AML.M0016" in text


def test_gate_refuses_a_malformed_policy_before_signing(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: bastion/v1\nkind: Policy\nname: x\nrules:\n  - id: digests-match\n    lvl: 1\n"
    )
    model = _model(tmp_path / "m", "mit")
    result = CliRunner().invoke(gate, [str(model), "--policy", str(bad), "--key", "ci"])
    assert result.exit_code != 0
    assert f"{bad}:6: unknown field 'lvl'" in str(result.exception)
    assert not (home / "evidence.db").exists() or "m" not in result.output


@pytest.mark.parametrize(
    ("command", "args"),
    [(gate, []), (report, ["posture"]), (verify, []), ("admission", ["serve"])],
)
def test_help(command: Any, args: list[str]) -> None:
    if command == "admission":
        from bastion.cli.admission import admission as command
    result = CliRunner().invoke(command, [*args, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output

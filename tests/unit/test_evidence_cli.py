"""The evidence commands through Bastion's real entry point (error handling and exit codes included)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.evidence_helpers import make_model


def test_keygen_attest_verify_tamper_and_store(bastion: object, tmp_path: Path) -> None:
    run = bastion  # type: ignore[assignment]
    model = make_model(tmp_path / "model")
    assert run("keys", "generate", "--name", "ci")[0] == 0  # type: ignore[operator]
    code, out, _ = run("keys", "list", "--format", "json")  # type: ignore[operator]
    assert code == 0 and json.loads(out)[0]["name"] == "ci"
    bundle = tmp_path / "model.sigstore.json"
    assert run("attest", f"dir:{model}", "--key", "ci", "-o", str(bundle))[0] == 0  # type: ignore[operator]
    first = bundle.read_bytes()
    assert run("attest", f"dir:{model}", "--key", "ci", "-o", str(bundle), "--no-store")[0] == 0  # type: ignore[operator]
    assert bundle.read_bytes() == first  # byte-identical
    assert run("verify", str(model), "--bundle", str(bundle))[0] == 0  # type: ignore[operator]
    assert run("verify", str(model))[0] == 0  # type: ignore[operator]  # found in the store by digest
    (model / "a.b").write_bytes(b"z")
    code, out, _ = run("verify", str(model), "--format", "json")  # type: ignore[operator]
    assert code == 1 and json.loads(out)["problems"] == [
        {"cause": "changed", "file": "a.b", "detail": "a.b was changed since it was signed"}
    ]
    code, out, _ = run("evidence", "list", "--format", "json")  # type: ignore[operator]
    assert code == 0 and len(json.loads(out)) == 1
    export = tmp_path / "all.jsonl"
    assert run("evidence", "export", "-o", str(export))[0] == 0  # type: ignore[operator]
    assert export.read_bytes().strip() == first.strip()


def test_bad_inputs_exit_2_with_a_diagnosis_not_a_traceback(bastion: object, tmp_path: Path) -> None:
    run = bastion  # type: ignore[assignment]
    model = make_model(tmp_path / "model")
    broken = tmp_path / "broken.json"
    broken.write_text('{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "dsseEnv')
    code, _, err = run("verify", str(model), "--bundle", str(broken))  # type: ignore[operator]
    assert code == 2 and "not valid JSON" in err and "Traceback" not in err
    code, _, err = run("attest", str(tmp_path / "missing"), "--key", "nobody")  # type: ignore[operator]
    assert code == 2 and "no such file" in err
    code, _, err = run("attest", str(model), "--key", "nobody")  # type: ignore[operator]
    assert code == 2 and "no key named 'nobody'" in err
    code, _, err = run("verify", str(model))  # type: ignore[operator]
    assert code == 2 and "UNDECIDED" in _ + err


def test_bom_command_writes_cyclonedx(bastion: object, tmp_path: Path) -> None:
    run = bastion  # type: ignore[assignment]
    model = make_model(tmp_path / "model")
    out_file = tmp_path / "bom.json"
    assert run("bom", f"dir:{model}", "-o", str(out_file))[0] == 0  # type: ignore[operator]
    assert json.loads(out_file.read_text())["specVersion"] == "1.6"


@pytest.mark.parametrize("name", ["keys", "attest", "verify", "bom", "evidence"])
def test_help_is_instant_and_cli_import_stays_light(name: str) -> None:
    module = __import__(f"bastion.cli.{name}", fromlist=[name])
    from click.testing import CliRunner

    assert CliRunner().invoke(getattr(module, name), ["--help"]).exit_code == 0
    code = f"import bastion.cli.{name}, sys, json; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    )
    heavy = {m.split(".")[0] for m in loaded} & {
        "cryptography",
        "sqlalchemy",
        "pg8000",
        "rich",
        "model_signing",
    }
    assert not heavy


def test_attest_with_blake3_and_its_limits(bastion: object, tmp_path: Path) -> None:
    pytest.importorskip("blake3")
    run = bastion  # type: ignore[assignment]
    model = make_model(tmp_path / "model")
    bundle = tmp_path / "b.json"
    assert run("keys", "generate", "--name", "ci")[0] == 0  # type: ignore[operator]
    args = ("attest", f"dir:{model}", "--key", "ci", "-o", str(bundle), "--no-store", "--hash", "blake3")
    assert run(*args)[0] == 0  # type: ignore[operator]
    payload = json.loads(base64.b64decode(json.loads(bundle.read_text())["dsseEnvelope"]["payload"]))
    assert {r["algorithm"] for r in payload["predicate"]["resources"]} == {"blake3"}
    assert run("verify", str(model), "--bundle", str(bundle))[0] == 0  # type: ignore[operator]
    code, _, err = run(*args, "--serialization", "shards")  # type: ignore[operator]
    assert code == 2 and "works with --serialization files only" in err

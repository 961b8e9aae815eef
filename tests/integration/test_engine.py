"""The engine end to end: detection by content, archives, compression, limits, walking."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

import bastion
from bastion.core import ProblemKind, Verdict
from bastion.scanners.interface import Limits
from tests.conftest import benign_pickle, pickle_call


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _rules(report: bastion.core.ScanReport) -> set[str]:
    return {f.rule_id for f in report.findings}


def _callables(report: bastion.core.ScanReport) -> set[str | None]:
    return {f.callable for f in report.findings}


def test_payload_in_torch_zip_member_with_any_name(tmp_path: Path) -> None:
    p = tmp_path / "model.bin"
    p.write_bytes(
        _zip(
            {"weird-prefix/data.pkl": benign_pickle(), "weird-prefix/extra/blob": pickle_call("os", "system")}
        )
    )
    report = bastion.scan(p)
    assert report.verdict is Verdict.UNSAFE
    hit = next(f for f in report.findings if f.callable == "os.system")
    assert hit.member == "weird-prefix/extra/blob"
    assert hit.file == "model.bin"


def test_torch_tensor_storage_is_skipped_not_parsed(tmp_path: Path) -> None:
    # Storage bytes that happen to begin like a pickle must not produce a problem.
    p = tmp_path / "model.pt"
    p.write_bytes(_zip({"archive/data.pkl": benign_pickle(), "archive/data/0": b"\x80\x02" + os.urandom(64)}))
    report = bastion.scan(p)
    assert report.verdict is Verdict.SAFE, report
    assert any("tensor storage" in s.reason for s in report.skipped)


def test_zip_in_tar_in_gzip(tmp_path: Path) -> None:
    inner = _zip({"nested/payload.bin": pickle_call("subprocess", "check_output")})
    p = tmp_path / "bundle.tar.gz"
    p.write_bytes(gzip.compress(_tar({"models/inner.zip": inner})))
    report = bastion.scan(p)
    assert report.verdict is Verdict.UNSAFE
    assert "subprocess.check_output" in _callables(report)


@pytest.mark.parametrize(
    "compress",
    [
        zlib.compress,
        gzip.compress,
        bz2.compress,
        lzma.compress,
        lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    ],
    ids=["zlib", "gzip", "bz2", "xz", "lzma"],
)
def test_compressed_joblib_style_streams_are_opened(tmp_path: Path, compress: object) -> None:
    p = tmp_path / "model.joblib"
    p.write_bytes(compress(pickle_call("os", "system")))  # type: ignore[operator]
    report = bastion.scan(p)
    assert report.verdict is Verdict.UNSAFE


def test_payload_in_second_gzip_member(tmp_path: Path) -> None:
    p = tmp_path / "m.pkl.gz"
    p.write_bytes(gzip.compress(benign_pickle()) + gzip.compress(pickle_call("os", "system")))
    assert "os.system" in _callables(bastion.scan(p))


def test_decompression_bomb_is_a_limit_problem(tmp_path: Path) -> None:
    p = tmp_path / "bomb.pkl"
    p.write_bytes(zlib.compress(b"\x00" * (64 << 20), 9))
    report = bastion.scan(p, limits=Limits(max_member_bytes=8 << 20))
    assert report.verdict is Verdict.ERROR
    assert report.problems[0].kind is ProblemKind.LIMIT_EXCEEDED


def test_truncated_gzip_is_undecided(tmp_path: Path) -> None:
    p = tmp_path / "cut.gz"
    p.write_bytes(gzip.compress(benign_pickle() * 50)[:-30])
    report = bastion.scan(p)
    assert report.verdict is Verdict.ERROR


def test_nesting_limit(tmp_path: Path) -> None:
    data = benign_pickle()
    for _ in range(12):
        data = gzip.compress(data)
    p = tmp_path / "deep.gz"
    p.write_bytes(data)
    report = bastion.scan(p)
    assert report.verdict is Verdict.ERROR
    assert any(pr.kind is ProblemKind.LIMIT_EXCEEDED for pr in report.problems)


def test_duplicate_zip_members_are_reported_and_both_scanned(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", benign_pickle())
        with pytest.warns(UserWarning):
            z.writestr("archive/data.pkl", pickle_call("os", "system"))
    p = tmp_path / "dup.pt"
    p.write_bytes(buf.getvalue())
    report = bastion.scan(p)
    assert "BAS-M003" in _rules(report)
    assert "os.system" in _callables(report)


def test_bad_crc_is_still_scanned_and_reported(tmp_path: Path) -> None:
    data = bytearray(_zip({"archive/data.pkl": pickle_call("os", "system")}))
    # Corrupt the CRC in both headers: PyTorch's reader does not check it.
    for sig, off in ((b"PK\x03\x04", 14), (b"PK\x01\x02", 16)):
        pos = data.find(sig)
        data[pos + off : pos + off + 4] = b"\xde\xad\xbe\xef"
    p = tmp_path / "crc.pt"
    p.write_bytes(bytes(data))
    report = bastion.scan(p)
    assert {"BAS-M004"} <= _rules(report)
    assert "os.system" in _callables(report)


def test_path_traversal_member(tmp_path: Path) -> None:
    p = tmp_path / "t.tar"
    p.write_bytes(_tar({"../../etc/cron.d/x": b"hello\n"}))
    assert "BAS-M005" in _rules(bastion.scan(p))


def test_pickle_disguised_as_safetensors(tmp_path: Path) -> None:
    p = tmp_path / "model.safetensors"
    p.write_bytes(pickle_call("os", "system"))
    report = bastion.scan(p)
    assert "BAS-M001" in _rules(report)


def test_pickle_with_appended_zip_is_a_polyglot(tmp_path: Path) -> None:
    p = tmp_path / "poly.pt"
    p.write_bytes(benign_pickle() + _zip({"archive/data.pkl": pickle_call("os", "system")}))
    report = bastion.scan(p)
    assert "BAS-M007" in _rules(report)
    assert "os.system" in _callables(report)


def test_random_bytes_with_eocd_signature_are_not_a_zip(tmp_path: Path) -> None:
    p = tmp_path / "blob.bin"
    p.write_bytes(os.urandom(4096) + b"PK\x05\x06" + os.urandom(18))
    report = bastion.scan(p)
    assert "BAS-M007" not in _rules(report)


def test_unknown_binary_is_skipped_or_strict_problem(tmp_path: Path) -> None:
    p = tmp_path / "blob.dat"
    p.write_bytes(b"\x00\x01\x02\xff" * 100)
    assert bastion.scan(p).verdict is Verdict.UNSUPPORTED
    assert bastion.scan(p, strict=True).verdict is Verdict.ERROR


def test_text_and_empty_files_are_not_models(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# Model card\n")
    (tmp_path / "empty.bin").write_bytes(b"")
    report = bastion.scan(tmp_path)
    assert report.verdict is Verdict.UNSUPPORTED
    assert len(report.skipped) == 2


def test_symlink_leaving_root_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(pickle_call("os", "system"))
    root = tmp_path / "repo"
    root.mkdir()
    (root / "model.pkl").symlink_to(outside)
    (root / "ok.pkl").write_bytes(benign_pickle())
    report = bastion.scan(root)
    assert report.verdict is Verdict.SAFE
    assert any("symlink" in s.reason for s in report.skipped)
    assert bastion.scan(root, follow_symlinks=True).verdict is Verdict.UNSAFE


def test_include_exclude_and_relative_posix_names(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.pkl").write_bytes(pickle_call("os", "system"))
    (tmp_path / "sub" / "b.pkl").write_bytes(benign_pickle())
    assert {f.file for f in bastion.scan(tmp_path).findings} == {"sub/a.pkl"}
    assert bastion.scan(tmp_path, exclude=["sub/a.*"]).verdict is Verdict.SAFE
    assert bastion.scan(tmp_path, include=["*/b.pkl"]).verdict is Verdict.SAFE


def test_parallel_and_serial_scans_agree(tmp_path: Path) -> None:
    for i in range(8):
        (tmp_path / f"m{i}.pkl").write_bytes(pickle_call("os", "system") if i % 3 == 0 else benign_pickle())
    serial = bastion.scan(tmp_path, workers=1)
    parallel = bastion.scan(tmp_path, workers=2)
    assert sorted(f.file for f in serial.findings) == sorted(f.file for f in parallel.findings)
    assert serial.verdict is parallel.verdict is Verdict.UNSAFE


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    # A file that vanishes (or cannot be opened) between the walk and the scan: never clean.
    from bastion.scanners.engine import Options, scan_file

    ctx = scan_file(tmp_path / "gone.pkl", "gone.pkl", Options())
    assert [p.kind for p in ctx.problems] == [ProblemKind.UNREADABLE]
    assert not ctx.scanned


def test_lzma_in_zip_member(tmp_path: Path) -> None:
    p = tmp_path / "m.zip"
    p.write_bytes(_zip({"x.pkl": pickle_call("os", "system")}, zipfile.ZIP_LZMA))
    assert "os.system" in _callables(bastion.scan(p))


def test_truncated_zip_member_is_a_problem(tmp_path: Path) -> None:
    data = _zip({"archive/data.pkl": benign_pickle() * 20})
    local = struct.pack("<I", 0x04034B50)
    assert data.startswith(local)
    cut = data[: data.find(b"PK\x01\x02") - 40] + data[data.find(b"PK\x01\x02") :]
    p = tmp_path / "cut.pt"
    p.write_bytes(cut)
    assert bastion.scan(p).verdict is Verdict.ERROR


def test_every_model_format_has_a_scanner() -> None:
    from bastion.scanners.detect import Format
    from bastion.scanners.engine import _handler

    not_models = {Format.EMPTY, Format.TEXT, Format.UNKNOWN}
    for fmt in Format:
        assert (_handler(fmt) is None) == (fmt in not_models), fmt


def test_collector_is_paused_during_a_model_scan_and_restored_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cyclic collector is off while a file's model formats are parsed (speed) and back on
    after every file, including one whose scan fails; a caller that had it off keeps it off."""
    import gc

    from bastion.scanners.pickle import scan as pickle_scan

    states: list[bool] = []
    real_scan_stream = pickle_scan.scan_stream

    def spy(*args: object, **kwargs: object) -> None:
        states.append(gc.isenabled())
        real_scan_stream(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pickle_scan, "scan_stream", spy)
    good = tmp_path / "good.pkl"
    good.write_bytes(benign_pickle())
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle_call("os", "system")[:-6])  # truncated: the scan raises inside
    assert gc.isenabled()
    report = bastion.scan([good, evil])
    assert states == [False, False]
    assert gc.isenabled()
    assert report.verdict is Verdict.UNSAFE  # the payload before the break is still reported
    assert report.problems

    gc.disable()
    try:
        bastion.scan([good])
        assert not gc.isenabled()
    finally:
        gc.enable()

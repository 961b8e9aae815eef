"""The hashing engine: every I/O path gives hashlib's digest, errors surface, nothing hangs."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.evidence import hashing
from bastion.evidence.errors import TargetError
from bastion.evidence.hashing import HashSpec, Method, hash_entries, hash_range, run_parallel, walk


@pytest.fixture()
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny thresholds, so small test files cross every boundary the real sizes have."""
    monkeypatch.setattr(hashing, "SMALL_RANGE", 1000)
    monkeypatch.setattr(hashing, "MMAP_WINDOW", 3 * 4096 + 123)  # not a multiple of the page size
    monkeypatch.setattr(hashing, "READ_BUFFER", 777)


@pytest.mark.usefixtures("small_windows")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.integers(0, 40_000),
    start_fraction=st.floats(0, 1),
    end_fraction=st.floats(0, 1),
    use_mmap=st.booleans(),
)
def test_every_range_and_io_path_gives_hashlibs_digest(
    tmp_path: Path, size: int, start_fraction: float, end_fraction: float, use_mmap: bool
) -> None:
    data = bytes((i * 7 + i // 251) % 256 for i in range(size))
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    start = int(size * min(start_fraction, end_fraction))
    end = int(size * max(start_fraction, end_fraction))
    expected = hashlib.sha256(data[start:end]).hexdigest()
    assert hash_range(path, start, end, use_mmap=use_mmap) == expected


@pytest.mark.usefixtures("small_windows")
def test_mapped_and_read_shard_manifests_are_byte_identical(tmp_path: Path) -> None:
    for i in range(7):
        (tmp_path / "m" / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "m" / f"d{i % 3}" / f"f{i}").write_bytes(os.urandom(i * 9000))
    entries = walk(tmp_path / "m")
    spec = HashSpec(Method.SHARDS, shard_size=5000)
    mapped = hash_entries(entries, spec, workers=3, use_mmap=True)
    read = hash_entries(entries, spec, workers=1, use_mmap=False)
    assert mapped == read and len(mapped) == sum(-(-e.size // 5000) for e in entries)


def test_a_file_that_shrank_is_refused_on_both_io_paths(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * (3 * 1024 * 1024))
    for use_mmap in (True, False):
        with pytest.raises(TargetError, match="shrank"):
            hash_range(path, 0, 4 * 1024 * 1024, use_mmap=use_mmap)
    (tmp_path / "small").write_bytes(b"x" * 100)
    with pytest.raises(TargetError, match="shrank"):
        hash_range(tmp_path / "small", 0, 200)  # the one-read path for small ranges too


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    done = threading.Event()

    def attempt() -> None:
        with pytest.raises(TargetError):
            hash_range(tmp_path / "fifo", 0, 10)
        done.set()

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert done.is_set(), "hashing a FIFO blocked"


def test_run_parallel_re_raises_the_first_error_and_stops(tmp_path: Path) -> None:
    seen: list[int] = []

    def run(index: int) -> None:
        if index == 3:
            raise TargetError("boom")
        seen.append(index)

    with pytest.raises(TargetError, match="boom"):
        run_parallel(list(range(1000)), run, 4)
    assert len(seen) < 1000


def test_a_file_changed_while_hashed_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m").mkdir()
    target = tmp_path / "m" / "w.bin"
    target.write_bytes(b"a" * 5000)
    entries = walk(tmp_path / "m")
    real = hashing.hash_range

    def and_append(path: Path, *args: object, **kwargs: object) -> str:
        digest = real(path, *args, **kwargs)  # type: ignore[arg-type]
        with path.open("ab") as fh:
            fh.write(b"more")
        return digest

    monkeypatch.setattr(hashing, "hash_range", and_append)
    with pytest.raises(TargetError, match="changed while it was hashed"):
        hash_entries(entries, HashSpec())


def test_blake3_bundles_verify_and_catch_tampering(tmp_path: Path) -> None:
    pytest.importorskip("blake3")
    from bastion.evidence.keys import Keyring
    from bastion.evidence.targets import parse_target
    from bastion.evidence.verify import Cause, Status, verify
    from tests.unit.evidence_helpers import make_key, make_model, sign

    ring = Keyring(tmp_path / "home")
    _, signer = make_key(ring)
    model = make_model(tmp_path / "model")
    bundle = sign(model, signer, HashSpec(algorithm="blake3"))
    target = parse_target(f"dir:{model}")
    assert verify(target, [bundle], ring).status is Status.VERIFIED
    (model / "model.safetensors").write_bytes(b"\0" * 16384)
    result = verify(target, [bundle], ring)
    assert [(p.cause, p.file) for p in result.problems] == [(Cause.CHANGED, "model.safetensors")]


@pytest.mark.parametrize("algorithm", ["blake3", "sha384", "sha512"])
@pytest.mark.parametrize("use_mmap", [True, False], ids=["mapped", "read"])
def test_other_algorithms_take_the_same_io_paths(tmp_path: Path, algorithm: str, use_mmap: bool) -> None:
    if algorithm == "blake3":
        blake3 = pytest.importorskip("blake3")
        expected = blake3.blake3
    else:
        expected = getattr(hashlib, algorithm)
    data = os.urandom(3 * 1024 * 1024 + 17)  # past SMALL_RANGE: the mapped / buffered path
    (tmp_path / "f").write_bytes(data)
    assert (
        hash_range(tmp_path / "f", 5, len(data), algorithm, use_mmap=use_mmap)
        == expected(data[5:]).hexdigest()
    )

"""Sign and verify the same corpus with Bastion and OpenSSF model-signing; print MB/s and ratios.

Both run in-process on a warm page cache (each case is run once to warm, then timed), with the same
P-256 key. The physical limit is raw hashlib SHA-256 on an in-memory buffer times the core count.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path

MB = 1_000_000


def make_corpus(root: Path, big_mb: int) -> tuple[Path, Path]:
    big, small = root / "big", root / "small"
    big_file = big / "model.bin"
    if not big_file.exists() or big_file.stat().st_size != big_mb * 1024 * 1024:
        big.mkdir(parents=True, exist_ok=True)
        block = os.urandom(1 << 20)
        with big_file.open("wb") as fh:
            for i in range(big_mb):
                fh.write(hashlib.sha256(i.to_bytes(8, "big")).digest() + block[32:])
    if not (small / "f1999.bin").exists():
        for i in range(2000):
            sub = small / f"d{i % 20:02d}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"f{i}.bin").write_bytes(os.urandom(4096 + (i * 37) % 60000))
    return big, small


def size_of(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def timed(fn: Callable[[], object]) -> float:
    fn()  # warm the page cache and imports
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def hashlib_limit() -> tuple[float, int]:
    """Best of five single-thread passes over 256 MiB in memory (other load only makes a pass slower)."""
    buf = os.urandom(256 * 1024 * 1024)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        hashlib.sha256(buf).digest()
        best = min(best, time.perf_counter() - start)
    return len(buf) / best / MB, os.cpu_count() or 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--big-mb", type=int, default=2048)
    parser.add_argument("--results", type=Path, required=True)
    args = parser.parse_args()

    import model_signing
    from cryptography.hazmat.primitives import serialization

    from bastion.evidence.attest import HashOptions, attest
    from bastion.evidence.bundle import read_bundles
    from bastion.evidence.hashing import HashSpec, Method
    from bastion.evidence.keys import KeyAlgorithm, Keyring, generate_private_key, public_pem
    from bastion.evidence.signers import LocalKeySigner
    from bastion.evidence.targets import parse_target
    from bastion.evidence.verify import Status, verify

    big, small = make_corpus(args.corpus, args.big_mb)
    work = args.results / "work"
    work.mkdir(parents=True, exist_ok=True)
    key = generate_private_key(KeyAlgorithm.ECDSA_P256)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (work / "key.pem").write_bytes(pem)
    (work / "key.pub").write_bytes(public_pem(key))
    shutil.rmtree(work / "home", ignore_errors=True)  # a fresh trust file for this run's fresh key
    ring = Keyring(work / "home")
    ring.import_public("bench", public_pem(key))
    signer = LocalKeySigner(key)

    def bastion_sign(model: Path, spec: HashSpec, out: Path) -> Callable[[], object]:
        def run() -> None:
            (a,) = attest(parse_target(f"dir:{model}"), signer, None, HashOptions(spec=spec))
            out.write_bytes(a.bundle.to_json())

        return run

    def bastion_verify(model: Path, out: Path) -> Callable[[], object]:
        def run() -> None:
            result = verify(parse_target(f"dir:{model}"), read_bundles(out), ring)
            assert result.status is Status.VERIFIED, result.problems

        return run

    def ms_sign(model: Path, out: Path, shards: bool) -> Callable[[], object]:
        def run() -> None:
            hashing = model_signing.hashing.Config()
            if shards:
                hashing = hashing.use_shard_serialization()
            config = model_signing.signing.Config().use_elliptic_key_signer(private_key=work / "key.pem")
            config.set_hashing_config(hashing).sign(model, out)

        return run

    def ms_verify(model: Path, out: Path, shards: bool) -> Callable[[], object]:
        def run() -> None:
            config = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=work / "key.pub")
            if shards:
                # model-signing 1.1.1 cannot guess the config of its own shard bundles (shard_size is
                # written as a float, then range() refuses it): give it explicitly.
                config.set_hashing_config(model_signing.hashing.Config().use_shard_serialization())
            config.verify(model, out)

        return run

    per_core, cores = hashlib_limit()
    rows = []
    shards = HashSpec(Method.SHARDS, shard_size=256 * 1024 * 1024)
    for label, model in (("1 large file", big), ("2,000 small files", small)):
        mb = size_of(model) / MB
        cases = {
            "bastion (files, default)": (
                bastion_sign(model, HashSpec(), work / "b-files.json"),
                bastion_verify(model, work / "b-files.json"),
            ),
            "bastion (shards 256 MiB)": (
                bastion_sign(model, shards, work / "b-shards.json"),
                bastion_verify(model, work / "b-shards.json"),
            ),
            "model-signing (files, default)": (
                ms_sign(model, work / "m-files.json", False),
                ms_verify(model, work / "m-files.json", False),
            ),
            "model-signing (shards 1 GB)": (
                ms_sign(model, work / "m-shards.json", True),
                ms_verify(model, work / "m-shards.json", True),
            ),
        }
        for tool, (sign_fn, verify_fn) in cases.items():
            rows.append(
                {
                    "corpus": label,
                    "tool": tool,
                    "MB": round(mb),
                    "sign_MBps": round(mb / timed(sign_fn)),
                    "verify_MBps": round(mb / timed(verify_fn)),
                }
            )
    limit = per_core * cores
    print(
        f"\nmachine: {platform.machine()}, {cores} cores; "
        f"hashlib sha256 {per_core:.0f} MB/s "
        f"per core -> limit {limit:.0f} MB/s\n"
    )
    print("| corpus | tool | MB | sign MB/s | verify MB/s | sign / limit |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['corpus']} | {r['tool']} | {r['MB']} | {r['sign_MBps']} | {r['verify_MBps']} | "
            f"{r['sign_MBps'] / limit:.0%} |"
        )
    for label in ("1 large file", "2,000 small files"):
        by = {r["tool"]: r for r in rows if r["corpus"] == label}
        best_b = max(by["bastion (files, default)"]["sign_MBps"], by["bastion (shards 256 MiB)"]["sign_MBps"])
        best_m = max(
            by["model-signing (files, default)"]["sign_MBps"], by["model-signing (shards 1 GB)"]["sign_MBps"]
        )
        same = by["bastion (files, default)"]["sign_MBps"] / by["model-signing (files, default)"]["sign_MBps"]
        print(
            f"\n{label}: bastion/model-signing sign ratio, default vs default {same:.2f}x, "
            f"best vs best {best_b / best_m:.2f}x"
        )
    (args.results / "signing.json").write_text(json.dumps({"limit_MBps": limit, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

"""Shared builders for the evidence tests: a keyring with fast-KDF keys and a small model folder."""

from __future__ import annotations

from pathlib import Path

from bastion.evidence.attest import HashOptions, attest
from bastion.evidence.bundle import Bundle
from bastion.evidence.hashing import HashSpec
from bastion.evidence.keys import KeyAlgorithm, KeyInfo, Keyring
from bastion.evidence.signers import Signer, signer_from_uri
from bastion.evidence.targets import parse_target

FAST_SCRYPT = 2**14  # tests only: the default (2**17) costs ~0.3 s per key
PASSPHRASE = "correct horse battery staple"  # noqa: S105 - a throwaway test passphrase


def make_key(ring: Keyring, name: str = "dev", **options: object) -> tuple[KeyInfo, Signer]:
    info = ring.generate(name, PASSPHRASE, scrypt_n=FAST_SCRYPT, **options)  # type: ignore[arg-type]
    return info, signer_from_uri(name, lambda _: PASSPHRASE, keyring=ring)


def make_model(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"architectures": ["BertForMaskedLM"], "model_type": "bert"}')
    (root / "README.md").write_text(
        "---\nlicense: apache-2.0\ndatasets:\n  - wikipedia\n  - bookcorpus\n---\n# m\n"
    )
    (root / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (root / "sub" / "tokenizer.json").write_text('{"v": 1}')
    (root / "a.b").write_bytes(b"y")
    return root


def sign(
    model: Path, signer: Signer, spec: HashSpec | None = None, algorithm: KeyAlgorithm | None = None
) -> Bundle:
    options = HashOptions(spec=spec or HashSpec())
    return attest(parse_target(f"dir:{model}"), signer, None, options)[0].bundle

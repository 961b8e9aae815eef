"""The demo's evidence stage: key, attestation, store, verification, then one flipped byte caught."""

from __future__ import annotations

import os
import pathlib
import shutil

from rich.console import Console

DEMO_PASSPHRASE_ENV = "BASTION_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret


def run_evidence_stage(console: Console, workdir: pathlib.Path, model_dir: pathlib.Path) -> bool:
    """Sign ``model_dir`` (a copy of it), store the evidence, verify, tamper one byte, verify again.

    State lives under ``workdir/bastion-home``; the passphrase comes from ``$BASTION_KEY_PASSPHRASE``
    (a random one is made for the run when it is unset, and never printed). Returns True when every
    step behaved as it should: the untouched model verifies, the tampered one fails naming the file.
    """
    import secrets

    from bastion.evidence.attest import HashOptions, attest
    from bastion.evidence.keys import Keyring
    from bastion.evidence.signers import signer_from_uri
    from bastion.evidence.store import EvidenceStore
    from bastion.evidence.targets import parse_target
    from bastion.evidence.verify import Cause, Status, verify

    home = workdir / "bastion-home"
    passphrase = os.environ.get(DEMO_PASSPHRASE_ENV) or secrets.token_urlsafe(24)
    ring = Keyring(home, trust_root="")  # the demo's own throwaway trust file: a user's pin is not for it
    model = workdir / "signed-model"
    if model.exists():
        shutil.rmtree(model)
    shutil.copytree(model_dir, model, symlinks=True)

    info = (
        ring.find("demo")
        if any(e.name == "demo" for e in ring.entries())
        else ring.generate("demo", passphrase)
    )
    console.print(
        f"Signing key [bold]{info.name}[/bold] ({info.algorithm.value}, id {info.short_id}), sealed at rest"
    )
    signer = signer_from_uri("demo", lambda _: passphrase, keyring=ring)
    target = parse_target(f"dir:{model}")
    (attestation,) = attest(target, signer, None, HashOptions())
    bundle_path = workdir / "signed-model.sigstore.json"
    bundle_path.write_bytes(attestation.bundle.to_json())
    store = EvidenceStore(f"sqlite:///{home / 'evidence.db'}")
    try:
        record = store.add(attestation.bundle.to_json(), target=target.uri)
    finally:
        store.close()
    subject = attestation.statement.subjects[0]
    files = len(attestation.statement.predicate["resources"])
    console.print(
        f"Attested {files} files as {subject.digests[0]} -> {bundle_path.name}, stored as {record.id[:16]}"
    )

    clean = verify(target, [attestation.bundle], ring)
    console.print(f"Verify untouched model: [bold]{clean.status.value.upper()}[/bold]")

    victim = max(
        (p for p in model.rglob("*") if p.is_file() and not p.is_symlink()), key=lambda p: p.stat().st_size
    )
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    name = victim.relative_to(model).as_posix()
    console.print(f"Flipped one bit in the middle of [bold]{name}[/bold]")
    tampered = verify(target, [attestation.bundle], ring)
    for problem in tampered.problems:
        console.print(f"  [red]{problem.cause.value}[/red]: {problem.detail}")
    console.print(
        f"Verify tampered model: [bold]{tampered.status.value.upper()}[/bold] (exit {tampered.exit_code})"
    )
    caught = {(p.cause, p.file) for p in tampered.problems} == {(Cause.CHANGED, name)}
    return clean.status is Status.VERIFIED and tampered.status is Status.FAILED and caught

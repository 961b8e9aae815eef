"""Verify attestations against a target and the trust file, failing closed with exact causes.

Order matters: the signature is checked against a *trusted* key before anything in the payload is
believed; only then are digests recomputed and compared. Every reason not to trust is collected:

    VERIFIED   (exit 0)  every bundle is signed by a trusted, usable key and matches the target
    FAILED     (exit 1)  something differs or the signer is not trusted (changed / added / removed
                         files, unknown or wrong signer, bad signature, disabled or expired key, scope)
    UNDECIDED  (exit 2)  something could not be checked (malformed statement, unsupported predicate,
                         unreadable target); never reported as verified
"""

from __future__ import annotations

import datetime as dt
import enum
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bastion.errors import BastionError
from bastion.evidence.attest import HashOptions, compute_manifest
from bastion.evidence.bundle import Bundle
from bastion.evidence.dsse import IN_TOTO_PAYLOAD_TYPE
from bastion.evidence.errors import BundleFormatError
from bastion.evidence.hashing import Method
from bastion.evidence.keys import KeyInfo, Keyring, KeyStatus, load_public_key, now_utc
from bastion.evidence.manifest import PREDICATE_TYPE, Change, ModelManifest, diff, parse_manifest
from bastion.evidence.signers import verify_signature
from bastion.evidence.statement import Statement
from bastion.evidence.targets import Target, TargetKind


class Status(enum.Enum):
    VERIFIED = "verified"
    FAILED = "failed"
    UNDECIDED = "undecided"

    @property
    def exit_code(self) -> int:
        return {"verified": 0, "failed": 1, "undecided": 2}[self.value]


class Cause(enum.Enum):
    CHANGED = "changed"
    ADDED = "added"
    REMOVED = "removed"
    UNKNOWN_SIGNER = "unknown-signer"
    WRONG_SIGNER = "wrong-signer"
    BAD_SIGNATURE = "bad-signature"
    KEY_DISABLED = "key-disabled"
    KEY_EXPIRED = "key-expired"
    OUT_OF_SCOPE = "out-of-scope"
    SUBJECT_MISMATCH = "subject-mismatch"
    MISSING_COMMIT = "missing-commit"
    MALFORMED = "malformed"
    UNSUPPORTED = "unsupported"
    UNREADABLE = "unreadable"
    NO_EVIDENCE = "no-evidence"

    @property
    def decisive(self) -> bool:
        """True: the target is known *not* to match; False: Bastion could not check."""
        return self not in (Cause.MALFORMED, Cause.UNSUPPORTED, Cause.UNREADABLE, Cause.NO_EVIDENCE)


_CHANGE_CAUSE = {Change.CHANGED: Cause.CHANGED, Change.ADDED: Cause.ADDED, Change.REMOVED: Cause.REMOVED}


@dataclass(frozen=True)
class Problem:
    cause: Cause
    detail: str
    file: str | None = None


@dataclass(frozen=True)
class VerificationResult:
    target: str
    problems: tuple[Problem, ...]
    signers: tuple[KeyInfo, ...]
    statements: tuple[Statement, ...]
    notes: tuple[str, ...] = ()

    @property
    def status(self) -> Status:
        if any(p.cause.decisive for p in self.problems):
            return Status.FAILED
        if self.problems or not self.statements:
            return Status.UNDECIDED
        return Status.VERIFIED

    @property
    def exit_code(self) -> int:
        return self.status.exit_code


def verify(
    target: Target,
    bundles: Sequence[Bundle],
    keyring: Keyring | None = None,
    *,
    options: HashOptions | None = None,
    expected_signer: str | None = None,
    now: dt.datetime | None = None,
) -> VerificationResult:
    """Check every bundle: trusted signature, usable key, then the target's digests."""
    ring = keyring or Keyring()
    trusted = ring.entries()
    expected = ring.find(expected_signer) if expected_signer else None
    moment = now or now_utc()
    problems: list[Problem] = []
    signers: list[KeyInfo] = []
    statements: list[Statement] = []
    notes: list[str] = []
    if not bundles:
        problems.append(Problem(Cause.NO_EVIDENCE, f"no attestation to check for {target.uri}"))
    for bundle in bundles:
        signer, problem = _authenticate(bundle, trusted)
        if problem is not None:
            problems.append(problem)
            continue
        assert signer is not None
        signers.append(signer)
        problems.extend(_usable(signer, target, moment, expected))
        try:
            statement = Statement.from_bytes(bundle.envelope.payload)
        except BundleFormatError as exc:
            problems.append(Problem(Cause.MALFORMED, exc.message))
            continue
        statements.append(statement)
    problems.extend(_check_target(target, statements, options or HashOptions(), notes))
    return VerificationResult(target.uri, tuple(problems), tuple(signers), tuple(statements), tuple(notes))


def _authenticate(bundle: Bundle, trusted: tuple[KeyInfo, ...]) -> tuple[KeyInfo | None, Problem | None]:
    envelope = bundle.envelope
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        return None, Problem(Cause.UNSUPPORTED, f"payload type {envelope.payload_type!r} is not in-toto")
    hints = {bundle.key_hint or ""} | {s.keyid for s in envelope.signatures}
    named = [k for k in trusted if any(hmac.compare_digest(k.key_id, h) for h in hints if h)]
    candidates = named or list(trusted)  # no usable hint (older model-signing bundles): try every key
    data = envelope.signed_bytes()
    for info in candidates:
        key = load_public_key(info.public_pem.encode(), source=f"trusted key {info.name!r}")
        if any(verify_signature(key, s.sig, data) for s in envelope.signatures):
            return info, None
    if named:
        return None, Problem(
            Cause.BAD_SIGNATURE, f"the signature does not verify with trusted key {named[0].name!r}"
        )
    hint = bundle.key_hint or next((s.keyid for s in envelope.signatures if s.keyid), "none")
    return None, Problem(
        Cause.UNKNOWN_SIGNER, f"signed by a key that is not in the trust file (key id {hint[:16]})"
    )


def _usable(signer: KeyInfo, target: Target, moment: dt.datetime, expected: KeyInfo | None) -> list[Problem]:
    problems = []
    if expected is not None and expected.key_id != signer.key_id:
        problems.append(
            Problem(
                Cause.WRONG_SIGNER, f"signed by {signer.name!r} ({signer.short_id}), not {expected.name!r}"
            )
        )
    if signer.status is KeyStatus.DISABLED:
        problems.append(
            Problem(Cause.KEY_DISABLED, f"the signing key {signer.name!r} ({signer.short_id}) is disabled")
        )
    if signer.expired(moment):
        problems.append(
            Problem(Cause.KEY_EXPIRED, f"the signing key {signer.name!r} expired at {signer.expires}")
        )
    if not signer.allows(target.kind.value):
        problems.append(
            Problem(
                Cause.OUT_OF_SCOPE,
                f"key {signer.name!r} is trusted for {list(signer.scopes)}, not {target.kind.value}",
            )
        )
    return problems


def _check_target(
    target: Target, statements: list[Statement], options: HashOptions, notes: list[str]
) -> list[Problem]:
    problems: list[Problem] = []
    manifests = [s for s in statements if s.predicate_type == PREDICATE_TYPE]
    others = [s for s in statements if s.predicate_type != PREDICATE_TYPE]
    checked_subjects: set[str] = set()
    env_files_checked = False
    for statement in manifests:
        try:
            expected = parse_manifest(statement)
        except BundleFormatError as exc:
            problems.append(Problem(Cause.MALFORMED, exc.message))
            continue
        try:
            actual = _recompute(target, expected, options)
        except BastionError as exc:
            problems.append(Problem(Cause.UNREADABLE, exc.message))
            continue
        if target.kind is TargetKind.GIT:
            problems.extend(_check_commit(target, expected, actual, notes))
        if expected.spec.method is Method.SHARDS and expected.empty_files is None and actual.empty_files:
            notes.append("this shard manifest (made by model-signing) does not cover empty files")
        for change, name in diff(expected, actual):
            problems.append(
                Problem(_CHANGE_CAUSE[change], f"{name} was {change.value} since it was signed", name)
            )
        checked_subjects.add(expected.subject.digests[0].hex)
    for statement in others:
        if target.kind is TargetKind.IMAGE:
            problems.extend(_check_image(target, statement))
            continue
        if target.kind is TargetKind.ENV:
            problems.extend(_check_env_subject(target, statement))
            if not env_files_checked:
                problems.extend(_check_env_files(target, statement, options, notes))
                env_files_checked = True
            continue
        digest = statement.subjects[0].digest("sha256")
        if not checked_subjects:
            problems.append(
                Problem(
                    Cause.UNSUPPORTED,
                    f"{statement.predicate_type} needs the manifest attestation to be checked",
                )
            )
        elif digest is None or not any(hmac.compare_digest(digest.hex, s) for s in checked_subjects):
            problems.append(
                Problem(Cause.SUBJECT_MISMATCH, f"the {statement.predicate_type} subject is another artifact")
            )
    return problems


def _recompute(target: Target, expected: ModelManifest, options: HashOptions) -> ModelManifest:
    if target.kind is TargetKind.GIT:
        from bastion.evidence.gitrepo import git_manifest

        return git_manifest(target.path, target.rev, expected.selection)[0]
    if target.kind not in (TargetKind.DIR, TargetKind.FILE):
        raise BundleFormatError(f"a model manifest cannot describe a {target.kind.value}: target")
    hashing = replace(options, spec=expected.spec, selection=expected.selection)
    return compute_manifest(target, hashing)


def _check_env_subject(target: Target, statement: Statement) -> list[Problem]:
    """The environment's distributions and RECORD digests against the signed BOM, naming each change."""
    from bastion.evidence.bom import environment_bom

    try:
        document, actual = environment_bom(target.path)
    except BastionError as exc:
        return [Problem(Cause.UNREADABLE, exc.message)]
    stated = statement.subjects[0].digest("sha256")
    have = actual.digest("sha256")
    if stated is not None and have is not None and hmac.compare_digest(stated.hex, have.hex):
        return []
    problems = _distribution_changes(statement.predicate, document)
    problems.append(Problem(Cause.SUBJECT_MISMATCH, f"{target.uri} is not the environment that was attested"))
    return problems


def _distribution_changes(signed: Any, current: dict[str, Any]) -> list[Problem]:
    """Which distributions were added, removed, upgraded or had their RECORD changed."""

    def by_name(document: Any) -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}
        components = document.get("components") if isinstance(document, dict) else None
        for component in components if isinstance(components, list) else []:
            try:
                found[str(component["name"])] = (
                    str(component["version"]),
                    str(component["hashes"][0]["content"]),
                )
            except (KeyError, IndexError, TypeError):
                continue
        return found

    before, after = by_name(signed), by_name(current)
    problems = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old is None and new is not None:
            problems.append(Problem(Cause.ADDED, f"distribution {name} {new[0]} was installed since", name))
        elif new is None and old is not None:
            problems.append(Problem(Cause.REMOVED, f"distribution {name} {old[0]} was removed since", name))
        elif old is not None and new is not None and old[0] != new[0]:
            problems.append(
                Problem(Cause.CHANGED, f"distribution {name} changed from {old[0]} to {new[0]}", name)
            )
        elif old is not None and new is not None and old[1] != new[1]:
            problems.append(Problem(Cause.CHANGED, f"distribution {name} {new[0]}: its RECORD changed", name))
    return problems


def _check_env_files(
    target: Target, statement: Statement, options: HashOptions, notes: list[str]
) -> list[Problem]:
    """Every installed file against the digest its (signed) RECORD pins, then the startup files."""
    from bastion.evidence.envfiles import FileState, check_installed

    cause = {
        FileState.CHANGED: Cause.CHANGED,
        FileState.MISSING: Cause.REMOVED,
        FileState.UNREADABLE: Cause.UNREADABLE,
        FileState.UNSUPPORTED: Cause.UNSUPPORTED,
    }
    try:
        found = check_installed(target.path, workers=options.workers)
    except BastionError as exc:
        return [Problem(Cause.UNREADABLE, exc.message)]
    notes.append(
        f"re-hashed {found.checked} installed files against their RECORD digests; "
        f"{found.unhashed} RECORD rows carry no digest (compiled .pyc files, RECORD itself): not checked"
    )
    problems = [Problem(cause[p.state], p.detail, p.path) for p in found.problems]
    return problems + _check_startup_files(target, statement, notes)


def _check_startup_files(target: Target, statement: Statement, notes: list[str]) -> list[Problem]:
    """``.pth`` / ``*customize.py`` files that no RECORD owns, against those the signed BOM lists."""
    from bastion.evidence.bom import signed_startup_files
    from bastion.evidence.envfiles import startup_files

    signed = signed_startup_files(statement.predicate)
    if signed is None:
        notes.append("this attestation predates startup-file tracking: unowned .pth files were not compared")
        return []
    try:
        current = startup_files(target.path)
    except BastionError as exc:
        return [Problem(Cause.UNREADABLE, exc.message)]
    problems = []
    for path in sorted(signed.keys() | current.keys()):
        if path not in signed:
            problems.append(
                Problem(
                    Cause.ADDED, f"{path} was added: Python runs it at startup and no RECORD owns it", path
                )
            )
        elif path not in current:
            problems.append(Problem(Cause.REMOVED, f"{path} (a startup file) was removed since", path))
        elif signed[path] != current[path]:  # public digests: no timing to hide
            problems.append(Problem(Cause.CHANGED, f"{path} (a startup file no RECORD owns) changed", path))
    return problems


def _check_commit(
    target: Target, expected: ModelManifest, actual: ModelManifest, notes: list[str]
) -> list[Problem]:
    """The signed commit must still exist; another commit with the same tree is only a note."""
    from bastion.evidence.gitrepo import commit_exists

    signed = (expected.git or {}).get("commit")
    current = (actual.git or {}).get("commit")
    if signed is None:
        notes.append("this manifest records no commit (it was made from a folder); compared trees only")
        return []
    if not commit_exists(target.path, signed):
        return [
            Problem(
                Cause.MISSING_COMMIT,
                f"the signed commit {signed} is not in the repository (history rewritten?)",
            )
        ]
    if current != signed:
        notes.append(f"checked commit {current}; the signed commit is {signed}")
    return []


def _check_image(target: Target, statement: Statement) -> list[Problem]:
    """Every blob against its digest (naming the layer), then the image id and manifest digest."""
    from bastion.evidence.image import read_image
    from bastion.evidence.imagebom import signed_layers

    try:
        image = read_image(target.path)
    except BastionError as exc:
        return [Problem(Cause.UNREADABLE, exc.message)]
    problems = [Problem(Cause.CHANGED, m.detail, m.path) for m in image.mismatches]
    signed = signed_layers(statement.predicate)
    for layer in image.layers:
        if layer.index in signed and not hmac.compare_digest(signed[layer.index], layer.digest):
            problems.append(
                Problem(
                    Cause.CHANGED,
                    f"layer {layer.index} is {layer.digest}; the signed image has {signed[layer.index]}",
                    layer.path,
                )
            )
    if signed and len(signed) != len(image.layers):
        problems.append(
            Problem(Cause.CHANGED, f"the image has {len(image.layers)} layers; the signed one {len(signed)}")
        )
    for stated, actual in zip(statement.subjects, image.subjects, strict=False):
        want, have = stated.digest("sha256"), actual.digest("sha256")
        if want is None or have is None or not hmac.compare_digest(want.hex, have.hex):
            what = "image id (config digest)" if actual is image.subjects[0] else "manifest digest"
            problems.append(
                Problem(Cause.SUBJECT_MISMATCH, f"the {what} is {have}; the signed image has {want}")
            )
    return problems

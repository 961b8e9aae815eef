"""Make attestations: target -> in-toto statements -> DSSE envelopes -> Sigstore bundles.

``make_statements`` is pure with respect to the target's bytes: the same files, options and
predicates always give byte-identical statements (and, since signatures are deterministic, the
same key gives byte-identical bundles).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bastion.core import Subject
from bastion.errors import UsageError
from bastion.evidence.bundle import Bundle
from bastion.evidence.dsse import sign_envelope
from bastion.evidence.hashing import DigestCache, HashSpec, Selection, hash_entries, walk
from bastion.evidence.manifest import ModelManifest, build_manifest
from bastion.evidence.signers import Signer
from bastion.evidence.statement import Statement
from bastion.evidence.targets import Target, TargetKind

SCAN_PREDICATE_TYPE = "https://github.com/bastion-mlsecops/bastion/scan-report/v1"


class PredicateKind(enum.Enum):
    MANIFEST = "manifest"
    BOM = "bom"
    SCAN = "scan"


DEFAULT_PREDICATES: dict[TargetKind, tuple[PredicateKind, ...]] = {
    TargetKind.DIR: (PredicateKind.MANIFEST,),
    TargetKind.FILE: (PredicateKind.MANIFEST,),
    TargetKind.GIT: (PredicateKind.MANIFEST,),
    TargetKind.ENV: (PredicateKind.BOM,),
    TargetKind.IMAGE: (PredicateKind.BOM,),
}


@dataclass(frozen=True)
class HashOptions:
    spec: HashSpec = field(default_factory=HashSpec)
    selection: Selection = field(default_factory=Selection)
    workers: int | None = None
    cache_path: Path | None = None
    allow_outside_symlinks: bool = False
    use_mmap: bool = True  # False: read through a buffer (see ``hashing``: SIGBUS on truncation)


@dataclass(frozen=True)
class Attestation:
    target: Target
    statement: Statement
    bundle: Bundle


def compute_manifest(target: Target, options: HashOptions) -> ModelManifest:
    """Hash a ``dir:``/``file:``/``git:`` target into a model-signing manifest."""
    selection = options.selection
    if target.kind is TargetKind.GIT:
        from bastion.evidence.gitrepo import git_manifest

        # every tracked file is the subject, .gitignore and .github included; only the globs apply
        return git_manifest(target.path, target.rev, replace(selection, ignore_paths=()))[0]
    if target.kind not in (TargetKind.DIR, TargetKind.FILE):
        raise UsageError(f"a manifest describes files, folders and commits, not {target.kind.value} targets")
    entries = walk(target.path, selection, allow_outside_symlinks=options.allow_outside_symlinks)
    cache = DigestCache(options.cache_path) if options.cache_path else None
    try:
        resources = hash_entries(
            entries, options.spec, workers=options.workers, cache=cache, use_mmap=options.use_mmap
        )
    finally:
        if cache:
            cache.close()
    return build_manifest(target.name, options.spec, selection, entries, resources)


def ignoring(options: HashOptions, target: Target, path: Path | None) -> HashOptions:
    """Leave ``path`` (the bundle being written) out of the manifest when it lies inside the target."""
    if path is None or target.kind is not TargetKind.DIR:
        return options
    try:
        rel = path.resolve().relative_to(target.path.resolve()).as_posix()
    except ValueError:
        return options
    selection = options.selection
    ignore = tuple(sorted({*selection.ignore_paths, rel}))
    return replace(options, selection=replace(selection, ignore_paths=ignore))


def make_statements(
    target: Target, predicates: tuple[PredicateKind, ...], options: HashOptions
) -> list[Statement]:
    statements: list[Statement] = []
    manifest: ModelManifest | None = None
    if target.kind in (TargetKind.DIR, TargetKind.FILE, TargetKind.GIT):
        manifest = compute_manifest(target, options)
    for kind in predicates:
        if kind is PredicateKind.MANIFEST:
            if manifest is None:
                raise UsageError(
                    f"the manifest predicate needs a dir:, file: or git: target, not {target.uri}"
                )
            statements.append(manifest.statement())
        elif kind is PredicateKind.BOM and target.kind is TargetKind.IMAGE:
            from bastion.evidence.bom import BOM_PREDICATE_TYPE
            from bastion.evidence.imagebom import image_bom

            bom, subjects = image_bom(target.path)
            statements.append(Statement(subjects, BOM_PREDICATE_TYPE, bom))
        elif kind is PredicateKind.BOM:
            from bastion.evidence.bom import BOM_PREDICATE_TYPE, bom_for_target

            bom, subject = bom_for_target(target, manifest)
            statements.append(Statement((subject,), BOM_PREDICATE_TYPE, bom))
        else:
            if manifest is None or target.kind is TargetKind.GIT:
                # a scan reads the working tree, which is not what a git: subject names
                raise UsageError("scan reports are attested for dir: and file: targets")
            statements.append(Statement((manifest.subject,), SCAN_PREDICATE_TYPE, _scan_predicate(target)))
    return statements


def _scan_predicate(target: Target) -> dict[str, Any]:
    from bastion.render.json_report import report_to_dict
    from bastion.scanners.engine import scan_paths

    report = report_to_dict(scan_paths([target.path]))
    report["summary"].pop("duration_s", None)  # timing is not evidence, and would break reproducibility
    report["roots"] = [target.name]
    cleaned: dict[str, Any] = _without_floats(report)
    return cleaned


def _without_floats(value: Any) -> Any:
    """Signed JSON carries no floats (see ``canonical``): keep their text instead."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {k: _without_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_floats(v) for v in value]
    return value


def sign_statement(statement: Statement, signer: Signer) -> Bundle:
    return Bundle(sign_envelope(statement.to_bytes(), signer), signer.key_id)


def attest(
    target: Target,
    signer: Signer,
    predicates: tuple[PredicateKind, ...] | None = None,
    options: HashOptions | None = None,
) -> list[Attestation]:
    chosen = predicates or DEFAULT_PREDICATES[target.kind]
    statements = make_statements(target, chosen, options or HashOptions())
    return [Attestation(target, s, sign_statement(s, signer)) for s in statements]


def subject_of(statement: Statement) -> Subject:
    return statement.subjects[0]

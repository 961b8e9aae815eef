"""The OpenSSF model-signing v1.0 manifest predicate (``https://model_signing/signature/v1.0``).

Written exactly as model-signing reads it (so ``model_signing verify key`` accepts Bastion's bundles)
and read as model-signing writes it (so Bastion verifies theirs), with two differences that only
make it stricter: ``ignore_paths`` is sorted (model-signing emits it in random order, so its
statements are not reproducible), and a ``bastion`` member, which v1.0 verifiers ignore, records
the include/exclude globs and, for shard manifests, the empty files (model-signing's shard
serialization lists no empty file, so adding or removing one would otherwise go unnoticed).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bastion.core import Digest, Subject
from bastion.evidence.errors import BundleFormatError
from bastion.evidence.hashing import FileEntry, HashSpec, Method, Resource, Selection, root_digest
from bastion.evidence.statement import Statement

PREDICATE_TYPE = "https://model_signing/signature/v1.0"


@dataclass(frozen=True)
class ModelManifest:
    name: str
    spec: HashSpec
    allow_symlinks: bool
    selection: Selection
    resources: tuple[Resource, ...]
    empty_files: tuple[str, ...] | None  # None: not recorded (a model-signing shard manifest)
    git: Mapping[str, str] | None = None  # commit, tree, remote of a git: target

    @property
    def subject(self) -> Subject:
        return Subject(self.name, (Digest("sha256", root_digest(self.resources)),))

    def predicate(self) -> dict[str, Any]:
        serialization: dict[str, Any] = {
            "method": self.spec.method.value,
            "hash_type": self.spec.algorithm,
            "allow_symlinks": self.allow_symlinks,
        }
        if self.spec.method is Method.SHARDS:
            serialization["shard_size"] = self.spec.shard_size
        if self.selection.ignore_paths:
            serialization["ignore_paths"] = sorted(self.selection.ignore_paths)
        extension: dict[str, Any] = {
            "include": list(self.selection.include),
            "exclude": list(self.selection.exclude),
        }
        if self.empty_files is not None and self.spec.method is Method.SHARDS:
            extension["empty_files"] = list(self.empty_files)
        if self.git is not None:
            extension["git"] = dict(self.git)
        return {
            "serialization": serialization,
            "resources": [
                {"name": r.name, "algorithm": r.algorithm, "digest": r.digest} for r in self.resources
            ],
            "bastion": extension,
        }

    def statement(self) -> Statement:
        return Statement((self.subject,), PREDICATE_TYPE, self.predicate())


def build_manifest(
    name: str, spec: HashSpec, selection: Selection, entries: list[FileEntry], resources: list[Resource]
) -> ModelManifest:
    empty = tuple(e.name for e in entries if e.size == 0)
    return ModelManifest(
        name=name,
        spec=spec,
        allow_symlinks=any(e.via_symlink for e in entries),
        selection=selection,
        resources=tuple(resources),
        empty_files=empty,
    )


def parse_manifest(statement: Statement) -> ModelManifest:
    """Validate a v1.0 manifest predicate, including that the subject digest covers its resources."""
    if statement.predicate_type != PREDICATE_TYPE:
        raise BundleFormatError(f"not a model-signing v1.0 manifest: {statement.predicate_type!r}")
    if len(statement.subjects) != 1:
        raise BundleFormatError("a model-signing manifest has exactly one subject")
    predicate = statement.predicate
    serialization = predicate.get("serialization")
    raw_resources = predicate.get("resources")
    if not isinstance(serialization, dict) or not isinstance(raw_resources, list):
        raise BundleFormatError("the manifest predicate lacks serialization or resources")
    try:
        method = Method(serialization.get("method"))
        shard_size = _integer(serialization.get("shard_size", 1)) if method is Method.SHARDS else 1
        spec = HashSpec(method, str(serialization.get("hash_type")), shard_size or 1)
    except ValueError as exc:
        raise BundleFormatError(f"unsupported manifest serialization: {exc}") from None
    if method is Method.FILES:
        spec = HashSpec(method, spec.algorithm)
    ignore = serialization.get("ignore_paths", [])
    extension = predicate.get("bastion", {})
    if not isinstance(ignore, list) or not isinstance(extension, dict):
        raise BundleFormatError("the manifest's ignore_paths or bastion member is malformed")
    selection = Selection(
        include=tuple(str(p) for p in extension.get("include", [])),
        exclude=tuple(str(p) for p in extension.get("exclude", [])),
        ignore_paths=tuple(sorted(str(p) for p in ignore)),
    )
    resources = tuple(sorted((_resource(r, spec) for r in raw_resources), key=lambda r: r.sort_key))
    ordered = tuple(_resource(r, spec) for r in raw_resources)
    subject = statement.subjects[0]
    stated = subject.digest("sha256")
    if stated is None or stated.hex != root_digest(ordered):
        raise BundleFormatError(
            "the manifest is inconsistent: its subject digest does not cover its resources"
        )
    empty = extension.get("empty_files")
    git = extension.get("git")
    if git is not None and (
        not isinstance(git, dict) or not all(isinstance(v, str) for v in git.values()) or "commit" not in git
    ):
        raise BundleFormatError("the manifest's git member is malformed")
    return ModelManifest(
        name=subject.name,
        spec=spec,
        allow_symlinks=bool(serialization.get("allow_symlinks", False)),
        selection=selection,
        resources=resources,
        empty_files=tuple(str(e) for e in empty) if isinstance(empty, list) else None,
        git=git,
    )


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValueError(f"shard_size {value!r} is not an integer")
    return int(value)


def _resource(raw: Any, spec: HashSpec) -> Resource:
    if not isinstance(raw, dict):
        raise BundleFormatError("a manifest resource is not an object")
    name, algorithm, digest = raw.get("name"), raw.get("algorithm"), raw.get("digest")
    if not isinstance(name, str) or not isinstance(digest, str) or algorithm != spec.resource_algorithm:
        raise BundleFormatError(f"manifest resource {name!r} is malformed or uses another algorithm")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise BundleFormatError(f"manifest resource {name!r} has a malformed digest")
    if spec.method is Method.FILES:
        return Resource(name, None, None, algorithm, digest)
    parts = name.rsplit(":", 2)
    try:
        path, start, end = parts[0], int(parts[1]), int(parts[2])
    except (ValueError, IndexError):
        raise BundleFormatError(f"shard resource {name!r} is not PATH:START:END") from None
    if not path or not 0 <= start < end:
        raise BundleFormatError(f"shard resource {name!r} is not PATH:START:END")
    return Resource(path, start, end, algorithm, digest)


class Change(enum.Enum):
    CHANGED = "changed"
    ADDED = "added"
    REMOVED = "removed"


def diff(expected: ModelManifest, actual: ModelManifest) -> list[tuple[Change, str]]:
    """File-level differences between what was signed and what is on disk, sorted by file."""
    want: dict[str, list[tuple[int | None, int | None, str]]] = defaultdict(list)
    have: dict[str, list[tuple[int | None, int | None, str]]] = defaultdict(list)
    for r in expected.resources:
        want[r.file].append((r.start, r.end, r.digest))
    for r in actual.resources:
        have[r.file].append((r.start, r.end, r.digest))
    if expected.spec.method is Method.SHARDS and expected.empty_files is not None:
        for name in expected.empty_files:
            want[name].append((0, 0, ""))
        for name in actual.empty_files or ():
            have[name].append((0, 0, ""))
    changes: list[tuple[Change, str]] = []
    for name in sorted(set(want) | set(have)):
        if name not in have:
            changes.append((Change.REMOVED, name))
        elif name not in want:
            changes.append((Change.ADDED, name))
        elif sorted(want[name], key=str) != sorted(have[name], key=str):
            changes.append((Change.CHANGED, name))
    return changes

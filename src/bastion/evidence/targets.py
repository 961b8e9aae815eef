"""Attestation targets named by URI: ``dir:PATH``, ``file:PATH``, ``env:[VENV]``, ``git:PATH``, ``image:TAR``.

A bare path is a ``dir:`` or ``file:`` target depending on what it is on disk. ``git:PATH@REV`` names
a commit (default HEAD); ``image:`` takes a ``docker save`` tarball or an OCI layout (folder or tar).
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass
from pathlib import Path

from bastion.errors import UsageError
from bastion.evidence.errors import TargetError


class TargetKind(enum.Enum):
    DIR = "dir"
    FILE = "file"
    ENV = "env"
    GIT = "git"
    IMAGE = "image"


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    path: Path
    rev: str | None = None  # git: the revision asked for (None: HEAD)

    @property
    def uri(self) -> str:
        suffix = f"@{self.rev}" if self.rev else ""
        return f"{self.kind.value}:{self.path}{suffix}"

    @property
    def name(self) -> str:
        return self.path.resolve().name or str(self.path)


def parse_target(text: str) -> Target:
    scheme, sep, rest = text.partition(":")
    kinds = {k.value: k for k in TargetKind}
    if sep and scheme in kinds:
        kind = kinds[scheme]
        if kind is TargetKind.ENV and not rest:
            return Target(kind, Path(sys.prefix))
        if not rest:
            raise UsageError(f"target {text!r} names no path")
        target = _git_target(rest) if kind is TargetKind.GIT else Target(kind, Path(rest).expanduser())
    else:
        path = Path(text).expanduser()
        if path.is_dir():
            target = Target(TargetKind.DIR, path)
        elif path.is_file():
            target = Target(TargetKind.FILE, path)
        elif not path.exists():
            raise TargetError(f"{text}: no such file or folder")
        else:
            raise TargetError(f"{text} is neither a file nor a folder")
    _check(target)
    return target


def _git_target(rest: str) -> Target:
    """``PATH`` or ``PATH@REV``; a folder whose own name holds ``@`` wins over a revision."""
    whole = Path(rest).expanduser()
    head, sep, rev = rest.rpartition("@")
    if whole.exists() or not sep or not head:
        return Target(TargetKind.GIT, whole)
    if not rev:
        raise UsageError(f"git:{rest} names no revision after '@'")
    return Target(TargetKind.GIT, Path(head).expanduser(), rev)


def _check(target: Target) -> None:
    path = target.path
    if not path.exists():
        raise TargetError(f"{target.uri}: no such file or folder")
    if target.kind in (TargetKind.DIR, TargetKind.GIT, TargetKind.ENV) and not path.is_dir():
        raise TargetError(f"{target.uri}: a {target.kind.value} target must be a folder")
    if target.kind is TargetKind.IMAGE and not (path.is_file() or path.is_dir()):
        raise TargetError(f"{target.uri}: an image target is a tarball or an OCI layout folder")
    if target.kind is TargetKind.FILE and not path.is_file():
        raise TargetError(f"{target.uri}: a {target.kind.value} target must be a file")

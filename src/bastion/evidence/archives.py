"""An image layout as an archive: a tar or a folder, read by POSIX member name, never extracted.

Member names that are absolute or climb with ``..``, symlinks whose target leaves the root, hard links
out of the archive and metadata over ``MAX_METADATA`` bytes are refused with ``TargetError``.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO

from bastion.evidence.errors import TargetError

MAX_METADATA = 16 * 1024 * 1024  # index, manifest or config JSON
_MAX_LINKS = 8


def safe_name(name: str, where: str) -> str:
    """``name`` normalised (no ``./``); ``TargetError`` if it is absolute or climbs with ``..``."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise TargetError(f"{where}: member {name!r} is an absolute path or climbs out with '..'")
    return "/".join(p for p in path.parts if p != ".")


def link_target(name: str, link: str, where: str, *, absolute_inside: bool) -> str:
    """Where the symlink ``name`` -> ``link`` points, as a member name; refused if it leaves the root."""
    if link.startswith("/"):
        if not absolute_inside:
            raise TargetError(f"{where}: symlink {name!r} points outside the archive (to {link!r})")
        parts: list[str] = []
        rest = PurePosixPath(link).parts[1:]
    else:
        parts = list(PurePosixPath(name).parent.parts)
        rest = PurePosixPath(link).parts
    for part in rest:
        if part == "..":
            if not parts:
                raise TargetError(f"{where}: symlink {name!r} leaves the layer (to {link!r})")
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


class Archive:
    def __init__(self, where: str) -> None:
        self.where = where

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Release the archive."""

    def read(self, name: str, limit: int = MAX_METADATA) -> bytes:
        if self.size(name) > limit:
            raise TargetError(f"{self.where}: {name} is larger than {limit} bytes")
        with self.open(name) as fh:
            return fh.read(limit + 1)[:limit]


class TarArchive(Archive):
    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        try:
            self._tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by close()
            members = self._tar.getmembers()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise TargetError(f"{path} is not a readable tar archive: {exc}") from None
        self._members: dict[str, tarfile.TarInfo] = {}
        try:
            for member in members:
                name = safe_name(member.name, self.where)
                if name in self._members and not member.isdir():
                    raise TargetError(f"{path}: {name} appears twice in the archive")
                self._members[name] = member
        except TargetError:
            self._tar.close()
            raise

    def _member(self, name: str) -> tarfile.TarInfo:
        for _ in range(_MAX_LINKS):
            member = self._members.get(name)
            if member is None:
                raise TargetError(f"{self.where}: no {name} in the archive")
            if member.isfile():
                return member
            if member.issym():
                name = link_target(name, member.linkname, self.where, absolute_inside=False)
            elif member.islnk():
                name = safe_name(member.linkname, self.where)
            else:
                raise TargetError(f"{self.where}: {name} is not a regular file")
        raise TargetError(f"{self.where}: {name} is behind too many links")

    def exists(self, name: str) -> bool:
        return name in self._members

    def size(self, name: str) -> int:
        return self._member(name).size

    def open(self, name: str) -> IO[bytes]:
        handle = self._tar.extractfile(self._member(name))
        assert handle is not None  # a regular file always has one
        return handle

    def close(self) -> None:
        self._tar.close()


class DirArchive(Archive):
    def __init__(self, root: Path) -> None:
        super().__init__(str(root))
        self._root = root.resolve()

    def _path(self, name: str) -> Path:
        path = (self._root / safe_name(name, self.where)).resolve()
        if not path.is_relative_to(self._root):
            raise TargetError(f"{self.where}: {name} is a symlink leaving the layout")
        if not path.is_file():
            raise TargetError(f"{self.where}: no regular file {name}")
        return path

    def exists(self, name: str) -> bool:
        return (self._root / name).exists()

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size

    def open(self, name: str) -> IO[bytes]:
        try:
            return self._path(name).open("rb")
        except OSError as exc:
            raise TargetError(f"cannot read {name} in {self.where}: {exc.strerror}") from None

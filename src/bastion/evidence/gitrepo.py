"""``git:PATH[@REV]`` targets: the tree of one commit of a local repository, read with the ``git`` command.

The subject is every tracked file of the commit (``git ls-tree -r``), each hashed with SHA-256 from
the object store (``git cat-file --batch``), as a model-signing ``files`` manifest whose ``bastion``
member records the commit id, tree id and remote URL. The working tree is never read, so uncommitted
changes are not part of the subject. Symlinks are hashed as git stores them (the link text) and
submodules as their pinned commit id.

git runs with replace objects, fsmonitor and hooks disabled, and with a fixed locale, so a
repository's own configuration cannot change what is read or run commands.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO
from urllib.parse import urlsplit, urlunsplit

from bastion.evidence.errors import TargetError
from bastion.evidence.hashing import HashSpec, Resource, Selection
from bastion.evidence.manifest import ModelManifest

_CHUNK = 1 << 20
_GIT_OPTIONS = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "core.quotePath=false")


@dataclass(frozen=True)
class GitCommit:
    """One resolved commit: its id, its tree id and the (credential-free) remote URL if any."""

    commit: str
    tree: str
    remote: str | None

    def as_dict(self) -> dict[str, str]:
        info = {"commit": self.commit, "tree": self.tree}
        if self.remote:
            info["remote"] = self.remote
        return info


@dataclass(frozen=True)
class _Entry:
    mode: str
    kind: str  # blob or commit (a submodule)
    oid: str
    path: str


def _git_binary() -> str:
    found = shutil.which("git")
    if found is None:
        raise TargetError("git: targets need the git command", hint="install git and try again")
    return found


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_NO_REPLACE_OBJECTS": "1", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    return env


def _run(repo: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argv, no shell; git is found on PATH
            [_git_binary(), *_GIT_OPTIONS, "-C", str(repo), *args],
            capture_output=True,
            env=_env(),
            check=False,
        )
    except OSError as exc:
        raise TargetError(f"cannot run git: {exc.strerror}") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise _GitFailed(message[-1] if message else f"git {args[0]} failed")
    return done.stdout


class _GitFailed(TargetError):
    """A git command exited non-zero (its last stderr line is the message)."""


def resolve(repo: Path, rev: str | None) -> GitCommit:
    """The commit ``rev`` (default HEAD) names in ``repo``; ``TargetError`` if there is none."""
    if rev is not None and (not rev or rev.startswith("-")):
        raise TargetError(f"{rev!r} is not a revision")
    try:
        top = _run(repo, "rev-parse", "--is-inside-work-tree", "--git-dir").split()
    except _GitFailed as exc:
        raise TargetError(f"{repo} is not a git repository: {exc.message}") from None
    if not top:
        raise TargetError(f"{repo} is not a git repository")
    wanted = rev or "HEAD"
    try:
        commit = _run(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{wanted}^{{commit}}")
        tree = _run(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{wanted}^{{tree}}")
    except _GitFailed:
        raise TargetError(
            f"{repo}: no commit {wanted!r}", hint="is the history rewritten, or the clone shallow?"
        ) from None
    return GitCommit(commit.decode().strip(), tree.decode().strip(), _remote(repo))


def commit_exists(repo: Path, commit: str) -> bool:
    if not commit or any(c not in "0123456789abcdef" for c in commit):
        return False
    try:
        _run(repo, "cat-file", "-e", f"{commit}^{{commit}}")
    except _GitFailed:
        return False
    return True


def _remote(repo: Path) -> str | None:
    try:
        names = _run(repo, "remote").decode("utf-8", errors="replace").split()
    except _GitFailed:
        return None
    if not names:
        return None
    name = "origin" if "origin" in names else sorted(names)[0]
    try:
        url = _run(repo, "config", "--get", f"remote.{name}.url").decode("utf-8", errors="replace").strip()
    except _GitFailed:
        return None
    return strip_credentials(url) or None


def strip_credentials(url: str) -> str:
    """A remote URL without any ``user:token@`` part (signed statements are shared; tokens are not)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.scheme in ("http", "https", "ssh", "git") and "@" in parts.netloc:
        user, _, host = parts.netloc.rpartition("@")
        if parts.scheme == "ssh" and ":" not in user:
            return url  # ssh://git@host: a user name, not a secret
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def _tree(repo: Path, commit: str) -> list[_Entry]:
    raw = _run(repo, "ls-tree", "-r", "-z", "--full-tree", commit)
    entries: list[_Entry] = []
    for record in raw.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, oid = meta.decode("ascii").split(" ")
        try:
            name = path.decode("utf-8")
        except UnicodeDecodeError:
            raise TargetError(f"{repo}: tracked path {path!r} is not UTF-8; Bastion cannot name it") from None
        entries.append(_Entry(mode, kind, oid, name))
    return entries


def _feed(stdin: IO[bytes], oids: Iterable[str]) -> None:
    with contextlib.suppress(BrokenPipeError):  # git died: the reader reports the missing objects
        try:
            for oid in oids:
                stdin.write(oid.encode() + b"\n")
        finally:
            stdin.close()


def blob_digests(repo: Path, oids: list[str]) -> dict[str, str]:
    """SHA-256 of each blob's content, streamed out of one ``git cat-file --batch``."""
    unique = sorted(set(oids))
    if not unique:
        return {}
    process = subprocess.Popen(  # noqa: S603 - a fixed argv, no shell
        [_git_binary(), *_GIT_OPTIONS, "-C", str(repo), "cat-file", "--batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    assert process.stdin is not None and process.stdout is not None
    writer = threading.Thread(target=_feed, args=(process.stdin, unique), daemon=True)
    writer.start()
    digests: dict[str, str] = {}
    out = process.stdout
    try:
        for oid in unique:
            header = out.readline().decode("ascii", errors="replace").split()
            if len(header) != 3 or header[1] != "blob":
                raise TargetError(f"{repo}: git object {oid} is missing or not a blob")
            remaining = int(header[2])
            hasher = hashlib.sha256()
            while remaining:
                chunk = out.read(min(_CHUNK, remaining))
                if not chunk:
                    raise TargetError(f"{repo}: git stopped while reading object {oid}")
                hasher.update(chunk)
                remaining -= len(chunk)
            out.read(1)  # the newline after the content
            digests[header[0]] = hasher.hexdigest()
    finally:
        out.close()
        process.wait()
        writer.join()
    missing = set(unique) - set(digests)
    if missing:
        raise TargetError(f"{repo}: could not read git objects {sorted(missing)[:3]}")
    return digests


def git_manifest(
    repo: Path, rev: str | None, selection: Selection, *, name: str | None = None
) -> tuple[ModelManifest, GitCommit]:
    """The manifest of the tree of ``rev`` (default HEAD): one SHA-256 per tracked file."""
    commit = resolve(repo, rev)
    entries = [e for e in _tree(repo, commit.commit) if selection.wants(e.path)]
    blobs = blob_digests(repo, [e.oid for e in entries if e.kind == "blob"])
    resources = []
    for entry in entries:
        if entry.kind == "blob":
            digest = blobs[entry.oid]
        else:  # a submodule: pinned by its commit id, not descended into
            digest = hashlib.sha256(f"{entry.kind} {entry.oid}".encode()).hexdigest()
        resources.append(Resource(entry.path, None, None, "sha256", digest))
    resources.sort(key=lambda r: PurePosixPath(r.file).parts)
    manifest = ModelManifest(
        name=name or repo.resolve().name,
        spec=HashSpec(),
        allow_symlinks=any(e.mode == "120000" for e in entries),
        selection=selection,
        resources=tuple(resources),
        empty_files=(),
        git=commit.as_dict(),
    )
    return manifest, commit

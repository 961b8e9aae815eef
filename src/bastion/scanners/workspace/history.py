"""Secrets in git history: every blob version reachable from HEAD that the working tree no longer holds.

A key committed last year and deleted the next day is still in every clone. This module lists the
commits reachable from ``HEAD`` (newest first, at most ``max_commits``), the blobs each one added or
changed (``git log --raw``), drops the blobs the working tree still holds unchanged (the working-tree
scan reports those), reads each remaining blob once with ``git cat-file --batch`` (attributed to the
oldest scanned commit that introduced it) and runs the secret checks on it, notebooks decoded cell
by cell as in the working tree. A finding's ``file`` is the path at that commit and its ``member`` is
``commit <sha12>`` (plus the notebook cell when there is one); values are masked as always.

Only the ``git`` command is used, with every ``GIT_*`` variable of the caller removed, optional
locks off and ``core.fsmonitor`` disabled, so a hostile repository's config cannot make Bastion run a
program. Nothing is checked out; no filter, hook or textconv runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bastion.core import ProblemKind
from bastion.errors import InputError
from bastion.scanners.interface import FormatError, Location, ScanContext
from bastion.scanners.workspace import notebook, secrets
from bastion.scanners.workspace.baseline import inline_ignored
from bastion.scanners.workspace.config import WorkspaceConfig
from bastion.scanners.workspace.text import LineIndex, decode

DEFAULT_MAX_COMMITS = 1000
MAX_BLOB_BYTES = 16 * 1024 * 1024  # larger blobs are listed as skipped (datasets, weights)
# A repository's own config must not make git run a program: no fsmonitor hook, no pager, no gpg.
_GIT_SAFETY = (
    "--no-pager",
    *("-c", "core.fsmonitor=false", "-c", "core.untrackedCache=false", "-c", "core.quotePath=false"),
    *("-c", "log.showSignature=false", "-c", "diff.external=", "-c", "gpg.program=false"),
)
_PY_SUFFIXES = (".py", ".pyw", ".pyi")
_ZERO = frozenset("0")


@dataclass(frozen=True)
class HistoryBlob:
    """One blob version to scan: its object id, its path (relative to the scanned folder), the commit."""

    blob: str
    path: str
    commit: str


@dataclass(frozen=True)
class HistoryStats:
    commits: int
    blobs: int
    truncated: bool


class _Git:
    def __init__(self, root: Path) -> None:
        exe = shutil.which("git")
        if exe is None:
            raise InputError("--history needs the `git` command, and it is not on PATH")
        self.exe, self.root = exe, root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        self.env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})

    def argv(self, *args: str) -> list[str]:
        return [self.exe, *_GIT_SAFETY, "-C", str(self.root), *args]

    def run(self, *args: str, check: bool = True) -> bytes:
        done = subprocess.run(self.argv(*args), capture_output=True, env=self.env, check=False)  # noqa: S603
        if check and done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise InputError(
                f"git {args[0]} failed in {self.root}: {detail[-1] if detail else done.returncode}"
            )
        return done.stdout


def _is_repository(git: _Git) -> bool:
    return git.run("rev-parse", "--is-inside-work-tree", check=False).strip() == b"true"


def _head_exists(git: _Git) -> bool:
    return bool(git.run("rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False).strip())


def _worktree_blobs(git: _Git) -> set[str]:
    """Blob ids the working tree still holds unchanged (tracked, not modified since the index)."""
    staged = git.run("ls-files", "-s", "-z").split(b"\0")
    changed = set(git.run("diff-files", "--name-only", "--relative", "-z").split(b"\0"))
    out = set()
    for entry in staged:
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        if path not in changed:
            out.add(meta.split()[1].decode("ascii"))
    return out


def _changed_blobs(git: _Git, max_commits: int) -> tuple[list[str], list[HistoryBlob]]:
    """Commits (oldest first) and the blobs each added or modified, from one ``git log --raw``."""
    raw = git.run(
        "log",
        "--raw",
        "-z",
        "--no-abbrev",
        "--no-renames",
        "--root",
        "--relative",
        "--diff-merges=first-parent",
        "--no-textconv",
        "--no-ext-diff",
        "--format=commit:%H",
        f"--max-count={max_commits}",
        "--reverse",
        "HEAD",
        "--",
        ".",
    )
    commits: list[str] = []
    blobs: list[HistoryBlob] = []
    tokens = iter(raw.split(b"\0"))
    for token in tokens:
        token = token.lstrip(b"\n")
        if token.startswith(b"commit:"):
            commits.append(token[7:].decode("ascii"))
        elif token.startswith(b":") and commits:
            path = next(tokens, b"")
            fields = token[1:].split()
            if len(fields) != 5:
                continue
            mode, blob, status = fields[1], fields[3].decode("ascii"), fields[4]
            if status[:1] in (b"A", b"M", b"T") and mode.startswith(b"100") and set(blob) != _ZERO:
                blobs.append(HistoryBlob(blob, os.fsdecode(path), commits[-1]))
    return commits, blobs


def _read_blobs(git: _Git, ids: list[str]) -> Iterator[tuple[str, int, bytes | None]]:
    """(id, size, content) for each id, content None when over the size bound; one git process."""
    proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        git.argv("cat-file", "--batch"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=git.env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for blob in ids:
            proc.stdin.write(blob.encode("ascii") + b"\n")
            proc.stdin.flush()
            header = proc.stdout.readline().split()
            if len(header) != 3 or header[1] != b"blob":
                yield blob, 0, None
                continue
            size = int(header[2])
            if size > MAX_BLOB_BYTES:
                remaining = size + 1
                while remaining:
                    remaining -= len(proc.stdout.read(min(remaining, 1 << 20)) or b"\0" * remaining)
                yield blob, size, None
                continue
            data = proc.stdout.read(size)
            proc.stdout.read(1)  # the newline after the content
            yield blob, size, data
    finally:
        proc.stdin.close()
        proc.stdout.close()
        proc.wait()


def _scan_blob(text: str, loc: Location, path: str, ctx: ScanContext, config: WorkspaceConfig) -> str:
    """The secret checks on one historical version; returns the kind of text it was read as."""

    def report(hit: secrets.SecretHit, line: int, line_text: str, member: str | None, secret: str) -> None:
        if inline_ignored(line_text, hit.rule.rule_id):
            return
        if config.foreign.accepts(path, line, secret):  # .gitleaksignore commit:file:rule:line too
            return
        where = loc if member is None else loc.child(member)
        ctx.finding(where, hit.rule, f"{hit.message} (in git history)", line=line, severity=hit.severity)

    lines = LineIndex.of(text)
    if PurePosixPath(path).suffix.lower() == ".ipynb" or notebook.looks_like_notebook(text[:65536]):
        try:
            segments = list(notebook.parse_notebook(text))
        except FormatError:
            segments = []
        else:
            for seg in segments:
                for h in secrets.find_secrets(seg.text, code=seg.kind == "code"):
                    raw_line = seg.raw_line(h.start)
                    member = f"{seg.label}, line {seg.cell_line(h.start)}"
                    report(h, raw_line, lines.line_text(text, raw_line), member, seg.text[h.start : h.end])
            return "notebook"
    code = PurePosixPath(path).suffix.lower() in _PY_SUFFIXES
    for h in secrets.find_secrets(text, code=code):
        line = lines.line(h.start)
        report(h, line, lines.line_text(text, line), None, text[h.start : h.end])
    return "python" if code else "text"


def scan_history(
    root: Path, ctx: ScanContext, config: WorkspaceConfig, *, max_commits: int = DEFAULT_MAX_COMMITS
) -> HistoryStats:
    """Scan the history of the git repository holding ``root`` (paths under ``root`` only)."""
    if max_commits < 1:
        raise InputError("--history-max-commits must be at least 1")
    folder = root if root.is_dir() else root.parent
    git = _Git(folder)
    if not _is_repository(git):
        raise InputError(f"{root}: --history needs a git working tree, and this is not one")
    if not _head_exists(git):
        return HistoryStats(0, 0, truncated=False)
    total = int(git.run("rev-list", "--count", "HEAD", "--", ".").strip() or b"0")
    commits, changed = _changed_blobs(git, max_commits)
    current = _worktree_blobs(git)
    first: dict[str, HistoryBlob] = {}
    for b in changed:
        if b.blob not in current and b.blob not in first:
            first[b.blob] = b
    if root.is_file():
        first = {k: v for k, v in first.items() if v.path == root.name}
    for blob, size, data in _read_blobs(git, list(first)):
        entry = first[blob]
        loc = Location(entry.path, f"commit {entry.commit[:12]}")
        if data is None:
            reason = (
                f"git history blob over {MAX_BLOB_BYTES} bytes: not scanned" if size else "unreadable blob"
            )
            ctx.skip(loc, reason)
            continue
        text = decode(data)
        if text is None:
            continue  # binary: no secret checks, as in the working tree
        kind = _scan_blob(text, loc, entry.path, ctx, config)
        ctx.mark_scanned(loc, f"git-history:{kind}", size)
    truncated = total > len(commits)
    if truncated:
        message = f"git history: only the {len(commits)} newest of {total} commits were scanned"
        hint = Location(".git", "history")
        if config.strict:
            ctx.problem(hint, ProblemKind.LIMIT_EXCEEDED, message + " (raise --history-max-commits)")
        else:
            ctx.skip(hint, message + " (raise --history-max-commits)")
    return HistoryStats(len(commits), len(first), truncated)

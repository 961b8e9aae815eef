"""Parallel, streaming file hashing for attestations, with an opt-in digest cache.

Two serializations, named as OpenSSF model-signing names them so either tool can recompute them:

* ``files`` (default): one digest per file (algorithm ``sha256`` or ``blake3``); the only one the
  ``model_signing`` CLI verifies (with ``sha256``). One file is one sequential SHA-256, so a single
  huge file is hashed on one core.
* ``shards``: one digest per ``shard_size`` slice of every non-empty file (algorithm
  ``sha256-sharded-<shard_size>``), so one huge file is hashed on every core.

Work is split into (file, start, end) tasks, biggest first, pulled by ``workers`` threads from one
queue (hashlib releases the GIL while it hashes). Ranges up to ``SMALL_RANGE`` are read in one
call; larger ones are hashed straight from the page cache through read-only ``MMAP_WINDOW``
mappings, which saves the copy into a buffer (~12% of a core at SHA-NI speed; measured with
``benchmarks/signing``). Memory stays bounded: ``workers x SMALL_RANGE`` of buffers plus
``workers x MMAP_WINDOW`` of mapped page cache, whatever the model size.

A file truncated *while* it is mapped and hashed makes the kernel kill the process with SIGBUS
(exit 135): never a digest, never "verified". Pass ``use_mmap=False`` to stream through a
``READ_BUFFER`` instead where that matters (it then fails with ``TargetError``).

The cache (``DigestCache``) maps (device, inode, size, mtime_ns, ctime_ns, algorithm, range) to a
digest. ctime is part of the key because, unlike mtime, a user cannot set it back, so
``touch -d`` after an edit does not fool the cache.
"""

from __future__ import annotations

import enum
import fnmatch
import hashlib
import mmap
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from bastion.evidence.errors import TargetError

DEFAULT_SHARD_SIZE = 256 * 1024 * 1024
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
SMALL_RANGE = 1024 * 1024  # read in one call: cheaper than setting up a mapping
MMAP_WINDOW = 64 * 1024 * 1024  # mapped at a time per worker: bounds address space and resident pages
READ_BUFFER = 1024 * 1024  # when mapping is off: fits a core's L2, so hashing re-reads it from cache
_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", 3)


class Method(enum.Enum):
    FILES = "files"
    SHARDS = "shards"


@dataclass(frozen=True)
class HashSpec:
    method: Method = Method.FILES
    algorithm: str = "sha256"
    shard_size: int = DEFAULT_SHARD_SIZE

    def __post_init__(self) -> None:
        if self.algorithm not in ("sha256", "blake3"):
            raise ValueError(f"unsupported hash algorithm {self.algorithm!r}")
        if self.method is Method.SHARDS and (self.algorithm != "sha256" or self.shard_size < 1):
            raise ValueError("shard serialization needs sha256 and a positive shard size")

    @property
    def resource_algorithm(self) -> str:
        if self.method is Method.SHARDS:
            return f"{self.algorithm}-sharded-{self.shard_size}"
        return self.algorithm


@dataclass(frozen=True)
class FileEntry:
    """One regular file of a target: its name in the manifest and where its bytes are."""

    name: str  # POSIX path relative to the root; "." when the target is a single file
    path: Path
    size: int
    stat_key: tuple[int, int, int, int, int]  # dev, ino, size, mtime_ns, ctime_ns
    via_symlink: bool = False


@dataclass(frozen=True)
class Resource:
    """A digest of a whole file (``start is None``) or of one shard of it."""

    file: str
    start: int | None
    end: int | None
    algorithm: str
    digest: str

    @property
    def name(self) -> str:
        return self.file if self.start is None else f"{self.file}:{self.start}:{self.end}"

    @property
    def sort_key(self) -> tuple[list[str], int, int]:
        return (path_parts(self.file), self.start or 0, self.end or 0)


def path_parts(name: str) -> list[str]:
    """``PurePosixPath(name).parts`` (the manifest order), without building a path for plain names."""
    parts = name.split("/")
    if "" in parts or "." in parts:
        return list(PurePosixPath(name).parts)
    return parts


@dataclass(frozen=True)
class Selection:
    """Which files of a folder are attested: globs over POSIX relative paths, plus ignored paths."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    ignore_paths: tuple[str, ...] = GIT_PATHS

    def wants(self, name: str) -> bool:
        if any(_under(name, ignored) for ignored in self.ignore_paths):
            return False
        if self.include and not any(_matches(name, pattern) for pattern in self.include):
            return False
        return not any(_matches(name, pattern) for pattern in self.exclude)


def _under(name: str, prefix: str) -> bool:
    prefix = prefix.strip("/")
    return name == prefix or name.startswith(prefix + "/")


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern) or _under(name, pattern)


def walk(
    root: Path, selection: Selection = Selection(), *, allow_outside_symlinks: bool = False
) -> list[FileEntry]:
    """Every selected regular file under ``root`` (or ``root`` itself when it is a file), sorted.

    Refused with ``TargetError``: a missing root, special files, symlinked directories and symlinks
    whose target leaves the root (unless ``allow_outside_symlinks``), dangling symlinks.
    """
    try:
        root_stat = root.lstat()
    except OSError as exc:
        raise TargetError(f"cannot read {root}: {exc.strerror}") from None
    if stat.S_ISLNK(root_stat.st_mode):
        raise TargetError(f"{root} is a symlink", hint="attest the real path it points to")
    if stat.S_ISREG(root_stat.st_mode):
        return [_entry(".", root, root_stat, False)]
    if not stat.S_ISDIR(root_stat.st_mode):
        raise TargetError(f"{root} is neither a regular file nor a folder")
    real_root = root.resolve()
    entries: list[FileEntry] = []
    folders = [("", os.fspath(root))]  # (relative prefix, path): an explicit stack, no recursion limit
    while folders:
        prefix, folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                items = list(listing)
        except OSError as exc:
            raise TargetError(f"cannot read {prefix.rstrip('/') or root}: {exc.strerror}") from None
        for item in items:
            rel = prefix + item.name
            if item.is_dir(follow_symlinks=False):
                if not any(_under(rel, ignored) for ignored in selection.ignore_paths):
                    folders.append((rel + "/", item.path))
            elif item.is_symlink() and os.path.isdir(item.path):
                if not any(_under(rel, ignored) for ignored in selection.ignore_paths):
                    raise TargetError(f"{rel} is a symlinked folder; Bastion does not follow those")
            elif selection.wants(rel):
                entries.append(_checked(root, real_root, rel, item, allow_outside_symlinks))
    entries.sort(key=lambda e: path_parts(e.name))
    return entries


def _checked(root: Path, real_root: Path, rel: str, item: os.DirEntry[str], allow_outside: bool) -> FileEntry:
    path = Path(item.path)
    try:
        link = item.stat(follow_symlinks=False)
    except OSError as exc:
        raise TargetError(f"cannot read {rel}: {exc.strerror}") from None
    via_symlink = stat.S_ISLNK(link.st_mode)
    if via_symlink:
        target = path.resolve()
        if not allow_outside and not target.is_relative_to(real_root):
            raise TargetError(
                f"{rel} is a symlink leaving {root} (to {target})",
                hint="remove it, or pass --allow-symlinks-outside if this is intended",
            )
        try:
            link = path.stat()
        except OSError:
            raise TargetError(f"{rel} is a dangling symlink") from None
    if not stat.S_ISREG(link.st_mode):
        raise TargetError(f"{rel} is not a regular file (device, pipe or socket)")
    return _entry(rel, path, link, via_symlink)


def _entry(name: str, path: Path, st: os.stat_result, via_symlink: bool) -> FileEntry:
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return FileEntry(name, path, st.st_size, key, via_symlink)


# --- hashing -----------------------------------------------------------------------------------


class _Hasher(Protocol):
    def update(self, data: bytes | memoryview | mmap.mmap, /) -> object: ...
    def hexdigest(self) -> str: ...


def _new_hasher(algorithm: str) -> _Hasher:
    if algorithm == "blake3":
        try:
            import blake3  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise TargetError("blake3 hashing needs the 'blake3' package") from None
        hasher: _Hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        return hasher
    return hashlib.new(algorithm)  # sha256; sha384 / sha512 for RECORD files that use them


def hash_range(path: Path, start: int, end: int, algorithm: str = "sha256", *, use_mmap: bool = True) -> str:
    """Digest of ``path[start:end]``. The file must still be that long.

    Small ranges are read in one call; larger ones are hashed straight from the page cache through
    ``MMAP_WINDOW``-sized mappings (no copy into a buffer: that copy costs ~12% of a core), or
    streamed through one ``READ_BUFFER`` when mapping is off or not possible.
    """
    hasher = _new_hasher(algorithm)
    try:
        # O_NONBLOCK: a file swapped for a FIFO since it was listed must not hang the open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise TargetError(f"cannot read {path}: {exc.strerror}") from None
    try:
        if end - start <= SMALL_RANGE:
            _hash_small(fd, start, end, hasher, path)
        elif not (use_mmap and _hash_mapped(fd, start, end, hasher, path)):
            _hash_read(fd, start, end, hasher, path)
    except OSError as exc:
        raise TargetError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return hasher.hexdigest()


def _shrank(path: Path) -> TargetError:
    return TargetError(f"{path} shrank while it was being hashed")


def _hash_small(fd: int, start: int, end: int, hasher: _Hasher, path: Path) -> None:
    data = os.pread(fd, end - start, start)
    while len(data) < end - start:  # a short read is legal; only an empty one means end of file
        more = os.pread(fd, end - start - len(data), start + len(data))
        if not more:
            raise _shrank(path)
        data += more
    hasher.update(data)


def _hash_read(fd: int, start: int, end: int, hasher: _Hasher, path: Path) -> None:
    buffer = bytearray(min(READ_BUFFER, end - start))
    view = memoryview(buffer)
    position = start
    while position < end:
        got = os.preadv(fd, [view[: min(len(buffer), end - position)]], position)
        if not got:
            raise _shrank(path)
        hasher.update(view[:got])
        position += got


def _hash_mapped(fd: int, start: int, end: int, hasher: _Hasher, path: Path) -> bool:
    """Hash through read-only mappings; False (nothing hashed) if this file cannot be mapped."""
    position = start
    while position < end:
        offset = position - position % mmap.ALLOCATIONGRANULARITY
        length = min(end, offset + MMAP_WINDOW) - offset
        try:
            window = mmap.mmap(fd, length, mmap.MAP_SHARED, mmap.PROT_READ, offset=offset)
        except ValueError:  # the range now lies past the end of the file
            raise _shrank(path) from None
        except OSError:
            if position == start:
                return False  # e.g. a filesystem without mmap: read it instead
            raise
        with window:
            if hasattr(window, "madvise"):
                window.madvise(mmap.MADV_SEQUENTIAL)  # bigger readahead on a cold cache
            if offset + length < end and hasattr(os, "posix_fadvise"):
                # start reading the next window from disk while this one is hashed
                os.posix_fadvise(fd, offset + length, min(MMAP_WINDOW, end - offset - length), _WILLNEED)
            with memoryview(window) as view:
                hasher.update(view[position - offset :])
        position = offset + length
    return True


def tasks_for(entries: Iterable[FileEntry], spec: HashSpec) -> list[tuple[FileEntry, int | None, int | None]]:
    tasks: list[tuple[FileEntry, int | None, int | None]] = []
    for entry in entries:
        if spec.method is Method.FILES:
            tasks.append((entry, None, None))
            continue
        for start in range(0, entry.size, spec.shard_size):
            tasks.append((entry, start, min(start + spec.shard_size, entry.size)))
    return tasks


def hash_entries(
    entries: list[FileEntry],
    spec: HashSpec,
    *,
    workers: int | None = None,
    cache: DigestCache | None = None,
    progress: Callable[[str, int], None] | None = None,
    use_mmap: bool = True,
) -> list[Resource]:
    """Resources for ``entries`` in manifest order (by path components, then offset)."""
    tasks = tasks_for(entries, spec)
    results: list[str | None] = [None] * len(tasks)
    pending: list[int] = []
    for index, (entry, start, end) in enumerate(tasks):
        cached = cache.get(entry, spec.algorithm, start, end) if cache else None
        if cached is None:
            pending.append(index)
        else:
            results[index] = cached
    pending.sort(key=lambda i: -_length(tasks[i]))  # biggest first: better balance across workers

    def run(index: int) -> None:
        entry, start, end = tasks[index]
        stop = entry.size if end is None else end
        results[index] = hash_range(entry.path, start or 0, stop, spec.algorithm, use_mmap=use_mmap)
        if progress:
            progress(entry.name, _length(tasks[index]))

    # blake3 spreads one file over every core by itself
    run_parallel(pending, run, 1 if spec.algorithm == "blake3" else workers or os.cpu_count() or 1)
    _check_unchanged(entries)
    if cache:
        cache.put_many(
            (tasks[i][0], spec.algorithm, tasks[i][1], tasks[i][2], _done(results[i])) for i in pending
        )
    resources = [
        Resource(entry.name, start, end, spec.resource_algorithm, _done(results[index]))
        for index, (entry, start, end) in enumerate(tasks)
    ]
    resources.sort(key=lambda r: r.sort_key)
    return resources


def _done(digest: str | None) -> str:
    assert digest is not None, "every task is hashed or cached"
    return digest


def run_parallel(indexes: Sequence[int], run: Callable[[int], None], workers: int) -> None:
    """Run ``run`` over ``indexes`` on up to ``workers`` threads pulling from one queue.

    The first error is re-raised in the caller's thread once every worker has stopped. A shared
    iterator under a lock instead of one future per item: with thousands of small files the
    executor's per-task bookkeeping would cost more than the hashing.
    """
    count = min(workers, len(indexes))
    if count <= 1:
        for index in indexes:
            run(index)
        return
    queue = iter(indexes)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while not errors:
            with lock:
                index = next(queue, None)
            if index is None:
                return
            try:
                run(index)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread below
                errors.append(exc)
                return

    threads = [threading.Thread(target=worker, name=f"bastion-hash-{n}", daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _length(task: tuple[FileEntry, int | None, int | None]) -> int:
    entry, start, end = task
    return (entry.size if end is None else end) - (start or 0)


def _check_unchanged(entries: list[FileEntry]) -> None:
    """A file that changed while it was hashed gives a digest of nothing real: refuse it."""
    for entry in entries:
        try:
            st = os.stat(entry.path)
        except OSError as exc:
            raise TargetError(f"{entry.name} vanished while it was hashed: {exc.strerror}") from None
        if (st.st_size, st.st_mtime_ns) != (entry.stat_key[2], entry.stat_key[3]):
            raise TargetError(f"{entry.name} changed while it was hashed; try again")


def root_digest(resources: Iterable[Resource]) -> str:
    """The model-signing subject digest: SHA-256 over the raw resource digests, in manifest order."""
    hasher = hashlib.sha256()
    for resource in resources:
        hasher.update(bytes.fromhex(resource.digest))
    return hasher.hexdigest()


class DigestCache:
    """Opt-in cache of file digests in a SQLite file (stdlib ``sqlite3``; safe across threads)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS digests (dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER,"
            " ctime_ns INTEGER, algorithm TEXT, start INTEGER, stop INTEGER, digest TEXT NOT NULL,"
            " PRIMARY KEY (dev, ino, size, mtime_ns, ctime_ns, algorithm, start, stop))"
        )
        self._db.commit()
        self.hits = 0

    def get(self, entry: FileEntry, algorithm: str, start: int | None, end: int | None) -> str | None:
        key = (*entry.stat_key, algorithm, start if start is not None else -1, end if end is not None else -1)
        with self._lock:
            row = self._db.execute(
                "SELECT digest FROM digests WHERE dev=? AND ino=? AND size=? AND mtime_ns=? AND ctime_ns=?"
                " AND algorithm=? AND start=? AND stop=?",
                key,
            ).fetchone()
        if row is not None:
            self.hits += 1
            return str(row[0])
        return None

    def put_many(self, items: Iterable[tuple[FileEntry, str, int | None, int | None, str]]) -> None:
        rows = [
            (*e.stat_key, alg, s if s is not None else -1, t if t is not None else -1, digest)
            for e, alg, s, t, digest in items
        ]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO digests VALUES (?,?,?,?,?,?,?,?,?)", rows)
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()

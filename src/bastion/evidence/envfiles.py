"""Installed files of a Python environment, re-hashed against the digests their RECORD files pin.

Every wheel installer (pip, uv, installer) writes ``*.dist-info/RECORD`` as CSV rows
``path,algorithm=digest,size`` (PEP 376, PEP 627, the wheel spec): the digest is urlsafe base64
without ``=`` padding, the path is relative to the site-packages folder (``../../../bin/pip`` for a
script). An ``env:`` attestation signs each RECORD's SHA-256, so once the RECORD files are known to
be the signed ones, re-hashing the files they list extends the signature to every installed file.

Rows without a digest (the RECORD itself, ``.pyc`` files compiled after installation) cannot be
checked and are counted, not hidden. A listed file that is missing, changed (size or digest), no
longer a regular file, unreadable, or outside the environment is reported by name; nothing that
could not be checked passes.
"""

from __future__ import annotations

import base64
import csv
import enum
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from bastion.evidence.errors import TargetError
from bastion.evidence.hashing import hash_range, run_parallel

RECORD_ALGORITHMS = ("sha256", "sha384", "sha512")  # the wheel spec: sha256 or stronger
MAX_DIST_FILE = 64 * 1024 * 1024  # torch's RECORD alone is 1.5 MB
STARTUP_NAMES = ("sitecustomize.py", "usercustomize.py")  # run by `site` at every interpreter start


def site_packages(prefix: Path) -> list[Path]:
    """The site-packages folders of the environment at ``prefix`` (venv or installation)."""
    found = sorted(prefix.glob("lib/python3*/site-packages")) + sorted(prefix.glob("Lib/site-packages"))
    if not found:
        raise TargetError(f"{prefix} does not look like a Python environment (no lib/python3*/site-packages)")
    return found


def read_dist_file(path: Path) -> bytes | None:
    """A ``*.dist-info`` file (METADATA, RECORD): None when absent, ``TargetError`` when unreadable.

    Never "too big, so skip it": a RECORD that could not be read would leave its distribution's
    files out of the subject, so anything unusual is an error (fail closed).
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TargetError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise TargetError(f"{path} is not a regular file")
    if st.st_size > MAX_DIST_FILE:
        raise TargetError(f"{path} is larger than {MAX_DIST_FILE // (1024 * 1024)} MiB; refusing to read it")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TargetError(f"cannot read {path}: {exc.strerror}") from None


class FileState(enum.Enum):
    CHANGED = "changed"  # another size or digest, or no longer a regular file
    MISSING = "missing"
    UNREADABLE = "unreadable"  # could not be read: not checked, so not verified
    UNSUPPORTED = "unsupported"  # a digest algorithm or path Bastion will not check


@dataclass(frozen=True)
class FileProblem:
    state: FileState
    distribution: str  # the dist-info folder's name, e.g. ``numpy-2.0.1.dist-info``
    path: str  # as written in the RECORD
    detail: str


@dataclass(frozen=True)
class InstalledFiles:
    """What re-hashing an environment found."""

    checked: int  # files re-hashed (or found missing / changed in size)
    unhashed: int  # RECORD rows without a digest: not checkable
    problems: tuple[FileProblem, ...]


@dataclass(frozen=True)
class _Row:
    distribution: str
    path: str  # as written
    location: str  # absolute, normalised
    algorithm: str
    digest: str
    size: int | None


def startup_files(prefix: Path) -> dict[str, str]:
    """``*.pth``, ``sitecustomize.py`` and ``usercustomize.py`` in a site-packages folder that no
    RECORD lists, by path relative to ``prefix`` -> SHA-256 ("" when not a regular file).

    Python runs these at every start (a ``.pth`` line beginning with ``import`` is executed), so
    one dropped in after the environment was attested is code injection that no RECORD would show.
    Some are legitimate (virtualenv's ``_virtualenv.pth``): they are recorded when attesting and
    compared when verifying.
    """
    root = os.path.normpath(os.path.abspath(prefix))
    owned: set[str] = set()
    sites = site_packages(prefix)
    for site in sites:
        for info in site.glob("*.dist-info"):
            record = read_dist_file(info / "RECORD")
            for line in csv.reader(io.StringIO((record or b"").decode("utf-8", errors="replace"))):
                if line and line[0]:
                    owned.add(os.path.normpath(os.path.join(os.path.abspath(site), line[0])))
    found: dict[str, str] = {}
    for site in sites:
        for item in sorted(os.scandir(site), key=lambda i: i.name):
            if not (item.name.endswith(".pth") or item.name in STARTUP_NAMES):
                continue
            location = os.path.normpath(os.path.abspath(item.path))
            if location in owned:
                continue
            rel = os.path.relpath(location, root).replace(os.sep, "/")
            if not item.is_file(follow_symlinks=False):
                found[rel] = ""
                continue
            size = item.stat(follow_symlinks=False).st_size
            found[rel] = hash_range(Path(location), 0, size)
    return found


def check_installed(prefix: Path, *, workers: int | None = None) -> InstalledFiles:
    """Re-hash every file that a RECORD of the environment at ``prefix`` lists with a digest."""
    root = os.path.normpath(os.path.abspath(prefix))
    rows: list[_Row] = []
    problems: list[FileProblem] = []
    unhashed = 0
    for site in site_packages(prefix):
        for info in sorted(site.glob("*.dist-info")):
            record = read_dist_file(info / "RECORD")
            if record is None:
                continue  # listed as "record: missing" in the BOM; nothing to re-hash
            found, skipped, bad = _parse_record(info.name, site, record, root)
            rows += found
            unhashed += skipped
            problems += bad
    results: list[FileProblem | None] = [None] * len(rows)

    def check(index: int) -> None:
        results[index] = _check_row(rows[index])

    run_parallel(range(len(rows)), check, workers or os.cpu_count() or 1)
    problems += [p for p in results if p is not None]
    problems.sort(key=lambda p: (p.distribution, p.path))
    return InstalledFiles(checked=len(rows), unhashed=unhashed, problems=tuple(problems))


def _parse_record(
    distribution: str, site: Path, record: bytes, root: str
) -> tuple[list[_Row], int, list[FileProblem]]:
    rows: list[_Row] = []
    problems: list[FileProblem] = []
    unhashed = 0
    try:
        text = record.decode("utf-8")
    except UnicodeDecodeError:
        return [], 0, [FileProblem(FileState.UNSUPPORTED, distribution, "RECORD", "RECORD is not UTF-8")]
    for line in csv.reader(io.StringIO(text)):
        if not line or not line[0]:
            continue
        path = line[0]
        hash_field = line[1] if len(line) > 1 else ""
        if not hash_field:
            unhashed += 1
            continue
        algorithm, sep, digest = hash_field.partition("=")
        if not sep or algorithm not in RECORD_ALGORITHMS:
            problems.append(
                FileProblem(
                    FileState.UNSUPPORTED,
                    distribution,
                    path,
                    f"{path}: RECORD digest {hash_field[:20]!r} is not one of {', '.join(RECORD_ALGORITHMS)}",
                )
            )
            continue
        size_field = line[2] if len(line) > 2 else ""
        try:
            size = int(size_field) if size_field else None
        except ValueError:
            problems.append(
                FileProblem(FileState.UNSUPPORTED, distribution, path, f"{path}: RECORD size is not a number")
            )
            continue
        location = os.path.normpath(os.path.join(os.path.abspath(site), path))  # absolute stays absolute
        if os.path.commonpath([location, root]) != root:
            problems.append(
                FileProblem(
                    FileState.UNSUPPORTED,
                    distribution,
                    path,
                    f"{path} lies outside the environment {root}; not checked",
                )
            )
            continue
        rows.append(_Row(distribution, path, location, algorithm, digest, size))
    return rows, unhashed, problems


def _check_row(row: _Row) -> FileProblem | None:
    def problem(state: FileState, detail: str) -> FileProblem:
        return FileProblem(state, row.distribution, row.path, detail)

    try:
        st = os.lstat(row.location)
    except FileNotFoundError:
        return problem(FileState.MISSING, f"{row.path} is missing (listed in {row.distribution}/RECORD)")
    except OSError as exc:
        return problem(FileState.UNREADABLE, f"cannot read {row.path}: {exc.strerror}")
    if not stat.S_ISREG(st.st_mode):
        # a symlink or a folder where a file was installed; never opened (it could be a FIFO)
        return problem(FileState.CHANGED, f"{row.path} is no longer a regular file")
    if row.size is not None and st.st_size != row.size:
        return problem(
            FileState.CHANGED, f"{row.path} is {st.st_size} bytes; {row.distribution}/RECORD says {row.size}"
        )
    try:
        digest = hash_range(Path(row.location), 0, st.st_size, row.algorithm)
    except TargetError as exc:
        return problem(FileState.UNREADABLE, exc.message)
    actual = base64.urlsafe_b64encode(bytes.fromhex(digest)).rstrip(b"=").decode()
    if actual != row.digest.rstrip("="):
        return problem(
            FileState.CHANGED, f"{row.path} does not match its {row.algorithm} in {row.distribution}/RECORD"
        )
    return None

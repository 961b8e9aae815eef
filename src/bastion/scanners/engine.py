"""The scan engine: walk the targets, map each file, detect its format by content, dispatch to the
format scanners, and merge everything into one :class:`~bastion.core.ScanReport`.

Files are scanned in parallel worker processes when there are several (scanning is CPU-bound pure
Python). Each top-level file is isolated: a scanner crash on one file becomes a problem for that
file (fail closed) and never stops the others.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gc
import importlib
import mmap
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bastion import __version__
from bastion.core import ProblemKind, ScanReport, Severity, ToolInfo
from bastion.errors import InputError
from bastion.scanners.detect import EXECUTABLE, INERT, Format, extension_mismatch, sniff
from bastion.scanners.interface import FormatError, Limits, Location, ScanContext, rule

if TYPE_CHECKING:
    from bastion.scanners.workspace.config import WorkspaceConfig
    from bastion.scanners.workspace.gitignore import IgnoreRules

DISGUISED = rule(
    "BAS-M001",
    "disguised-format",
    Severity.HIGH,
    "File content is an executable serialization format behind a name that promises inert data",
    "Do not load this file. Find out who produced it; loaders that sniff content will execute it "
    "whatever its name.",
    atlas=("AML.T0011.000", "AML.T0010", "AML.M0014"),
    cwe=("CWE-434", "CWE-502"),
)
NAME_MISMATCH = rule(
    "BAS-M002",
    "extension-mismatch",
    Severity.LOW,
    "File extension and content disagree",
    "Rename the file after its real format so that tools route it correctly.",
    atlas=("AML.M0014",),
    cwe=("CWE-646",),
)
POLYGLOT = rule(
    "BAS-M007",
    "polyglot",
    Severity.HIGH,
    "File is valid in several formats at once",
    "Do not load this file: different loaders will read different content from it.",
    atlas=("AML.T0011.000", "AML.T0010", "AML.M0014"),
    cwe=("CWE-436",),
)

Handler = Callable[[memoryview, Location, ScanContext, int], None]


# Format -> (module, function). Imported on first use so that start-up stays fast.
_HANDLERS: dict[Format, tuple[str, str]] = {
    Format.PICKLE: ("bastion.scanners.pickle", "scan_pickle"),
    Format.NUMPY: ("bastion.scanners.numpy_format", "scan_npy"),
    Format.ZIP: ("bastion.scanners.archive", "scan_zip"),
    Format.TAR: ("bastion.scanners.archive", "scan_tar"),
    Format.COMPRESSED: ("bastion.scanners.compressed", "scan_compressed"),
    Format.HDF5: ("bastion.scanners.keras", "scan_hdf5"),
    Format.GGUF: ("bastion.scanners.gguf", "scan_gguf"),
    Format.SAFETENSORS: ("bastion.scanners.safetensors", "scan_safetensors"),
    Format.ONNX: ("bastion.scanners.onnx", "scan_onnx"),
    Format.SAVEDMODEL: ("bastion.scanners.savedmodel", "scan_savedmodel"),
}


def _handler(fmt: Format) -> Handler | None:
    """The scanner for a format; None for what is not a model (text, empty, unknown)."""
    entry = _HANDLERS.get(fmt)
    if entry is None:
        return None
    handler: Handler = getattr(importlib.import_module(entry[0]), entry[1])
    return handler


@dataclass(frozen=True)
class Options:
    limits: Limits = field(default_factory=Limits)
    strict: bool = False  # unrecognised binary files are problems instead of skipped
    allowlists: tuple[str, ...] = ()  # organisation catalogue files extending the built-in allowlist
    model: bool = True  # run the model-file scanners
    workspace: WorkspaceConfig | None = (
        None  # run the workspace checks (secrets, PII, code...) with these settings
    )


FAMILIES = ("model", "workspace")
# Files whose presence at the top of a folder make it a project (workspace checks on by default).
_PROJECT_MARKERS = (".git", ".gitignore", "pyproject.toml", "setup.py", "setup.cfg", "Pipfile", "Dockerfile")
_PROJECT_SUFFIXES = (".py", ".ipynb", ".csv", ".env", ".tsv", ".jsonl", ".xlsx")
_NOT_SCANNABLE = ("text file: not a model", "unrecognised binary format: not scanned")


def dispatch(data: memoryview, loc: Location, ctx: ScanContext, depth: int, options: Options) -> None:
    """Sniff ``data`` and run every scanner that applies (the nested-scan entry point)."""
    if depth > ctx.limits.max_nesting_depth:
        ctx.problem(
            loc, ProblemKind.LIMIT_EXCEEDED, f"nesting deeper than {ctx.limits.max_nesting_depth} levels"
        )
        return
    formats = sniff(data)
    name = loc.member.rsplit("!", 1)[-1] if loc.member else loc.file
    mismatch = extension_mismatch(name, formats)
    if mismatch is not None:
        suffix, promised = mismatch
        found = ", ".join(f.value for f in formats)
        expected = ", ".join(sorted(f.value for f in promised))
        if any(f in EXECUTABLE for f in formats) and promised <= INERT | {Format.UNKNOWN}:
            ctx.finding(loc, DISGUISED, f"named '{suffix}' (expected {expected}) but the content is {found}")
        else:
            ctx.finding(
                loc, NAME_MISMATCH, f"named '{suffix}' (expected {expected}) but the content is {found}"
            )
    if len(formats) > 1:
        ctx.finding(loc, POLYGLOT, "content parses as " + " and ".join(f.value for f in formats))
    for fmt in formats:
        handler = _handler(fmt)
        if handler is None:
            _not_scannable(fmt, data, loc, ctx, depth, options)
            continue
        try:
            handler(data, loc, ctx, depth)
        except FormatError as exc:
            ctx.problem(loc, exc.kind, f"{fmt.value}: {exc}", offset=exc.offset)
        except RecursionError:
            ctx.problem(loc, ProblemKind.LIMIT_EXCEEDED, f"{fmt.value}: structure nested too deeply")
        except MemoryError:
            ctx.problem(loc, ProblemKind.LIMIT_EXCEEDED, f"{fmt.value}: not enough memory to scan")


def _not_scannable(
    fmt: Format, data: memoryview, loc: Location, ctx: ScanContext, depth: int, options: Options
) -> None:
    if fmt is Format.UNKNOWN:
        if options.strict:
            ctx.problem(loc, ProblemKind.UNSUPPORTED, "unrecognised binary format: not scanned")
        else:
            ctx.skip(loc, "unrecognised binary format: not scanned")
    elif depth == 0:
        ctx.skip(loc, "empty file" if fmt is Format.EMPTY else "text file: not a model")


def _scan_workspace(view: memoryview, loc: Location, ctx: ScanContext, options: Options) -> None:
    from bastion.scanners.workspace.scan import scan_workspace

    assert options.workspace is not None
    before = len(ctx.scanned)
    try:
        scan_workspace(view, loc, ctx, options.workspace)
    except FormatError as exc:
        ctx.problem(loc, exc.kind, f"workspace: {exc}", offset=exc.offset)
    except (RecursionError, MemoryError) as exc:
        ctx.problem(loc, ProblemKind.LIMIT_EXCEEDED, f"workspace: {type(exc).__name__}")
    if len(ctx.scanned) > before:  # judged as a workspace file: no longer "not a model"
        ctx.skipped = [s for s in ctx.skipped if not (s.file == loc.file and s.reason in _NOT_SCANNABLE)]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a file's model formats are parsed.

    Parsing a big checkpoint allocates a few objects per pickle opcode or archive member and frees
    none before the end (the pickle memo and the member list keep them), so every allocation
    threshold would walk everything alive to find nothing: a fifth of the time of a 50,000-tensor
    checkpoint. Cycles a hostile pickle builds (BUILD with a memoised self-reference) are freed by
    the first collection after the file; the size, opcode and memo limits bound what piles up
    meanwhile. A nested pause (a thread already paused it) leaves the collector as it found it.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def scan_file(path: Path, display: str, options: Options, *, workspace: bool = True) -> ScanContext:
    """Scan one file from disk (mapped, never read whole) and return its results.

    ``workspace`` False leaves out the workspace checks for this file (it is git-ignored).
    """
    ctx = ScanContext(limits=options.limits, allowlists=options.allowlists)
    ctx.nested = lambda view, loc, c, depth: dispatch(view, loc, c, depth, options)
    loc = Location(display)
    try:
        size = path.stat().st_size
        if size > options.limits.max_file_bytes:
            ctx.problem(loc, ProblemKind.LIMIT_EXCEEDED, f"{size} bytes exceed the file size limit")
            return ctx
        with path.open("rb") as fh:
            if size == 0:
                if options.model:
                    dispatch(memoryview(b""), loc, ctx, 0, options)
                else:
                    ctx.skip(loc, "empty file")
                return ctx
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        ctx.problem(loc, ProblemKind.UNREADABLE, f"cannot read: {exc.strerror or exc}")
        return ctx
    view = memoryview(mapped)
    try:
        if options.model:
            with _collector_paused():
                dispatch(view, loc, ctx, 0, options)
        # A file judged as a model format is binary: the workspace checks would skip it by content.
        # An Excel workbook is a zip too, and a dataset for the workspace checks all the same.
        is_model = options.model and any(s.file == loc.file and s.member is None for s in ctx.scanned)
        if options.workspace is not None and workspace and (not is_model or _is_workbook(view)):
            _scan_workspace(view, loc, ctx, options)
        elif not options.model:
            ctx.skip(loc, "ignored by .gitignore" if options.workspace is not None else "not scanned")
        if not options.model and not any(s.file == loc.file for s in ctx.scanned) and not ctx.skipped:
            ctx.skip(loc, "not a workspace file (binary or unrecognised)")
    except Exception as exc:  # noqa: BLE001 - per-file boundary: a scanner bug must fail closed, not crash
        ctx.problem(loc, ProblemKind.MALFORMED, f"internal scanner error ({type(exc).__name__}: {exc})")
    finally:
        view.release()
        with contextlib.suppress(BufferError):  # a scanner kept a slice alive; freed with it
            mapped.close()
    return ctx


def _is_workbook(view: memoryview) -> bool:
    """An Excel workbook (a zip that is a dataset). The member name must show in the zip's central
    directory: a model zip with thousands of members is never parsed twice for this."""
    if bytes(view[:4]) != b"PK\x03\x04":
        return False
    from bastion.scanners.archive import central_directory  # what scanned the zip imported already

    if b"xl/workbook.xml" not in central_directory(view):
        return False
    from bastion.scanners.workspace.datasets import looks_like_xlsx

    return looks_like_xlsx(view)


@dataclass(frozen=True)
class _Target:
    path: Path
    display: str
    size: int
    workspace: bool = True  # False: git-ignored, or a folder that is not a project (auto mode)


def _is_project_file(path: Path) -> bool:
    n = path.name
    low = n.lower()
    return (
        n in _PROJECT_MARKERS
        or low.endswith(_PROJECT_SUFFIXES)
        or low.startswith(("requirements", "dockerfile", "containerfile"))
        or low in ("poetry.lock", "uv.lock", "pipfile.lock")
    )


def is_project(root: Path) -> bool:
    """Whether a folder looks like a project (code, notebooks, data) rather than a bare model folder."""
    if not root.is_dir():
        return True
    try:
        names = [p.name for p in root.iterdir()]
    except OSError:
        return False
    return any(_is_project_file(root / n) for n in names)


def _walk(
    roots: Sequence[Path],
    include: Sequence[str],
    exclude: Sequence[str],
    follow_symlinks: bool,
    ctx: ScanContext,
    options: Options | None = None,
    auto: bool = False,
) -> Iterator[_Target]:
    options = options or Options()
    for root in roots:
        if not root.exists() and not root.is_symlink():
            raise InputError(f"{root}: no such file or directory")
        if root.is_file():
            ws = options.workspace is not None and (
                not auto or _is_project_file(root) or is_project(root.parent)
            )
            yield _Target(root, root.name, root.stat().st_size, ws)
            continue
        from bastion.scanners.workspace.gitignore import IgnoreRules

        base = root.resolve()
        workspace = options.workspace is not None and (not auto or is_project(root))
        rules: dict[str, IgnoreRules] = {}
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            here = Path(dirpath)
            rel_dir = here.relative_to(root).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir
            ignore: IgnoreRules | None = None
            if workspace:
                parent = rules.get(rel_dir.rsplit("/", 1)[0] if "/" in rel_dir else "", IgnoreRules())
                ignore = rules[rel_dir] = (rules.get(rel_dir) or parent).with_folder(here, rel_dir)
                dirnames[:] = _prune(dirnames, rel_dir, ignore, ctx, options)
            for fname in sorted(filenames):
                path = Path(dirpath) / fname
                rel = path.relative_to(root).as_posix()
                ws = workspace and ignore is not None and not ignore.ignored(rel, is_dir=False)
                if workspace and not ws and not options.model:
                    continue  # in a workspace-only scan, git-ignored files are not walked at all
                if include and not any(fnmatch.fnmatch(rel, g) for g in include):
                    continue
                if any(fnmatch.fnmatch(rel, g) for g in exclude):
                    continue
                if path.is_symlink():
                    target = path.resolve()
                    if not target.is_relative_to(base) and not follow_symlinks:
                        ctx.skip(
                            Location(rel), f"symlink leaves the scanned folder (to {target}): not followed"
                        )
                        continue
                    if not target.is_file():
                        ctx.skip(Location(rel), "symlink to a non-file: not followed")
                        continue
                if not path.is_file():
                    ctx.skip(Location(rel), "not a regular file")
                    continue
                yield _Target(path, rel, path.stat().st_size, ws)


def _prune(
    dirnames: list[str], rel_dir: str, ignore: IgnoreRules, ctx: ScanContext, options: Options
) -> list[str]:
    """Sub-folders to descend into: git internals never; git-ignored ones only when models are scanned."""
    keep = []
    for d in dirnames:
        rel = f"{rel_dir}/{d}" if rel_dir else d
        if d == ".git":
            continue
        if not options.model and ignore.ignored(rel, is_dir=True):
            ctx.skip(Location(rel + "/"), "ignored by .gitignore")
            continue
        keep.append(d)
    return keep


def _scan_target(target: _Target, options: Options) -> ScanContext:
    ctx = scan_file(target.path, target.display, options, workspace=target.workspace)
    ctx.nested = None  # lambdas do not cross process boundaries
    return ctx


ProgressCallback = Callable[[str, int], None]


def scan_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    limits: Limits | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    fail_on: Severity = Severity.HIGH,
    strict: bool = False,
    follow_symlinks: bool = False,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    allowlists: Sequence[str | os.PathLike[str]] = (),
    families: Sequence[str] | None = None,
    workspace_config: WorkspaceConfig | None = None,
    baseline: str | os.PathLike[str] | None = None,
    history: bool = False,
    history_max_commits: int = 1000,
    environments: Sequence[str | os.PathLike[str]] = (),
) -> ScanReport:
    """Scan files, folders and archives: model files for unsafe content, and (``families``) project
    workspaces for secrets, personal data, unsafe code, dependencies and Dockerfiles.

    ``families``: ``("model",)``, ``("workspace",)`` or both; None detects (model files always,
    workspace checks for single files and for folders that look like projects). Never executes what
    it reads.

    ``history``: also scan the git history of each root for secrets (at most ``history_max_commits``
    commits reachable from HEAD; see ``bastion.scanners.workspace.history``).

    ``environments``: also check the distributions installed in these Python environments (venv or
    installation prefixes) against the package allowlist and the advisories.
    """
    started = time.perf_counter()
    roots = [Path(p) for p in paths]
    chosen = set(families or FAMILIES)
    if not chosen <= set(FAMILIES) or not chosen:
        raise InputError(f"unknown scanner family in {sorted(chosen)} (choose from {', '.join(FAMILIES)})")
    if history and "workspace" not in chosen:
        raise InputError("--history scans for secrets: it needs the workspace checks (not --only model)")
    if environments and "workspace" not in chosen:
        raise InputError("--environment checks packages: it needs the workspace checks (not --only model)")
    if families is None and roots and not environments and all(_is_model_file(r) for r in roots):
        chosen = {"model"}  # single model files: the workspace checks would skip them by content
    ws_config = None
    if "workspace" in chosen:
        from bastion.scanners.workspace.config import load_config

        ws_config = workspace_config or load_config(roots[0] if roots else Path("."), strict=strict)
    options = Options(
        limits=limits or Limits(),
        strict=strict,
        allowlists=tuple(str(p) for p in allowlists),
        model="model" in chosen,
        workspace=ws_config,
    )
    for extra in options.allowlists:
        if not Path(extra).is_file():
            raise InputError(f"allowlist catalogue {extra}: no such file")
    if options.allowlists:
        from bastion.scanners.pickle.catalogue import load_catalogue

        load_catalogue(options.allowlists)  # a malformed file is a ConfigError now, not a problem per file
    walk_ctx = ScanContext(limits=options.limits)
    targets = list(_walk(roots, include, exclude, follow_symlinks, walk_ctx, options, auto=families is None))
    if len(targets) > options.limits.max_files:
        raise InputError(f"{len(targets)} files exceed the limit of {options.limits.max_files}")
    results: list[ScanContext] = [walk_ctx]
    n_workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    if n_workers > 1 and len(targets) >= 4:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("fork")) as pool:
            done = pool.map(_scan_target, targets, [options] * len(targets), chunksize=1)
            for target, ctx in zip(targets, done, strict=True):
                results.append(ctx)
                if progress:
                    progress(target.display, target.size)
    else:
        for target in targets:
            results.append(_scan_target(target, options))
            if progress:
                progress(target.display, target.size)
    extras: dict[str, object] = {"files": len(targets), "bytes": sum(t.size for t in targets)}
    if history:
        from bastion.scanners.workspace.history import scan_history

        assert ws_config is not None
        history_ctx = ScanContext(limits=options.limits)
        stats = [scan_history(r, history_ctx, ws_config, max_commits=history_max_commits) for r in roots]
        results.append(history_ctx)
        extras["history_commits"] = sum(s.commits for s in stats)
        extras["history_blobs"] = sum(s.blobs for s in stats)
    if environments:
        from bastion.scanners.workspace.scan import scan_environment

        assert ws_config is not None
        env_ctx = ScanContext(limits=options.limits)
        extras["distributions"] = sum(scan_environment(Path(e), env_ctx, ws_config) for e in environments)
        results.append(env_ctx)
    report = ScanReport(
        roots=tuple(str(p) for p in roots),
        findings=tuple(f for c in results for f in c.findings),
        problems=tuple(p for c in results for p in c.problems),
        scanned=tuple(s for c in results for s in c.scanned),
        skipped=tuple(s for c in results for s in c.skipped),
        tools=(ToolInfo("bastion", __version__),),
        duration_s=time.perf_counter() - started,
        fail_on=fail_on,
        extras=extras,
    )
    if baseline is not None:
        from bastion.scanners.workspace.baseline import apply_baseline, load_baseline

        report = apply_baseline(report, load_baseline(Path(baseline)))
    return report


def _is_model_file(path: Path) -> bool:
    """A regular file whose first bytes already say it is a binary model format."""
    if not path.is_file():
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(64 * 1024)
    except OSError:
        return False  # the scan reports it
    formats = sniff(memoryview(head))
    if Format.ZIP in formats and _is_workbook_file(path):
        return False  # an Excel workbook: a dataset for the workspace checks
    return all(f not in (Format.TEXT, Format.UNKNOWN, Format.EMPTY) for f in formats) and b"\x00" in head


def _is_workbook_file(path: Path) -> bool:
    try:
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                return _is_workbook(view)
            finally:
                view.release()
    except (OSError, ValueError):
        return False


def total_size(paths: Iterable[str | os.PathLike[str]]) -> int:
    """Bytes under the given paths, for progress bars."""
    total = 0
    for p in map(Path, paths):
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
    return total

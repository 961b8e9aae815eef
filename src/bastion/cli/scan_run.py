"""The body of ``bastion scan``: scan, render, exit code. Shared by the Click command
(:mod:`bastion.cli.scan`) and the Click-free fast path (:mod:`bastion.cli.fastscan`), so both run
and render a scan the same way. Imports neither Click nor Rich (Rich only for text and progress).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NamedTuple

from bastion.core import ScanReport, Severity
from bastion.errors import UsageError
from bastion.render import OutputFormat

# The option vocabulary of ``bastion scan`` that both parsers read (choices and defaults).
FORMATS: tuple[str, ...] = tuple(f.value for f in OutputFormat)
FAMILIES: tuple[str, ...] = ("model", "workspace")
DEFAULT_FORMAT = OutputFormat.TEXT
DEFAULT_FAIL_ON = Severity.HIGH
DEFAULT_HISTORY_MAX_COMMITS = 1000


class ScanRequest(NamedTuple):
    """Everything ``bastion scan`` was asked to do; the defaults are the command's defaults.

    A NamedTuple rather than a frozen dataclass: it is built on every start of the fast path, and
    creating the dataclass costs ~2 ms there (a quarter of that for the NamedTuple).
    """

    paths: tuple[Path, ...]
    fmt: OutputFormat = DEFAULT_FORMAT
    fail_on: Severity = DEFAULT_FAIL_ON
    output: Path | None = None
    only: str | None = None
    baseline: Path | None = None
    write_baseline: Path | None = None
    history: bool = False
    history_max_commits: int = DEFAULT_HISTORY_MAX_COMMITS
    environments: tuple[Path, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    allowlists: tuple[Path, ...] = ()
    strict: bool = False
    follow_symlinks: bool = False
    workers: int | None = None
    progress: bool | None = None  # None: a progress bar when stderr is a terminal


def run_scan(request: ScanRequest) -> int:
    """Scan, write the report (stdout or ``request.output``) and return the exit code.

    Raises :class:`~bastion.errors.UsageError` when a target cannot be read.
    """
    from bastion.scanners.engine import scan_paths

    options: dict[str, Any] = {
        "fail_on": request.fail_on,
        "include": request.include,
        "exclude": request.exclude,
        "allowlists": request.allowlists,
        "strict": request.strict,
        "follow_symlinks": request.follow_symlinks,
        "workers": request.workers,
        "families": (request.only,) if request.only else None,
        "baseline": request.baseline,
        "environments": request.environments,
    }
    if request.history:
        options.update(history=True, history_max_commits=request.history_max_commits)
    show_progress = sys.stderr.isatty() if request.progress is None else request.progress
    try:
        if show_progress:
            report = _scan_with_progress(request.paths, options)
        else:
            report = scan_paths(request.paths, **options)
    except OSError as exc:
        raise UsageError(f"cannot scan: {exc}") from None
    if request.write_baseline is not None:
        from bastion.scanners.workspace.baseline import write_baseline

        n = write_baseline(report, request.write_baseline)
        print(f"baseline: {n} findings recorded in {request.write_baseline}", file=sys.stderr, flush=True)
    _emit(report, request.fmt, request.output)
    return report.exit_code


def _scan_with_progress(paths: tuple[Path, ...], options: dict[str, Any]) -> ScanReport:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from bastion.scanners.engine import scan_paths, total_size

    columns = (
        TextColumn("scanning"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("", total=total_size(paths) or None)

        def advance(name: str, size: int) -> None:
            bar.update(task, advance=size, description=name[-40:])

        return scan_paths(paths, progress=advance, **options)


def _emit(report: ScanReport, fmt: OutputFormat, output: Path | None) -> None:
    if fmt is OutputFormat.TEXT:
        from bastion.render.text import render_text

        if output is None:
            render_text(report)
        else:
            with output.open("w", encoding="utf-8") as fh:
                render_text(report, fh, color=False)
        return
    if fmt is OutputFormat.JSON:
        from bastion.render.json_report import render_json

        text = render_json(report)
    else:
        from bastion.render.sarif import render_sarif

        text = render_sarif(report)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")

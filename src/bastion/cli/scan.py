"""``bastion scan``: judge model files without executing or deserialising them."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bastion.cli.scan_run import (
    DEFAULT_FAIL_ON,
    DEFAULT_FORMAT,
    DEFAULT_HISTORY_MAX_COMMITS,
    FAMILIES,
    FORMATS,
    ScanRequest,
    run_scan,
)
from bastion.core import Severity
from bastion.render import OutputFormat


def _severity(_ctx: click.Context, _param: click.Parameter, value: str) -> Severity:
    try:
        return Severity.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(FORMATS),
    default=DEFAULT_FORMAT.value,
    show_default=True,
)
@click.option(
    "--fail-on",
    callback=_severity,
    default=DEFAULT_FAIL_ON.value,
    show_default=True,
    help="Lowest failing severity.",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here."
)
@click.option(
    "--only",
    type=click.Choice(FAMILIES),
    help="Force a scanner family (default: model files always, workspace checks for project folders).",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Accept the findings recorded in this baseline (matched by fingerprint, not line).",
)
@click.option(
    "--write-baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Record every current finding in this baseline file (then exit as usual).",
)
@click.option(
    "--history", is_flag=True, help="Also scan the git history (commits reachable from HEAD) for secrets."
)
@click.option(
    "--history-max-commits",
    type=click.IntRange(1),
    default=DEFAULT_HISTORY_MAX_COMMITS,
    show_default=True,
    help="Scan at most this many of the newest commits.",
)
@click.option(
    "--environment",
    "environments",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Also check the packages installed in this Python environment (venv or prefix, repeatable).",
)
@click.option("--include", multiple=True, help="Glob of files to scan inside folders (repeatable).")
@click.option("--exclude", multiple=True, help="Glob of files to leave out (repeatable).")
@click.option(
    "--allowlist",
    "allowlists",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Extra allowlist catalogue (JSON) extending the built-in one (repeatable).",
)
@click.option(
    "--strict", is_flag=True, help="Unrecognised binary files are 'could not decide' instead of skipped."
)
@click.option("--follow-symlinks", is_flag=True, help="Follow symlinks that leave the scanned folder.")
@click.option(
    "--workers", "-j", type=click.IntRange(1, 64), help="Parallel worker processes (default: cores)."
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr (default: when a terminal)."
)
def scan(
    paths: tuple[Path, ...],
    fmt: str,
    fail_on: Severity,
    output: Path | None,
    only: str | None,
    baseline: Path | None,
    write_baseline: Path | None,
    history: bool,
    history_max_commits: int,
    environments: tuple[Path, ...],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    allowlists: tuple[Path, ...],
    strict: bool,
    follow_symlinks: bool,
    workers: int | None,
    progress: bool | None,
) -> None:
    """Scan PATHS (model files, model folders, archives, project workspaces) for unsafe content.

    Model formats are recognised by content: pickle (and PyTorch, joblib, NumPy built on it), Keras,
    HDF5, TensorFlow SavedModel, ONNX, safetensors, GGUF, skops, zip/tar/compressed archives.
    Project folders are also checked for secrets, personal data, unsafe ML code, risky dependencies
    and Dockerfiles (honouring .gitignore); --history adds the secrets in their git history, and
    --environment the packages installed in a Python environment.
    Nothing is ever loaded, imported or executed.

    Exit codes: 0 clean, 1 findings at or above --fail-on, 2 could not decide, 3 nothing scannable.
    """
    request = ScanRequest(
        paths=paths,
        fmt=OutputFormat(fmt),
        fail_on=fail_on,
        output=output,
        only=only,
        baseline=baseline,
        write_baseline=write_baseline,
        history=history,
        history_max_commits=history_max_commits,
        environments=environments,
        include=include,
        exclude=exclude,
        allowlists=allowlists,
        strict=strict,
        follow_symlinks=follow_symlinks,
        workers=workers,
        progress=progress,
    )
    sys.exit(run_scan(request))

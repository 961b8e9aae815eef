"""The fast path of ``bastion scan``: a CI job that scans one model file per process is bound by
start-up, and importing Click alone costs more than the scan. :func:`fast_scan` recognises the common
invocation, ``bastion scan PATH... [options]`` with a small subset of the options, and runs it
through the very function the Click command calls (:func:`bastion.cli.scan_run.run_scan`).

It accepts only what it reproduces exactly and declines (returns None) everything else, so that help,
usage errors and every other option stay Click's:

* ``scan`` first, then at least one existing, readable path (never one starting with ``-``);
* ``--format/-f``, ``--fail-on``, ``--output/-o``, ``--only`` (``--long=VALUE`` too), each at most
  once, with a valid value that does not start with ``-``; ``--progress`` or ``--no-progress``;
* no ``--``, no other option, no shell-completion request.

The tables below are checked against the Click command's parameters by the tests.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from bastion.cli.scan_run import (
    DEFAULT_FAIL_ON,
    DEFAULT_FORMAT,
    FAMILIES,
    FORMATS,
    ScanRequest,
    run_scan,
)
from bastion.core import Severity
from bastion.render import OutputFormat

# option spelling -> the Click parameter (its Python name) that takes a value
VALUE_OPTIONS: dict[str, str] = {
    "--format": "fmt",
    "-f": "fmt",
    "--fail-on": "fail_on",
    "--output": "output",
    "-o": "output",
    "--only": "only",
}
# flag spelling -> (the Click parameter, the value it sets)
FLAG_OPTIONS: dict[str, tuple[str, bool]] = {
    "--progress": ("progress", True),
    "--no-progress": ("progress", False),
}
# Click reads this variable (named after prog_name "bastion") to answer shell completion.
COMPLETION_VAR = "_BASTION_COMPLETE"


def fast_scan(argv: Sequence[str]) -> int | None:
    """Run ``bastion scan`` without Click and return its exit code, or None when ``argv`` is
    anything but the invocation this module reproduces exactly (then Click must handle it).

    Raises what :func:`~bastion.cli.scan_run.run_scan` raises (a :class:`~bastion.errors.BastionError`
    when a target cannot be read): the caller reports it as it does for the Click command.
    """
    request = parse(argv)
    if request is None:
        return None
    # What Click's standalone mode does for the same events.
    try:
        return run_scan(request)
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)
        print("Aborted!", file=sys.stderr, flush=True)
        return 1
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        # The reader went away: silence the flush at exit instead of a second traceback.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def parse(argv: Sequence[str]) -> ScanRequest | None:
    """The :class:`ScanRequest` that the Click command would build from ``argv``, or None."""
    if len(argv) < 2 or argv[0] != "scan" or COMPLETION_VAR in os.environ:
        return None
    values: dict[str, str] = {}
    flags: dict[str, bool] = {}
    paths: list[str] = []
    rest = iter(argv[1:])
    for arg in rest:
        if not arg.startswith("-"):
            paths.append(arg)
            continue
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in FLAG_OPTIONS and not eq:
            dest, flag = FLAG_OPTIONS[name]
            if dest in flags:
                return None
            flags[dest] = flag
            continue
        dest = VALUE_OPTIONS.get(name, "")
        if not dest or dest in values:
            return None
        if not eq:
            value = next(rest, "")
        if not value or value.startswith("-"):
            return None
        values[dest] = value
    if not paths or not all(_readable(p) for p in paths):
        return None
    fmt = values.get("fmt", DEFAULT_FORMAT.value)
    only = values.get("only")
    if fmt not in FORMATS or (only is not None and only not in FAMILIES):
        return None
    try:
        fail_on = Severity.parse(values.get("fail_on", DEFAULT_FAIL_ON.value))
    except ValueError:
        return None
    output = values.get("output")
    if output is not None and not _output_ok(output):
        return None
    return ScanRequest(
        paths=tuple(Path(p) for p in paths),
        fmt=OutputFormat(fmt),
        fail_on=fail_on,
        output=None if output is None else Path(output),
        only=only,
        progress=flags.get("progress"),
    )


def _readable(path: str) -> bool:
    """An existing path that click.Path (readable by default) accepts as it is."""
    return os.path.exists(path) and os.access(path, os.R_OK)


def _output_ok(path: str) -> bool:
    """click.Path(dir_okay=False) accepts a missing path, or an existing readable non-folder."""
    try:
        st = os.stat(path)
    except OSError:
        return True
    return not stat.S_ISDIR(st.st_mode) and os.access(path, os.R_OK)

"""One workspace file in, findings out: recognise what the file is (notebook, Python, Dockerfile,
dependency manifest, dataset, other text) from its content and name, run the checks that apply, map
every hit to a raw line (and cell / column), drop what inline comments and imported ignore files
accept, and mark the file scanned.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path, PurePosixPath

from bastion.core import ProblemKind, Severity
from bastion.scanners.interface import FormatError, Location, Rule, ScanContext
from bastion.scanners.workspace import datasets, dependencies, dockerfile, notebook, pii, secrets
from bastion.scanners.workspace.advisories import Snapshot, load_snapshot
from bastion.scanners.workspace.baseline import inline_ignored
from bastion.scanners.workspace.config import WorkspaceConfig
from bastion.scanners.workspace.text import LineIndex, decode

_DATA_SUFFIXES = {".csv": ",", ".tsv": "\t", ".psv": "|", ".tab": "\t"}
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonlines")
_FREE_TEXT_SUFFIXES = (".txt", ".log", ".out")
_PY_SUFFIXES = (".py", ".pyw", ".pyi")


@lru_cache(maxsize=4)
def _snapshot(path: str) -> Snapshot:
    from pathlib import Path

    return load_snapshot(Path(path))


class _Sink:
    """Collects hits for one file, then filters ignores and reports them."""

    def __init__(self, loc: Location, ctx: ScanContext, text: str | None, config: WorkspaceConfig) -> None:
        self.loc, self.ctx, self.config = loc, ctx, config
        self.text = text
        self.lines = LineIndex.of(text) if text is not None else None
        self.secret_lines: set[int] = set()

    def _line_text(self, line: int | None) -> str:
        if line is None or self.text is None or self.lines is None or line > len(self.lines.starts):
            return ""
        return self.lines.line_text(self.text, line)

    def add(
        self,
        r: Rule,
        message: str,
        line: int | None,
        member: str | None = None,
        *,
        severity: Severity | None = None,
        count: int = 1,
        secret: str | None = None,
    ) -> None:
        if line is not None and inline_ignored(self._line_text(line), r.rule_id):
            return
        if secret is not None and self.config.foreign.accepts(self.loc.file, line, secret):
            return
        loc = self.loc if member is None else self.loc.child(member)
        self.ctx.finding(loc, r, message, line=line, severity=severity, count=count)


def scan_workspace(data: memoryview, loc: Location, ctx: ScanContext, config: WorkspaceConfig) -> None:
    """Run every workspace check that applies to one file (depth 0, on disk)."""
    name = loc.file
    suffix = PurePosixPath(name).suffix.lower()
    if len(data) >= 12 and bytes(data[:4]) == b"PAR1" and bytes(data[-4:]) == b"PAR1":
        _scan_parquet(data, loc, ctx, config)
        return
    if bytes(data[:4]) == b"PK\x03\x04" and datasets.looks_like_xlsx(data):
        _scan_xlsx(data, loc, ctx, config)
        return
    head = decode(bytes(data[:65536]))
    if head is None:
        return
    if suffix in _DATA_SUFFIXES or (
        (suffix in _JSONL_SUFFIXES or datasets.looks_like_jsonl(head)) and suffix != ".ipynb"
    ):
        _scan_dataset(data, loc, ctx, config, suffix)
        return
    text = decode(bytes(data))
    if text is None:
        ctx.skip(loc, "undecodable text: not scanned")
        return
    sink = _Sink(loc, ctx, text, config)
    if suffix == ".ipynb" or notebook.looks_like_notebook(head):
        kind = _scan_notebook(text, sink)
    elif suffix in _PY_SUFFIXES or (head.startswith("#!") and "python" in head.split("\n", 1)[0]):
        kind = "python"
        _secrets(sink, text, code=True)
        _python(sink, text)
    elif dockerfile.is_dockerfile_name(name) or dockerfile.looks_like_dockerfile(head):
        kind = "dockerfile"
        _secrets(sink, text)
        for h in dockerfile.check(text, config.approved_registries, config.require_ca_certificates):
            sink.add(h.rule, h.message, h.line)
    elif (dep := dependencies.kind_of(name)) is not None:
        kind = dep
        _secrets(sink, text)
        _dependencies(sink, dep, text, config)
    else:
        kind = "text"
        _secrets(sink, text)
        if suffix in _FREE_TEXT_SUFFIXES:
            for ph in pii.find_pii_text(text):
                sink.add(
                    ph.rule,
                    f"{ph.rule.title}: {ph.masked}",
                    sink.lines.line(ph.start) if sink.lines else None,
                )
    ctx.mark_scanned(loc, f"workspace:{kind}", len(data))


def _secrets(sink: _Sink, text: str, *, code: bool = False) -> None:
    assert sink.lines is not None
    for h in secrets.find_secrets(text, code=code):
        line = sink.lines.line(h.start)
        sink.secret_lines.add(line)
        sink.add(h.rule, h.message, line, severity=h.severity, secret=text[h.start : h.end])


def _python(sink: _Sink, text: str) -> None:
    from bastion.scanners.workspace.unsafe_code import HARDCODED_CREDENTIAL, check_python

    try:
        hits = check_python(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, SyntaxError) and exc.lineno else ""
        sink.ctx.problem(
            sink.loc, ProblemKind.MALFORMED, f"python: does not parse{where}; unsafe-code checks not run"
        )
        return
    for h in hits:
        if h.rule is HARDCODED_CREDENTIAL and h.line in sink.secret_lines:
            continue  # already reported as a secret
        sink.add(h.rule, h.message, h.line, severity=h.severity)


def _dependencies(sink: _Sink, kind: str, text: str, config: WorkspaceConfig) -> None:
    snap = _snapshot(config.advisories) if config.advisories else None
    allow = config.package_allowlist
    if kind == "requirements":
        hits = dependencies.check_requirements(text, allow, snap)
    elif kind == "pyproject":
        hits = dependencies.check_pyproject(text, allow, snap)
    else:
        hits = dependencies.check_lock(PurePosixPath(sink.loc.file).name, text, allow, snap)
    for h in hits:
        sink.add(h.rule, h.message, h.line, severity=h.severity)


def scan_environment(prefix: Path, ctx: ScanContext, config: WorkspaceConfig) -> int:
    """The dependency checks on the distributions installed in a Python environment (the one a job
    really runs with, whatever its requirements files say); returns how many were checked."""
    snap = _snapshot(config.advisories) if config.advisories else None
    dists = dependencies.installed(prefix)
    for dist in dists:
        loc = Location(str(dist.metadata))
        sink = _Sink(loc, ctx, None, config)
        for h in dependencies.check_installed(dist, config.package_allowlist, snap):
            sink.add(h.rule, h.message, h.line, severity=h.severity)
        ctx.mark_scanned(loc, "python-distribution", 0, name=dist.name, version=dist.version)
    return len(dists)


def _scan_notebook(text: str, sink: _Sink) -> str:
    from bastion.scanners.workspace.unsafe_code import HARDCODED_CREDENTIAL, check_python, collect_imports

    try:
        segments = list(notebook.parse_notebook(text))
    except FormatError as exc:
        sink.ctx.problem(sink.loc, exc.kind, f"notebook: {exc}; scanned as plain text")
        _secrets(sink, text)
        return "text"
    code_cells: list[tuple[notebook.Segment, str]] = []
    aliases: dict[str, str] = {}
    for seg in segments:
        is_code = seg.kind == "code"
        for h in secrets.find_secrets(seg.text, code=is_code):
            raw_line = seg.raw_line(h.start)
            sink.secret_lines.add(raw_line)
            member = f"{seg.label}, line {seg.cell_line(h.start)}"
            sink.add(
                h.rule, h.message, raw_line, member, severity=h.severity, secret=seg.text[h.start : h.end]
            )
        if seg.kind == "output":
            for ph in pii.find_pii_text(seg.text):
                member = f"{seg.label}, line {seg.cell_line(ph.start)}"
                sink.add(ph.rule, f"{ph.rule.title}: {ph.masked}", seg.raw_line(ph.start), member)
        if is_code and seg.language == "python":
            source = notebook.code_without_magics(seg.text)
            if source is not None:
                code_cells.append((seg, source))
                with contextlib.suppress(SyntaxError, ValueError, RecursionError):  # reported below, once
                    aliases.update(collect_imports(source))
    broken = []
    for seg, source in code_cells:
        try:
            hits = check_python(source, aliases)
        except (SyntaxError, ValueError, RecursionError):
            broken.append(seg.label)
            continue
        for ch in hits:
            raw_line = seg.raw_line(seg.offset_of_line(ch.line))
            if ch.rule is HARDCODED_CREDENTIAL and raw_line in sink.secret_lines:
                continue
            sink.add(ch.rule, ch.message, raw_line, f"{seg.label}, line {ch.line}", severity=ch.severity)
    if broken:
        sink.ctx.problem(
            sink.loc, ProblemKind.MALFORMED, f"notebook: {', '.join(broken[:5])} not valid Python; not judged"
        )
    return "notebook"


def _scan_dataset(
    data: memoryview, loc: Location, ctx: ScanContext, config: WorkspaceConfig, suffix: str
) -> None:
    limit = config.max_dataset_bytes
    chunk = bytes(data[:limit])
    clipped = len(data) > limit
    if clipped:
        chunk = chunk[: chunk.rfind(b"\n") + 1] or chunk
    text = decode(chunk)
    if text is None:
        ctx.problem(loc, ProblemKind.MALFORMED, "dataset is not decodable text")
        return
    try:
        if suffix in _DATA_SUFFIXES:
            delimiter = datasets.sniff_delimiter(text) or _DATA_SUFFIXES[suffix]
            table = datasets.read_delimited(text, delimiter, config.max_dataset_rows)
        else:
            table = datasets.read_jsonl(text, config.max_dataset_rows)
    except FormatError as exc:
        ctx.problem(loc, exc.kind, f"dataset: {exc}")
        return
    _report_table(table, loc, ctx, config, text, truncated=table.truncated or clipped, size=len(data))


def _needs_extra(loc: Location, ctx: ScanContext, config: WorkspaceConfig, reason: str) -> None:
    """A dataset whose reader is an optional extra that is not installed: skipped, or a problem if strict."""
    if config.strict:
        ctx.problem(loc, ProblemKind.UNSUPPORTED, reason)
    else:
        ctx.skip(loc, reason)


def _scan_parquet(data: memoryview, loc: Location, ctx: ScanContext, config: WorkspaceConfig) -> None:
    try:
        table = datasets.read_parquet(data, config.max_dataset_rows)
    except ImportError:
        _needs_extra(loc, ctx, config, "Parquet dataset: install the 'parquet' extra (pyarrow) to read it")
        return
    except FormatError as exc:
        ctx.problem(loc, exc.kind, str(exc))
        return
    _report_table(table, loc, ctx, config, None, truncated=table.truncated, size=len(data))


def _scan_xlsx(data: memoryview, loc: Location, ctx: ScanContext, config: WorkspaceConfig) -> None:
    try:
        sheets, truncated = datasets.read_xlsx(data, config.max_dataset_rows)
    except ImportError:
        _needs_extra(loc, ctx, config, "Excel workbook: install the 'excel' extra (openpyxl) to classify it")
        return
    except FormatError as exc:
        ctx.problem(loc, exc.kind, str(exc))
        return
    sink = _Sink(loc, ctx, None, config)
    for sheet, table in sheets:
        for hit in pii.classify_columns(table.header, table.rows):
            share = f"{hit.count}/{hit.sampled} sampled values, e.g. {hit.example}"
            sink.add(
                hit.rule,
                f"sheet '{sheet}', column '{hit.column}': {hit.rule.title.lower()} ({share})",
                None,
                f"sheet {sheet}, column {hit.column}",
                count=hit.count,
            )
    ctx.mark_scanned(
        loc,
        "dataset:xlsx",
        len(data),
        rows_sampled=str(sum(len(t.rows) for _, t in sheets)),
        columns=str(sum(len(t.header) for _, t in sheets)),
        sheets=str(len(sheets)),
        sampled="head" if truncated or any(t.truncated for _, t in sheets) else "all",
    )


def _report_table(
    table: datasets.Table,
    loc: Location,
    ctx: ScanContext,
    config: WorkspaceConfig,
    text: str | None,
    *,
    truncated: bool,
    size: int,
) -> None:
    sink = _Sink(loc, ctx, text, config)
    for hit in pii.classify_columns(table.header, table.rows):
        share = f"{hit.count}/{hit.sampled} sampled values"
        sink.add(
            hit.rule,
            f"column '{hit.column}': {hit.rule.title.lower()} ({share}), e.g. {hit.example}",
            hit.first_line,
            f"column {hit.column}",
            count=hit.count,
        )
    if text is not None:
        _secrets(sink, text)
    ctx.mark_scanned(
        loc,
        f"dataset:{table.format}",
        size,
        rows_sampled=str(len(table.rows)),
        columns=str(len(table.header)),
        sampled="head" if truncated else "all",
    )

"""Human-readable report with Rich (imported here only, so JSON/SARIF runs never pay for it)."""

from __future__ import annotations

from typing import TextIO

from bastion.core import ScanReport, Severity, Verdict

_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
_VERDICT = {
    Verdict.SAFE: ("SAFE", "bold green"),
    Verdict.UNSAFE: ("UNSAFE", "bold red"),
    Verdict.ERROR: ("COULD NOT DECIDE", "bold yellow"),
    Verdict.UNSUPPORTED: ("NOTHING SCANNABLE", "bold yellow"),
}


def render_text(report: ScanReport, stream: TextIO | None = None, *, color: bool | None = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=stream, no_color=color is False, force_terminal=color or None, highlight=False)
    findings = sorted(report.findings, key=lambda f: (-f.severity.rank, f.file, f.member or ""))
    if findings:
        table = Table(title="Findings", show_lines=False, expand=False)
        table.add_column("severity")
        table.add_column("rule")
        table.add_column("where", overflow="fold")
        table.add_column("what", overflow="fold")
        for f in findings:
            what = Text(f.message)
            if f.callable:
                what.append(f"  [{f.callable}]", style="bold")
            if f.count > 1:
                what.append(f"  (x{f.count})", style="dim")
            table.add_row(Text(f.severity.value, style=_STYLE[f.severity]), f.rule_id, f.location(), what)
        console.print(table)
        remediations = dict.fromkeys(
            f"{f.rule_id}: {f.remediation}" for f in findings if f.severity >= report.fail_on
        )
        for line in remediations:
            console.print(Text("fix ", style="bold") + Text(line))
    for p in report.problems:
        where = (
            p.file + (f"!{p.member}" if p.member else "") + (f"@{p.offset}" if p.offset is not None else "")
        )
        console.print(
            Text("could not decide ", style="bold yellow") + Text(f"{where}: {p.message} [{p.kind.value}]")
        )
    for s in report.skipped:
        where = s.file + (f"!{s.member}" if s.member else "")
        console.print(Text("skipped ", style="dim") + Text(f"{where}: {s.reason}", style="dim"))
    label, style = _VERDICT[report.verdict]
    counts = ", ".join(
        f"{n} {sev.value}"
        for sev in reversed(Severity)
        if (n := sum(1 for f in report.findings if f.severity is sev))
    )
    console.print(
        Text(f"{label}", style=style)
        + Text(
            f"  {len(report.scanned)} artifacts scanned, {len(report.findings)} findings"
            + (f" ({counts})" if counts else "")
            + f", {len(report.problems)} undecided, {len(report.skipped)} skipped"
            + f" in {report.duration_s:.2f}s (fail on >= {report.fail_on.value})"
        )
    )

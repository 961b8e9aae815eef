"""A self-contained HTML report of a check: status, violations, and per-column reference-vs-current plots.

No scripts, no external assets: inline CSS and one inline SVG bar chart per column, with every
string from the data escaped.
"""

from __future__ import annotations

from html import escape

from bastion.monitor.check import CheckReport, ColumnResult
from bastion.monitor.drift import Histogram

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1 .OK{color:#1a7f37}h1 .ALARM{color:#cf222e}h1 .INSUFFICIENT_DATA{color:#9a6700}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
.drift{background:#ffebe9}.card{display:inline-block;vertical-align:top;margin:0 1em 1em 0;width:380px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
"""
_REF, _CUR = "#8c959f", "#0969da"


def _multivariate(report: CheckReport) -> str:
    mv = report.multivariate
    if mv is None:
        return ""
    if mv.drift is None:
        return f"<p>Multivariate drift: not decided ({escape(mv.note or '')})</p>"
    top = ", ".join(f"{name} (x{ratio:.2f})" for name, ratio in mv.contributions.items())
    return (
        f"<p>Multivariate drift ({escape(mv.method)}): <b>{'YES' if mv.drift else 'no'}</b>; "
        f"mean reconstruction error {mv.current_error:.4g} vs reference {mv.reference_error:.4g} "
        f"({mv.statistic:+.1%}, threshold {mv.threshold:.0%}, p={mv.p_value:.2g}); "
        f"largest rise: {escape(top)}</p>"
    )


def _svg(hist: Histogram, width: int = 360, height: int = 140) -> str:
    bins = len(hist.labels)
    if bins == 0:
        return ""
    top = max(max(hist.reference, default=0.0), max(hist.current, default=0.0)) or 1.0
    slot = width / bins
    bars = []
    for i, (label, r, c) in enumerate(zip(hist.labels, hist.reference, hist.current, strict=True)):
        x = i * slot
        for j, (share, colour) in enumerate(((r, _REF), (c, _CUR))):
            h = (height - 20) * share / top
            bars.append(
                f'<rect x="{x + 2 + j * (slot - 4) / 2:.1f}" y="{height - 20 - h:.1f}" '
                f'width="{(slot - 4) / 2:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(label)}: reference {r:.2%}, current {c:.2%}'
                "</title></rect>"
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
        + "".join(bars)
        + f'<line x1="0" y1="{height - 20}" x2="{width}" y2="{height - 20}" stroke="#999"/>'
        + f'<text x="0" y="{height - 5}" font-size="10">{escape(hist.labels[0])}</text>'
        + f'<text x="{width}" y="{height - 5}" font-size="10" text-anchor="end">'
        + f"{escape(hist.labels[-1])}</text>"
        + "</svg>"
    )


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _card(col: ColumnResult) -> str:
    verdict = {True: "DRIFT", False: "no drift", None: escape(col.note or "not tested")}[col.drift]
    return (
        f'<div class="card{" drift" if col.drift else ""}">'
        f"<h3>{escape(col.name)} <small>({escape(col.kind)}, "
        f"{verdict})</small></h3>"
        + (_svg(col.histogram) if col.histogram else "")
        + f"<div>{escape(col.method or '')} = {_fmt(col.statistic)} (threshold {_fmt(col.threshold)}), "
        f"p = {_fmt(col.p_value)}, adjusted {_fmt(col.p_value_adjusted)}</div></div>"
    )


def render_html(report: CheckReport, title: str = "Bastion monitor check") -> str:
    rows = "".join(
        f"<tr><td>{escape(v.feature_name)}</td><td>{escape(v.constraint_check_type)}</td>"
        f"<td>{escape(v.severity)}</td><td>{escape(v.description)}</td></tr>"
        for v in report.violations
    )
    status = report.status.value
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>"
        f'<h1>{escape(title)}: <span class="{status}">{status}</span></h1>'
        f"<p>{report.rows} rows checked against a baseline of {report.reference_rows} rows; "
        f"drift needs significance at {report.alpha} ({escape(report.correction)}) "
        "and an effect size at or above its threshold.</p>"
        f"<p>Drifted columns: {escape(', '.join(report.drifted_columns) or 'none')}</p>"
        f"{_multivariate(report)}"
        f'<p class="legend"><span style="background:{_REF}"></span>reference'
        f'<span style="background:{_CUR}"></span>current</p>'
        + (
            "<h2>Violations</h2><table><tr><th>feature</th><th>check</th><th>severity</th><th>description</th></tr>"
            f"{rows}</table>"
            if rows
            else "<h2>No violations</h2>"
        )
        + "<h2>Columns</h2>"
        + "".join(_card(c) for c in report.columns)
        + "</body></html>\n"
    )

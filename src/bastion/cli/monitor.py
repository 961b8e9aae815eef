"""``bastion monitor``: baselines, checks of data windows, alarms and their history.

Exit codes of ``check``: 0 OK, 1 ALARM, 3 INSUFFICIENT_DATA; 2 when the check could not run
(unreadable data, malformed baseline or constraints). Other subcommands: 0, or 2 on error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from bastion.errors import BastionError

_DATA = click.Path(exists=False, path_type=Path)


class _Group(click.Group):
    """Turns Bastion errors into their diagnostics and exit code, whoever invokes the group."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BastionError as exc:
            click.echo(f"bastion: error: {exc.diagnostics()}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group)
def monitor() -> None:
    """Baselines, data-quality and drift checks, alarms.

    Exit codes of check: 0 OK, 1 ALARM, 3 INSUFFICIENT_DATA, 2 error.
    """


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text, encoding="utf-8")


_PROBLEM = click.Choice(["classification", "regression"])
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _capture_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--capture",
                type=click.Path(file_okay=False, path_type=Path),
                help="Gateway capture folder (<capture>/<model>/<YYYY-MM-DD>/*.jsonl) instead of --data.",
            ),
            click.option("--model", "model_name", help="With --capture: the model whose traffic is read."),
            click.option(
                "--since", help="With --capture: first instant (ISO-8601, UTC unless an offset is given)."
            ),
            click.option("--until", help="With --capture: end of the window, excluded (ISO-8601)."),
            click.option("--last", help="With --capture: the window ending now, e.g. 15m, 1h, 7d."),
        ]
    ):
        f = option(f)
    return f


def _window(
    data: tuple[Path, ...],
    capture: Path | None,
    model: str | None,
    since: str | None,
    until: str | None,
    last: str | None,
) -> tuple[Any, Any]:
    """Record batches of --data or of --capture, and the capture reader (None for --data)."""
    import datetime as dt
    from itertools import chain

    from bastion.errors import UsageError

    if capture is None:
        if model or since or until or last:
            raise UsageError("--model, --since, --until and --last go with --capture")
        if not data:
            raise UsageError("give the data: --data FILE_OR_FOLDER, or --capture DIR --model NAME")
        from bastion.monitor.sources import read_batches

        return chain.from_iterable(read_batches(p) for p in data), None
    if data:
        raise UsageError("give --data or --capture, not both")
    if not model:
        raise UsageError("--capture needs --model NAME (a folder under the capture)")
    from bastion.monitor.capture import CaptureReader, parse_time

    start = parse_time(since, option="--since") if since else None
    end = parse_time(until, option="--until") if until else None
    if last:
        if since:
            raise UsageError("give --since or --last, not both")
        unit = _DURATION_UNITS.get(last[-1:])
        if unit is None or not last[:-1].isdigit() or int(last[:-1]) <= 0:
            raise UsageError(f"--last {last!r} is not a duration", hint="a number and s, m, h or d: 15m, 1h")
        end = end or dt.datetime.now(dt.UTC)
        start = end - dt.timedelta(seconds=int(last[:-1]) * unit)
    reader = CaptureReader(capture, model, start, end)
    return reader, reader


def _quality_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option("--prediction-column", help="Column holding the model's prediction."),
            click.option("--label-column", help="Column holding the ground truth."),
            click.option("--score-column", help="Score of the positive class (binary ROC AUC)."),
            click.option("--problem", type=_PROBLEM, help="Default: inferred from the labels."),
            click.option("--positive-label", help="Positive class for ROC AUC (default: the greater label)."),
        ]
    ):
        f = option(f)
    return f


def _spec(
    prediction: str | None,
    label: str | None,
    score: str | None,
    problem: str | None,
    positive: str | None,
    default: Any = None,
) -> Any:
    from bastion.errors import UsageError
    from bastion.monitor.quality import Problem, QualitySpec

    if default is not None:
        prediction = prediction or default.prediction_column
        label = label or default.label_column
        score = score or default.score_column
        problem = problem or default.problem.value
        positive = positive or default.positive_label
    if not prediction or not label:
        raise UsageError("model quality needs both --prediction-column and --label-column")
    return QualitySpec(prediction, label, score, Problem(problem) if problem else None, positive)


@monitor.command()
@click.option(
    "--data",
    "data",
    multiple=True,
    type=_DATA,
    help="CSV / JSON lines / Parquet file or folder.",
)
@_capture_options
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Baseline folder."
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--multivariate/--no-multivariate",
    default=True,
    show_default=True,
    help="Store the joint co-moments of the multivariate drift detector (sums, no rows).",
)
@_quality_options
def baseline(
    data: tuple[Path, ...],
    capture: Path | None,
    model_name: str | None,
    since: str | None,
    until: str | None,
    last: str | None,
    out: Path,
    fmt: str,
    multivariate: bool,
    prediction_column: str | None,
    label_column: str | None,
    score_column: str | None,
    problem: str | None,
    positive_label: str | None,
) -> None:
    """Profile training data into statistics.json, constraints.json and bastion-baseline.json.

    With --prediction-column and --label-column, also record the model's quality on this data in
    quality.json (the label column is then left out of the drift profile).

    With --capture DIR --model NAME, the baseline is the gateway's captured traffic of that model
    (inputs and outputs; metadata columns dropped), optionally between --since and --until.
    """
    from bastion.monitor import baseline_from_batches, measure_quality, write_baseline

    spec = None
    if prediction_column or label_column or score_column:
        spec = _spec(prediction_column, label_column, score_column, problem, positive_label)
    if spec is not None and capture is not None:
        from bastion.errors import UsageError

        raise UsageError("model quality needs labelled --data; captured traffic carries no labels")
    batches, reader = _window(data, capture, model_name, since, until, last)
    sources = tuple(str(p) for p in data) if reader is None else (f"capture:{capture}/{model_name}",)
    base = baseline_from_batches(
        batches, sources, exclude=(spec.label_column,) if spec else (), multivariate=multivariate
    )
    written = write_baseline(base, out)
    quality = None
    if spec is not None:
        from bastion.monitor.quality import QualityBaseline, write_quality

        quality = measure_quality(list(data), spec)
        written.append(write_quality(QualityBaseline(quality), out))
    columns = {
        name: {"inferred_type": col.inferred_type, "completeness": round(col.completeness, 6)}
        for name, col in base.profile.columns.items()
    }
    if fmt == "json":
        doc = {"schema_version": "bastion.monitor.baseline-summary/1", "rows": base.profile.rows}
        doc |= {"columns": columns, "files": [str(p) for p in written]}
        if quality is not None:
            doc["quality"] = {
                "problem": quality.problem.value,
                "rows": quality.rows,
                "metrics": quality.metrics,
            }
        if reader is not None:
            doc["capture"] = reader.summary.to_json()
        click.echo(json.dumps(doc, indent=2))
        return
    if reader is not None:
        click.echo(_capture_line(reader.summary))
    click.echo(f"Baseline of {base.profile.rows} rows, {len(columns)} columns:")
    for name, info in columns.items():
        click.echo(f"  {name:30s} {info['inferred_type']:10s} completeness {info['completeness']:.4f}")
    if quality is not None:
        click.echo(f"Model quality ({quality.problem.value}, {quality.rows} labelled rows):")
        for metric, value in quality.metrics.items():
            click.echo(f"  {metric:30s} {value:.6g}")
    for path in written:
        click.echo(f"wrote {path}")


@monitor.command()
@click.option("--baseline", "baseline_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--data", "data", multiple=True, required=True, type=_DATA, help="Labelled window: file(s) or folder(s)."
)
@_quality_options
@click.option(
    "--tolerance",
    "tolerances",
    multiple=True,
    metavar="METRIC=VALUE",
    help="Override quality.json's tolerance (absolute drop for scores, relative rise for mae/rmse).",
)
@click.option("--min-rows", type=click.IntRange(min=1), help="Labelled rows needed (default: quality.json).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here."
)
@click.option("--monitor", "monitor_name", help="Record this evaluation as a datapoint of this alarm.")
def quality(
    baseline_dir: Path,
    data: tuple[Path, ...],
    prediction_column: str | None,
    label_column: str | None,
    score_column: str | None,
    problem: str | None,
    positive_label: str | None,
    tolerances: tuple[str, ...],
    min_rows: int | None,
    fmt: str,
    output: Path | None,
    monitor_name: str | None,
) -> None:
    """Model quality of a labelled window against the baseline's: OK, ALARM or INSUFFICIENT_DATA.

    Exit codes: 0 OK, 1 ALARM (a metric degraded beyond its tolerance), 3 INSUFFICIENT_DATA, 2 error.
    """
    from dataclasses import replace

    from bastion.monitor import measure_quality
    from bastion.monitor.quality import compare, load_quality, parse_tolerance_options

    base = load_quality(baseline_dir)
    if min_rows is not None:
        base = replace(base, min_rows=min_rows)
    spec = _spec(prediction_column, label_column, score_column, problem, positive_label, base.profile.spec)
    report = compare(base, measure_quality(list(data), spec), parse_tolerance_options(tolerances))
    evaluation = None
    if monitor_name:
        from bastion.monitor.store import MonitorStore

        summary = {"status": report.status.value, "rows": report.rows, "degraded": report.degraded_metrics}
        evaluation = MonitorStore().record(monitor_name, report.status.value, summary)
    if fmt == "json":
        doc = report.to_json()
        if evaluation is not None:
            doc["alarm"] = _evaluation_json(evaluation)
        _emit(json.dumps(doc, indent=2) + "\n", output)
    else:
        text = _quality_text(report)
        if evaluation is not None:
            text += (
                f"alarm {evaluation.alarm}: {evaluation.state_before.value} -> {evaluation.state_after.value}"
                f" ({evaluation.reason})\n"
            )
        _emit(text, output)
    sys.exit(report.exit_code)


def _quality_text(report: Any) -> str:
    lines = [
        f"status: {report.status.value}  ({report.problem.value}, {report.rows} labelled rows "
        f"vs baseline of {report.reference_rows}; {report.unlabelled} unlabelled, "
        f"{report.missing_predictions} without prediction)"
    ]
    if report.status.value == "INSUFFICIENT_DATA":
        lines.append(f"fewer than {report.min_rows} labelled rows: nothing was decided")
    if report.degraded_metrics:
        lines.append("degraded metrics: " + ", ".join(report.degraded_metrics))
    if report.metrics:
        lines.append(f"{'metric':24s} {'baseline':>10s} {'current':>10s} {'limit':>10s}  degraded")
    for m in report.metrics:
        flag = "YES" if m.degraded else "no"
        lines.append(f"{m.name:24s} {m.baseline:>10.4g} {m.current:>10.4g} {m.limit:>10.4g}  {flag}")
    return "\n".join(lines) + "\n"


@monitor.command()
@click.argument("baselines", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
def merge(baselines: tuple[Path, ...], out: Path) -> None:
    """Merge baselines profiled separately (per file, partition or machine) into one."""
    from bastion.monitor.baseline import load_baseline, merge_baselines, write_baseline

    loaded = [load_baseline(b) for b in baselines]
    merged = merge_baselines(loaded)
    for path in write_baseline(merged, out):
        click.echo(f"wrote {path}")
    click.echo(f"merged {len(loaded)} baselines: {merged.profile.rows} rows")
    if merged.joint is None:
        click.echo("note: no multivariate detector (a part has none, or the parts' columns differ)")


def _text_report(report: Any) -> str:
    lines = [f"status: {report.status.value}  ({report.rows} rows vs baseline of {report.reference_rows})"]
    if report.drifted_columns:
        lines.append("drifted columns: " + ", ".join(report.drifted_columns))
    mv = report.multivariate
    if mv is not None:
        if mv.drift is None:
            lines.append(f"multivariate drift: not decided ({mv.note})")
        else:
            lines.append(
                f"multivariate drift: {'YES' if mv.drift else 'no'} ({mv.method}: error rise "
                f"{mv.statistic:+.1%}, threshold {mv.threshold:.0%}, p={mv.p_value:.2g})"
            )
    for v in report.violations:
        lines.append(f"  [{v.severity}] {v.feature_name}: {v.constraint_check_type}: {v.description}")
    lines.append(
        f"{'column':24s} {'drift':6s} {'method':18s} {'statistic':>10s} {'threshold':>9s} {'p_adj':>9s}"
    )
    for c in report.columns:
        drift = {True: "YES", False: "no", None: "-"}[c.drift]
        stat = f"{c.statistic:.4g}" if c.statistic is not None else "-"
        thr = f"{c.threshold:g}" if c.threshold is not None else "-"
        p = f"{c.p_value_adjusted:.2g}" if c.p_value_adjusted is not None else "-"
        lines.append(f"{c.name:24s} {drift:6s} {c.method or c.note or '-':18s} {stat:>10s} {thr:>9s} {p:>9s}")
    return "\n".join(lines) + "\n"


@monitor.command()
@click.option("--baseline", "baseline_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", "data", multiple=True, type=_DATA, help="The window: file(s) or folder(s).")
@_capture_options
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here."
)
@click.option("--monitor", "monitor_name", help="Record this evaluation as a datapoint of this alarm.")
def check(
    baseline_dir: Path,
    data: tuple[Path, ...],
    capture: Path | None,
    model_name: str | None,
    since: str | None,
    until: str | None,
    last: str | None,
    fmt: str,
    output: Path | None,
    monitor_name: str | None,
) -> None:
    """Check a data window against a baseline: violations and drift per column, multivariate drift.

    The window is --data (files or folders), or the gateway's captured traffic of one model:
    --capture DIR --model NAME [--since ISO] [--until ISO] or [--last 1h] (inputs and the
    prediction are checked; the _-prefixed metadata columns are not).
    """
    from bastion.monitor import load_baseline
    from bastion.monitor.check import check_batches

    base = load_baseline(baseline_dir)
    batches, reader = _window(data, capture, model_name, since, until, last)
    report = check_batches(base, batches)
    evaluation = None
    if monitor_name:
        from bastion.monitor.store import MonitorStore

        summary = {
            "status": report.status.value,
            "rows": report.rows,
            "drifted_columns": report.drifted_columns,
        }
        summary["violations"] = len(report.violations)
        evaluation = MonitorStore().record(monitor_name, report.status.value, summary)
    if fmt == "json":
        doc = report.to_json()
        if reader is not None:
            doc["capture"] = reader.summary.to_json()
        if evaluation is not None:
            doc["alarm"] = _evaluation_json(evaluation)
        _emit(json.dumps(doc, indent=2) + "\n", output)
    elif fmt == "html":
        from bastion.monitor.html_report import render_html

        _emit(render_html(report), output)
    else:
        text = _text_report(report)
        if reader is not None:
            text = _capture_line(reader.summary) + "\n" + text
        if evaluation is not None:
            text += (
                f"alarm {evaluation.alarm}: {evaluation.state_before.value} -> {evaluation.state_after.value}"
            )
            text += f" ({evaluation.reason})\n"
            text += "".join(
                f"  action {a.kind} {a.target}: {'ok' if a.ok else 'FAILED'} {a.detail}\n"
                for a in evaluation.actions
            )
        _emit(text, output)
    sys.exit(report.exit_code)


def _capture_line(summary: Any) -> str:
    since = summary.since.isoformat() if summary.since else "-"
    span = f"{since} .. {summary.until.isoformat() if summary.until else '-'}"
    line = (
        f"capture of model {summary.model} [{span}): {summary.rows_kept} of {summary.rows_read} rows "
        f"from {summary.files} files in {len(summary.days)} day folders"
    )
    extras = [
        f"{n} {what}"
        for n, what in (
            (summary.rows_outside, "outside the window"),
            (summary.rows_without_time, "without a _time"),
            (summary.partial_lines, "partial last lines left for later"),
            (len(summary.skipped), "entries skipped"),
        )
        if n
    ]
    return line + (f" ({', '.join(extras)})" if extras else "")


def _evaluation_json(ev: Any) -> dict[str, Any]:
    return {
        "id": ev.id,
        "alarm": ev.alarm,
        "at": ev.at,
        "status": ev.status,
        "datapoint": ev.datapoint,
        "state_before": ev.state_before.value,
        "state_after": ev.state_after.value,
        "reason": ev.reason,
        "actions": [{"kind": a.kind, "target": a.target, "ok": a.ok, "detail": a.detail} for a in ev.actions],
    }


@monitor.command("alarm-set")
@click.argument("name")
@click.option("--periods", "-n", default=1, show_default=True, help="N: datapoints evaluated.")
@click.option(
    "--datapoints", "-m", default=1, show_default=True, help="M: breaching datapoints that raise the alarm."
)
@click.option(
    "--missing-data",
    type=click.Choice(["missing", "ignore", "breaching", "not-breaching"]),
    default="missing",
    show_default=True,
)
@click.option("--webhook", multiple=True, help="POST state changes here (http/https).")
@click.option("--command", "commands", multiple=True, help="Run this command on state changes (no shell).")
@click.option(
    "--gateway",
    "gateways",
    multiple=True,
    metavar="JSON",
    help='Set a model state at a Bastion gateway: {"url", "model", "token_env", "on_alarm", "on_ok", ...}.',
)
def alarm_set(
    name: str,
    periods: int,
    datapoints: int,
    missing_data: str,
    webhook: tuple[str, ...],
    commands: tuple[str, ...],
    gateways: tuple[str, ...],
) -> None:
    """Create or update an alarm (M of N datapoints, missing-data policy, actions)."""
    from bastion.monitor.actions import parse_gateway_action, validate_command, validate_webhook
    from bastion.monitor.alarms import AlarmConfig, MissingData
    from bastion.monitor.store import MonitorStore

    config = AlarmConfig(
        name,
        periods,
        datapoints,
        MissingData(missing_data),
        tuple(validate_webhook(u) for u in webhook),
        tuple(validate_command(c) for c in commands),
        tuple(parse_gateway_action(g) for g in gateways),
    )
    record = MonitorStore().put_alarm(config)
    click.echo(
        f"alarm {name}: {record.state.value} ({datapoints} of {periods}, missing data: {missing_data})"
    )


@monitor.command("alarm-delete")
@click.argument("name")
def alarm_delete(name: str) -> None:
    """Delete an alarm and its recorded evaluations."""
    from bastion.monitor.store import MonitorStore

    MonitorStore().delete_alarm(name)
    click.echo(f"deleted alarm {name}")


@monitor.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def alarms(fmt: str) -> None:
    """List alarms and their states."""
    from bastion.monitor.store import MonitorStore

    records = MonitorStore().list_alarms()
    if fmt == "json":
        doc = {
            "schema_version": "bastion.monitor.alarms/1",
            "alarms": [
                {
                    "name": r.config.name,
                    "state": r.state.value,
                    "reason": r.reason,
                    "updated": r.updated,
                    "evaluation_periods": r.config.evaluation_periods,
                    "datapoints_to_alarm": r.config.datapoints_to_alarm,
                    "missing_data": r.config.missing_data.value,
                    "webhooks": list(r.config.webhooks),
                    "commands": list(r.config.commands),
                    "gateways": [g.to_json() for g in r.config.gateways],
                }
                for r in records
            ],
        }
        click.echo(json.dumps(doc, indent=2))
        return
    if not records:
        click.echo("no alarms (create one: bastion monitor alarm-set NAME)")
    for r in records:
        c = r.config
        click.echo(
            f"{c.name:24s} {r.state.value:18s} {c.datapoints_to_alarm} of {c.evaluation_periods} "
            f"missing={c.missing_data.value:13s} {r.updated}  {r.reason}"
        )


@monitor.command()
@click.argument("name")
@click.option("--limit", default=50, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def history(name: str, limit: int, fmt: str) -> None:
    """Recorded evaluations of an alarm (normal ones too), with the actions they ran."""
    from bastion.monitor.store import MonitorStore

    evaluations = MonitorStore().history(name, limit)
    if fmt == "json":
        doc = {
            "schema_version": "bastion.monitor.history/1",
            "evaluations": [_evaluation_json(e) for e in evaluations],
        }
        click.echo(json.dumps(doc, indent=2))
        return
    for e in evaluations:
        change = f"{e.state_before.value} -> {e.state_after.value}" if e.changed else e.state_after.value
        click.echo(f"{e.at}  check={e.status:18s} alarm={change}")
        for a in e.actions:
            click.echo(f"    {a.kind} {a.target}: {'ok' if a.ok else 'FAILED'} {a.detail}")

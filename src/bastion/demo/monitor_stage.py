# mypy: disable-error-code="import-untyped"
# (pyarrow and scipy ship no type stubs; this silences only the import, nothing else)
"""The demo's monitor stage: a baseline from training data, then a clean window, a poisoned one, and
one where only the joint distribution changed (caught by the multivariate detector alone)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def run_monitor_stage(console: Console, workdir: Path) -> bool:
    """Build a baseline, check a clean window (expect OK) and a poisoned one (expect ALARM on the
    features the poison touched). True when Bastion behaved exactly so."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from bastion.monitor import build_baseline, check, load_baseline, write_baseline
    from bastion.monitor.synthetic import apply_scenario, make_table

    root = workdir / "monitor"
    root.mkdir(parents=True, exist_ok=True)
    train = root / "training.csv"
    pacsv.write_csv(make_table(20_000, n_numeric=8, n_categorical=3, seed=0), train)
    baseline_dir = root / "baseline"
    write_baseline(build_baseline([train]), baseline_dir)
    baseline = load_baseline(baseline_dir)
    console.print(
        f"Baseline from {train.name}: {baseline.profile.rows} rows, {len(baseline.profile.columns)} columns"
    )

    clean = root / "window-clean.parquet"
    pq.write_table(make_table(5_000, n_numeric=8, n_categorical=3, seed=11), clean)
    poisoned = root / "window-poisoned.parquet"
    scenario = apply_scenario(make_table(5_000, n_numeric=8, n_categorical=3, seed=12), "cluster")
    pq.write_table(scenario.table, poisoned)
    flipped = root / "window-correlation-flip.parquet"
    flip = apply_scenario(make_table(5_000, n_numeric=8, n_categorical=3, seed=13), "correlation_flip")
    pq.write_table(flip.table, flipped)

    table = Table(title="Monitor checks against the baseline")
    for column in ("window", "status", "drifted / flagged features", "expected"):
        table.add_column(column)
    clean_report = check(baseline, clean)
    poisoned_report = check(baseline, poisoned)
    flip_report = check(baseline, flipped)
    expected_flags = sorted(scenario.drifted)
    for name, report, expected in (
        ("clean", clean_report, "OK"),
        ("poisoned (3 % injected cluster)", poisoned_report, f"ALARM on {', '.join(expected_flags)}"),
        ("correlation flip (no column changed)", flip_report, "ALARM, multivariate only"),
    ):
        colour = "green" if report.status.value == "OK" else "red"
        mv = report.multivariate
        named = ", ".join(report.flagged_columns) or "-"
        if mv is not None and mv.drift:
            named += " (multivariate: joint distribution)"
        table.add_row(name, f"[{colour}]{report.status.value}[/{colour}]", named, expected)
    console.print(table)
    for v in poisoned_report.violations:
        console.print(f"  {v.feature_name}: {v.constraint_check_type}: {v.description}")
    ok = (
        clean_report.status.value == "OK"
        and poisoned_report.status.value == "ALARM"
        and sorted(poisoned_report.drifted_columns) == expected_flags
        and flip_report.status.value == "ALARM"
        and not flip_report.flagged_columns
    )
    if ok:
        console.print(
            "[green]Monitor stage behaved as expected: the clean window passed, the poison was named.[/green]"
        )
    else:
        console.print("[bold red]monitor stage check failed[/bold red]")
    return ok

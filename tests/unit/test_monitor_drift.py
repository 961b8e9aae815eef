"""Drift detection against known ground truth, including large samples and negligible shifts."""

from __future__ import annotations

import time

import pytest

from bastion.monitor.baseline import make_baseline
from bastion.monitor.check import CheckReport, Status, check_profile
from bastion.monitor.drift import adjust
from bastion.monitor.profile import DatasetProfile, profile_batches
from bastion.monitor.synthetic import SCENARIOS, apply_scenario, make_table


def _profile(table: object, like: DatasetProfile | None = None) -> DatasetProfile:
    return profile_batches(table.to_batches(max_chunksize=65_536), like=like)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def reference() -> DatasetProfile:
    return _profile(make_table(50_000, seed=0))


def _check(
    reference: DatasetProfile, scenario: str, rows: int = 20_000, seed: int = 9
) -> tuple[CheckReport, set[str]]:
    case = apply_scenario(make_table(rows, seed=seed), scenario)
    report = check_profile(make_baseline(reference), _profile(case.table, like=reference))
    return report, set(case.drifted)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_is_detected_and_attributed(reference: DatasetProfile, scenario: str) -> None:
    report, truth = _check(reference, scenario)
    assert set(report.flagged_columns) == truth, report.violations
    assert report.status is (Status.ALARM if truth else Status.OK)


def test_violation_kinds_name_the_cause(reference: DatasetProfile) -> None:
    report, _ = _check(reference, "missing_spike")
    assert [(v.feature_name, v.constraint_check_type) for v in report.violations] == [
        ("num_01", "completeness_check")
    ]
    report, _ = _check(reference, "new_category")
    kinds = {v.constraint_check_type for v in report.violations if v.feature_name == "cat_01"}
    assert {"categorical_values_check", "baseline_drift_check"} <= kinds
    report, _ = _check(reference, "cluster")
    for name in ("num_02", "num_06"):
        column = next(c for c in report.columns if c.name == name)
        assert column.drift and column.method == "tail_excess"
        assert column.p_value_adjusted is not None and column.p_value_adjusted < 1e-6


def test_one_drifting_feature_out_of_thirty() -> None:
    reference = _profile(make_table(40_000, n_numeric=24, n_categorical=6, seed=0))
    assert len(reference.columns) == 30
    report, truth = _check(reference, "one_feature")
    assert report.drifted_columns == ["num_07"] == sorted(truth)


def test_no_alarm_on_a_million_rows_without_drift() -> None:
    start = time.perf_counter()
    reference = _profile(make_table(1_000_000, n_numeric=4, n_categorical=2, seed=0))
    window = _profile(make_table(1_000_000, n_numeric=4, n_categorical=2, seed=1), like=reference)
    report = check_profile(make_baseline(reference), window)
    assert report.status is Status.OK, report.violations
    assert report.rows == 1_000_000
    assert all(c.p_value is not None for c in report.columns)
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize("seed", range(5))
def test_small_null_windows_do_not_alarm(reference: DatasetProfile, seed: int) -> None:
    report, truth = _check(reference, "none", rows=300, seed=100 + seed)
    assert not truth and report.status is Status.OK, report.violations


def test_too_few_rows_is_insufficient_data(reference: DatasetProfile) -> None:
    report, _ = _check(reference, "mean_shift", rows=10)
    assert report.status is Status.INSUFFICIENT_DATA
    assert report.exit_code == 3 and not report.columns


def test_effect_size_alone_is_not_enough_on_tiny_windows(reference: DatasetProfile) -> None:
    """A 40-row window can show a large apparent effect by chance; significance must also hold."""
    report, _ = _check(reference, "none", rows=40, seed=7)
    assert report.status is Status.OK


def test_benjamini_hochberg_matches_the_textbook() -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    assert adjust(p, "benjamini-hochberg") == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.5])
    assert adjust(p, "bonferroni") == pytest.approx([0.05, 0.2, 0.15, 0.025, 1.0])
    assert adjust(p, "none") == p
    assert adjust([], "benjamini-hochberg") == []

"""Multivariate drift (PCA reconstruction error from stored co-moments) against known ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bastion.errors import ConfigError
from bastion.monitor import build_baseline, check, load_baseline, write_baseline
from bastion.monitor.baseline import Baseline, make_baseline, merge_joints
from bastion.monitor.check import MULTIVARIATE_CHECK, Status, check_batches
from bastion.monitor.multivariate import JointMoments, fit
from bastion.monitor.profile import profile_batches
from bastion.monitor.synthetic import apply_scenario, make_table


def _baseline(table: pa.Table) -> Baseline:
    joint = JointMoments()
    profile = profile_batches(joint.observe(table.to_batches(max_chunksize=65_536)))
    return make_baseline(profile, joint=joint)


@pytest.fixture(scope="module")
def reference() -> Baseline:
    return _baseline(make_table(100_000, seed=0))


def test_correlation_flip_is_caught_by_multivariate_not_univariate(reference: Baseline) -> None:
    case = apply_scenario(make_table(50_000, seed=3), "correlation_flip")
    assert case.joint_drift and not case.drifted
    report = check_batches(reference, case.table.to_batches(max_chunksize=65_536))
    assert report.drifted_columns == [] and report.flagged_columns == []  # every marginal is unchanged
    mv = report.multivariate
    assert mv is not None and mv.drift is True
    assert mv.statistic is not None and mv.threshold is not None and mv.statistic >= mv.threshold
    assert mv.p_value is not None and mv.p_value < 1e-6
    assert set(list(mv.contributions)[:2]) == {"num_00", "num_04"}  # the flipped pair rises most
    assert report.status is Status.ALARM
    assert [v.constraint_check_type for v in report.violations] == [MULTIVARIATE_CHECK]
    doc = report.to_json()
    assert doc["multivariate"]["drift"] is True and doc["multivariate"]["method"] == "pca_reconstruction"


def test_null_window_of_100k_rows_does_not_alarm(reference: Baseline) -> None:
    report = check_batches(reference, make_table(100_000, seed=42).to_batches(max_chunksize=65_536))
    assert report.multivariate is not None and report.multivariate.drift is False
    assert report.status is Status.OK, report.violations


@pytest.mark.parametrize("scenario", ["none", "negligible"])
def test_small_null_windows_do_not_alarm(scenario: str) -> None:
    base = _baseline(make_table(20_000, seed=0))
    alarms = 0
    for seed in range(20):
        window = apply_scenario(make_table(500, seed=1000 + seed), scenario, seed=seed).table
        mv = check_batches(base, window.to_batches()).multivariate
        assert mv is not None and mv.drift is not None
        alarms += bool(mv.drift)
    assert alarms == 0


def test_a_weaker_correlation_change_is_caught_too(reference: Baseline) -> None:
    table = make_table(20_000, seed=5)
    z0 = table.column("num_00").to_numpy()
    rng = np.random.default_rng(0)
    decorrelated = 40.0 + 2.0 * (0.3 * z0 + np.sqrt(1 - 0.09) * rng.normal(size=len(z0)))  # r 0.8 -> 0.3
    table = table.set_column(4, "num_04", pa.array(decorrelated))
    report = check_batches(reference, table.to_batches())
    assert report.multivariate is not None and report.multivariate.drift is True
    assert report.flagged_columns == []


def test_merged_partitions_equal_one_pass() -> None:
    table = make_table(9_001, seed=1)
    whole = JointMoments()
    whole.update(table.to_batches()[0])
    parts = [JointMoments(), JointMoments()]
    for part, piece in zip(parts, (table.slice(0, 4_001), table.slice(4_001)), strict=True):
        for batch in piece.to_batches(max_chunksize=1_000):
            part.update(batch)
    merged = merge_joints(list(parts))
    assert merged is not None and merged.halves is not None and whole.halves is not None
    assert merged.rows == whole.rows == 9_001
    for mine, theirs in zip(merged.halves, whole.halves, strict=True):
        assert mine.rows == theirs.rows
        np.testing.assert_allclose(mine.shifted(merged.shift - whole.shift).c, theirs.c, rtol=1e-9, atol=1e-6)  # type: ignore[operator]
        np.testing.assert_allclose(mine.n, theirs.n)
    assert merge_joints([parts[0], None]) is None


def test_missing_values_are_imputed_not_dropped() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=20_000)
    b = 0.9 * a + np.sqrt(1 - 0.81) * rng.normal(size=20_000)
    mask = rng.random(20_000) < 0.2
    table = pa.table({"a": pa.array(a), "b": pa.array(np.where(mask, np.nan, b), mask=mask)})
    base = _baseline(table)
    model = fit(base.joint, 0.95)  # type: ignore[arg-type]
    assert not isinstance(model, str)
    assert model.components.shape == (2, 1)
    np.testing.assert_allclose(model.mean, [a.mean(), b[~mask].mean()], atol=1e-9)
    report = check_batches(base, table.slice(0, 5_000).to_batches())
    assert report.multivariate is not None and report.multivariate.drift is False


def test_too_small_a_reference_is_not_decided_and_does_not_alarm() -> None:
    base = _baseline(make_table(600, seed=0))
    report = check_batches(
        base, apply_scenario(make_table(600, seed=1), "correlation_flip").table.to_batches()
    )
    mv = report.multivariate
    assert mv is not None and mv.drift is None and mv.note and "too few rows" in mv.note
    assert report.to_json()["multivariate"]["drift"] is None


def test_baseline_files_round_trip_and_can_opt_out(tmp_path: Path) -> None:
    train, window = tmp_path / "train.parquet", tmp_path / "window.parquet"
    pq.write_table(make_table(20_000, seed=0), train)
    pq.write_table(apply_scenario(make_table(10_000, seed=1), "correlation_flip").table, window)
    write_baseline(build_baseline([train]), tmp_path / "with")
    report = check(load_baseline(tmp_path / "with"), window)
    assert report.status is Status.ALARM and report.multivariate is not None and report.multivariate.drift
    write_baseline(build_baseline([train], multivariate=False), tmp_path / "without")
    doc = json.loads((tmp_path / "without" / "bastion-baseline.json").read_text())
    assert "joint" not in doc
    report = check(load_baseline(tmp_path / "without"), window)
    assert report.status is Status.OK and report.multivariate is None
    constraints = tmp_path / "with" / "constraints.json"
    data = json.loads(constraints.read_text())
    data["bastion"]["multivariate"]["enabled"] = False
    constraints.write_text(json.dumps(data))
    assert check(load_baseline(tmp_path / "with"), window).status is Status.OK
    data["bastion"]["multivariate"]["typo"] = 1
    constraints.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="multivariate"):
        load_baseline(tmp_path / "with")


def test_a_tampered_joint_summary_is_rejected(tmp_path: Path) -> None:
    train = tmp_path / "train.parquet"
    pq.write_table(make_table(2_000, seed=0), train)
    write_baseline(build_baseline([train]), tmp_path / "b")
    path = tmp_path / "b" / "bastion-baseline.json"
    doc = json.loads(path.read_text())
    doc["joint"]["halves"][0]["c"] = [[1.0]]
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="joint moments"):
        load_baseline(tmp_path / "b")


def test_cli_text_html_and_merge_carry_the_verdict(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bastion.cli.app import cli

    runner = CliRunner()
    for i in range(2):
        pq.write_table(make_table(15_000, seed=i), tmp_path / f"part{i}.parquet")
        out = runner.invoke(
            cli,
            [
                "monitor",
                "baseline",
                "--data",
                str(tmp_path / f"part{i}.parquet"),
                "--out",
                str(tmp_path / f"b{i}"),
            ],
        )
        assert out.exit_code == 0, out.output
    out = runner.invoke(
        cli, ["monitor", "merge", str(tmp_path / "b0"), str(tmp_path / "b1"), "--out", str(tmp_path / "m")]
    )
    assert out.exit_code == 0 and "no multivariate" not in out.output, out.output
    merged = load_baseline(tmp_path / "m")
    assert merged.joint is not None and merged.joint.rows == 30_000
    window = tmp_path / "flip.parquet"
    pq.write_table(apply_scenario(make_table(5_000, seed=7), "correlation_flip").table, window)
    args = ["monitor", "check", "--baseline", str(tmp_path / "m"), "--data", str(window)]
    out = runner.invoke(cli, args)
    assert out.exit_code == 1 and "multivariate drift: YES" in out.output, out.output
    out = runner.invoke(cli, [*args, "--format", "html"])
    assert out.exit_code == 1 and "Multivariate drift (pca_reconstruction)" in out.output
    out = runner.invoke(
        cli, ["monitor", "baseline", "--data", str(window), "--out", str(tmp_path / "n"), "--no-multivariate"]
    )
    assert out.exit_code == 0
    out = runner.invoke(
        cli, ["monitor", "merge", str(tmp_path / "m"), str(tmp_path / "n"), "--out", str(tmp_path / "mn")]
    )
    assert out.exit_code == 0 and "no multivariate detector" in out.output

"""Model-quality metrics against scikit-learn (the reference definitions), and the OK / ALARM rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sklearn import metrics as skm

from bastion.cli.monitor import monitor
from bastion.errors import ConfigError, InputError, UsageError
from bastion.monitor.check import Status
from bastion.monitor.metrics import ConfusionCounts, RegressionSums, roc_auc
from bastion.monitor.quality import (
    Problem,
    QualityBaseline,
    QualitySpec,
    compare,
    measure,
    parse_quality,
    parse_tolerance_options,
    quality_json,
)

TOL = 1e-9


def _batches(table: pa.Table, rows: int = 997) -> list[pa.RecordBatch]:
    return table.to_batches(max_chunksize=rows)  # several batches, so the merging is exercised


def _classification(n: int, classes: int, accuracy: float, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    wrong = rng.random(n) > accuracy
    pred = np.where(wrong, rng.integers(0, classes, n), y)
    score = np.clip(0.5 * (y == 1) + rng.normal(0.25, 0.2, n), 0, 1).round(2)  # rounded: ties
    return pa.table({"y": y, "pred": pred, "score": score})


def test_multiclass_metrics_match_scikit_learn() -> None:
    table = _classification(20_000, 4, 0.8, seed=0)
    table = table.set_column(1, "pred", pa.array(np.where(table["pred"].to_numpy() == 3, 4, table["pred"])))
    q = measure(_batches(table), QualitySpec("pred", "y"))
    y, p = table["y"].to_numpy(), table["pred"].to_numpy()
    assert q.problem is Problem.CLASSIFICATION and q.rows == 20_000
    assert abs(q.metrics["accuracy"] - skm.accuracy_score(y, p)) < TOL
    for avg in ("precision", "recall", "f1"):
        fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[avg]
        assert abs(q.metrics[f"{avg}_macro"] - fn(y, p, average="macro", zero_division=0)) < TOL
        per = fn(y, p, average=None, zero_division=0, labels=[0, 1, 2, 3, 4])
        for label, expected in zip(range(5), per, strict=True):
            assert abs(q.per_class[str(label)][avg] - expected) < TOL
    assert q.per_class["3"]["precision"] == 0.0 and q.per_class["4"]["recall"] == 0.0  # zero_division=0


def test_binary_auc_matches_scikit_learn_with_ties_and_text_labels() -> None:
    table = _classification(5_000, 2, 0.9, seed=1)
    y = table["y"].to_numpy()
    q = measure(_batches(table, 333), QualitySpec("pred", "y", score_column="score"))
    assert abs(q.metrics["roc_auc"] - skm.roc_auc_score(y, table["score"].to_numpy())) < TOL
    assert q.positive_label == "1"
    words = pa.table({"y": np.where(y == 1, "pos", "neg"), "pred": table["pred"], "score": table["score"]})
    words = words.set_column(1, "pred", pa.array(np.where(table["pred"].to_numpy() == 1, "pos", "neg")))
    qw = measure(_batches(words), QualitySpec("pred", "y", score_column="score"))
    assert abs(qw.metrics["roc_auc"] - skm.roc_auc_score(y, table["score"].to_numpy())) < TOL
    flipped = measure(_batches(words), QualitySpec("pred", "y", score_column="score", positive_label="neg"))
    assert abs(flipped.metrics["roc_auc"] - (1 - qw.metrics["roc_auc"])) < TOL


def test_roc_auc_is_none_with_one_class() -> None:
    assert roc_auc(np.array([0.1, 0.2]), np.array([True, True])) is None


def test_regression_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(50, 10, 30_000)
    p = y + rng.normal(0.5, 3, y.size)
    table = pa.table({"target": y, "yhat": p})
    q = measure(_batches(table, 4096), QualitySpec("yhat", "target"))
    assert q.problem is Problem.REGRESSION
    assert abs(q.metrics["mae"] - skm.mean_absolute_error(y, p)) < TOL
    assert abs(q.metrics["rmse"] - np.sqrt(skm.mean_squared_error(y, p))) < TOL
    assert abs(q.metrics["r2"] - skm.r2_score(y, p)) < TOL


def test_accumulators_merge_and_round_trip() -> None:
    a, b = RegressionSums(), RegressionSums()
    a.update(np.array([1.0, 2.0]), np.array([1.5, 2.0]))
    b.update(np.array([10.0, 4.0, 3.0]), np.array([9.0, 4.0, 1.0]))
    a.merge(RegressionSums.from_json(b.to_json()))
    y, p = np.array([1.0, 2, 10, 4, 3]), np.array([1.5, 2, 9, 4, 1])
    assert abs(a.metrics()["r2"] - skm.r2_score(y, p)) < TOL
    c = ConfusionCounts({("a", "b"): 2, ("b", "b"): 3})
    assert ConfusionCounts.from_json(c.to_json()) == c


def test_unlabelled_rows_and_missing_predictions_are_counted_not_scored() -> None:
    table = pa.table({"y": [1, 0, None, 1, None], "pred": [1, 0, 1, None, 0]})
    q = measure([table.to_batches()[0]], QualitySpec("pred", "y", problem=Problem.CLASSIFICATION))
    assert (q.rows, q.unlabelled, q.missing_predictions) == (2, 2, 1)
    assert q.metrics["accuracy"] == 1.0


def test_string_and_number_classes_are_the_same_class() -> None:
    table = pa.table({"y": ["1", "0", " 1"], "pred": [1.0, 0.0, 1.0]})
    q = measure(table.to_batches(), QualitySpec("pred", "y"))
    assert q.metrics["accuracy"] == 1.0 and set(q.per_class) == {"0", "1"}


def test_missing_column_and_non_numeric_regression_are_input_errors() -> None:
    table = pa.table({"y": ["a", "b"], "pred": ["a", "a"]})
    with pytest.raises(InputError, match="'label'"):
        measure(table.to_batches(), QualitySpec("pred", "label"))
    with pytest.raises(InputError, match="numeric"):
        measure(table.to_batches(), QualitySpec("pred", "y", problem=Problem.REGRESSION))
    with pytest.raises(UsageError):
        QualitySpec("y", "y")


def _baseline(table: pa.Table, spec: QualitySpec) -> QualityBaseline:
    return parse_quality(
        json.loads(json.dumps(quality_json(QualityBaseline(measure(_batches(table), spec)))))
    )


def test_degraded_classifier_alarms_and_names_the_metric() -> None:
    spec = QualitySpec("pred", "y", score_column="score")
    base = _baseline(_classification(10_000, 2, 0.95, seed=3), spec)
    same = compare(base, measure(_batches(_classification(5_000, 2, 0.95, seed=4)), spec))
    assert same.status is Status.OK and same.exit_code == 0 and not same.degraded_metrics
    worse = compare(base, measure(_batches(_classification(5_000, 2, 0.70, seed=5)), spec))
    assert worse.status is Status.ALARM and worse.exit_code == 1
    assert {"accuracy", "f1_macro"} <= set(worse.degraded_metrics)
    doc = worse.to_json()
    assert doc["violations"][0]["constraint_check_type"] == "model_quality_check"
    assert "accuracy fell to" in next(
        v["description"] for v in doc["violations"] if v["feature_name"] == "accuracy"
    )
    lenient = compare(base, measure(_batches(_classification(5_000, 2, 0.70, seed=5)), spec), {
        name: 0.5 for name in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_per_class")
    })  # fmt: skip
    assert lenient.status is Status.OK


def test_degraded_regressor_alarms_on_error_metrics() -> None:
    rng = np.random.default_rng(6)
    y = rng.normal(0, 5, 4_000)
    spec = QualitySpec("yhat", "y")
    base = _baseline(pa.table({"y": y, "yhat": y + rng.normal(0, 1, y.size)}), spec)
    worse = compare(base, measure(_batches(pa.table({"y": y, "yhat": y + rng.normal(0, 2, y.size)})), spec))
    assert worse.status is Status.ALARM and {"mae", "rmse"} <= set(worse.degraded_metrics)


def test_too_few_labelled_rows_is_insufficient_data() -> None:
    spec = QualitySpec("pred", "y")
    base = _baseline(_classification(1_000, 2, 0.9, seed=7), spec)
    table = _classification(500, 2, 0.1, seed=8)
    labels = pa.array([v if i < 50 else None for i, v in enumerate(table["y"].to_pylist())])
    report = compare(base, measure(_batches(table.set_column(0, "y", labels)), spec))
    assert report.status is Status.INSUFFICIENT_DATA and report.exit_code == 3 and report.rows == 50
    assert report.unlabelled == 450


def test_problem_mismatch_and_bad_tolerances_are_rejected() -> None:
    base = _baseline(_classification(1_000, 2, 0.9, seed=9), QualitySpec("pred", "y"))
    rng = np.random.default_rng(0)
    reg = measure(pa.table({"y": rng.normal(size=200), "pred": rng.normal(size=200)}).to_batches(),
                  QualitySpec("pred", "y"))  # fmt: skip
    with pytest.raises(UsageError, match="regression"):
        compare(base, reg)
    with pytest.raises(UsageError, match="NAME=VALUE"):
        parse_tolerance_options(["accuracy"])
    with pytest.raises(UsageError, match="unknown metric"):
        parse_tolerance_options(["acuracy=0.1"])
    doc = quality_json(base)
    with pytest.raises(ConfigError, match="unknown field"):
        parse_quality(doc | {"extra": 1})
    with pytest.raises(ConfigError, match="non-negative"):
        parse_quality(doc | {"tolerances": {"accuracy": -1}})


def test_quality_cli_end_to_end(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    pacsv.write_csv(
        _classification(3_000, 2, 0.9, seed=10).append_column("x", pa.array(np.arange(3_000.0))), train
    )
    good = tmp_path / "good.parquet"
    pq.write_table(_classification(2_000, 2, 0.9, seed=11), good)
    bad = tmp_path / "bad.parquet"
    pq.write_table(_classification(2_000, 2, 0.6, seed=12), bad)
    out = tmp_path / "baseline"
    runner = CliRunner()
    args = ["--prediction-column", "pred", "--label-column", "y", "--score-column", "score"]
    result = runner.invoke(monitor, ["baseline", "--data", str(train), "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    assert "roc_auc" in result.output and (out / "quality.json").is_file()
    profile = json.loads((out / "bastion-baseline.json").read_text())["profile"]
    assert "y" not in profile["columns"] and "pred" in profile["columns"]  # the label is not an input
    ok = runner.invoke(monitor, ["quality", "--baseline", str(out), "--data", str(good)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("status: OK")
    alarm = runner.invoke(
        monitor, ["quality", "--baseline", str(out), "--data", str(bad), "--format", "json"]
    )
    assert alarm.exit_code == 1, alarm.output
    doc = json.loads(alarm.output)
    assert doc["status"] == "ALARM" and "accuracy" in doc["degraded_metrics"]
    assert doc["metrics"]["accuracy"]["degraded"] is True
    few = runner.invoke(
        monitor, ["quality", "--baseline", str(out), "--data", str(bad), "--min-rows", "5000"]
    )
    assert few.exit_code == 3 and "INSUFFICIENT_DATA" in few.output
    base_args = ["quality", "--baseline", str(out), "--data", str(bad), "--format", "json"]
    loose = runner.invoke(monitor, [*base_args, "--tolerance", "accuracy=1"])
    assert loose.exit_code == 1  # only accuracy was loosened: the other metrics still alarm
    assert "accuracy" not in json.loads(loose.output)["degraded_metrics"]
    nolabels = runner.invoke(monitor, ["quality", "--baseline", str(tmp_path), "--data", str(good)])
    assert nolabels.exit_code == 2 and "records no model quality" in nolabels.output

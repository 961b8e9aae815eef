"""Model quality once ground-truth labels arrive: metrics of a window compared with the baseline's.

``measure`` streams the prediction, label (and optional score) columns of some data into a
:class:`QualityProfile`: a confusion matrix for classification, error sums for regression (both
mergeable, in bounded memory), plus the (score, label) pairs for ROC AUC. A baseline records the
training or validation quality in ``quality.json`` (with the tolerances, editable); ``compare``
turns a window's profile into a :class:`QualityReport`: ALARM naming every metric that degraded
beyond its tolerance, OK, or INSUFFICIENT_DATA when fewer than ``min_rows`` rows carry a label.

Tolerances: for scores where higher is better (accuracy, precision, recall, F1, ROC AUC, R²) the
largest allowed absolute drop; for errors (MAE, RMSE) the largest allowed relative increase.
Rows without a label are not labelled yet and are skipped; rows with a label but no prediction are
counted (``missing_predictions``) and skipped.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.errors import ConfigError, InputError, UsageError
from bastion.monitor.check import EXIT_CODES, Status
from bastion.monitor.metrics import MAX_CLASSES, ConfusionCounts, RegressionSums, ScoreSample

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

QUALITY_FILE = "quality.json"
QUALITY_SCHEMA = "bastion.monitor.quality/1"
REPORT_SCHEMA = "bastion.monitor.quality-check/1"
MAX_AUTO_CLASSES = 20  # integer labels with more distinct values than this are taken as regression
HIGHER_IS_BETTER = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "r2")
LOWER_IS_BETTER = ("mae", "rmse")
DEFAULT_TOLERANCES = {
    "accuracy": 0.05,
    "precision_macro": 0.05,
    "recall_macro": 0.05,
    "f1_macro": 0.05,
    "roc_auc": 0.05,
    "f1_per_class": 0.1,  # per-class F1, for classes with at least min_rows labelled rows on both sides
    "r2": 0.1,
    "mae": 0.1,
    "rmse": 0.1,
}
DEFAULT_MIN_ROWS = 100


class Problem(enum.Enum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


@dataclass(frozen=True)
class QualitySpec:
    """Which columns hold the prediction, the ground truth and (optionally) the positive-class score."""

    prediction_column: str
    label_column: str
    score_column: str | None = None
    problem: Problem | None = None  # None: inferred from the labels
    positive_label: str | None = None  # for ROC AUC; default: the greater of the two labels

    def __post_init__(self) -> None:
        names = [self.prediction_column, self.label_column, self.score_column]
        if self.prediction_column == self.label_column or (
            self.score_column is not None and self.score_column in names[:2]
        ):
            raise UsageError("the prediction, label and score columns must be different columns")

    @property
    def columns(self) -> list[str]:
        return [c for c in (self.prediction_column, self.label_column, self.score_column) if c]


@dataclass
class _Accumulator:
    spec: QualitySpec
    unlabelled: int = 0
    missing_predictions: int = 0
    seen: set[str] = field(default_factory=set)
    confusion: ConfusionCounts | None = field(default_factory=ConfusionCounts)  # None: too many classes
    regression: RegressionSums | None = field(default_factory=RegressionSums)  # None: not numeric
    labels_integral: bool = True
    scores: ScoreSample = field(default_factory=ScoreSample)
    codes: dict[str, int] = field(default_factory=dict)  # label text -> code, for the score sample

    def update(self, batch: pa.RecordBatch) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        spec = self.spec
        self.seen |= set(batch.schema.names)
        n = batch.num_rows
        if spec.label_column not in batch.schema.names:
            self.unlabelled += n
            return
        label = batch.column(spec.label_column)
        labelled = pc.is_valid(label)
        if spec.prediction_column in batch.schema.names:
            has_prediction = pc.is_valid(batch.column(spec.prediction_column))
        else:
            has_prediction = pa.array(np.zeros(n, dtype=bool))
        self.unlabelled += n - int(pc.sum(labelled).as_py() or 0)
        keep = pc.and_(labelled, has_prediction)
        self.missing_predictions += int(pc.sum(pc.and_(labelled, pc.invert(has_prediction))).as_py() or 0)
        if spec.score_column is not None and spec.score_column in batch.schema.names:
            keep = pc.and_(keep, pc.is_valid(batch.column(spec.score_column)))
        rows = batch.filter(keep)
        if rows.num_rows == 0:
            return
        label = rows.column(spec.label_column)
        prediction = rows.column(spec.prediction_column)
        y, y_ok = _numbers(label)
        p, p_ok = _numbers(prediction)
        if self.regression is not None:
            if y_ok and p_ok:
                self.regression.update(y, p)
            else:
                self.regression = None
        if y_ok:
            self.labels_integral = self.labels_integral and bool(np.all(y == np.floor(y)))
        if self.confusion is not None:
            label_text = _as_text(label, y if y_ok else None)
            pred_text = _as_text(prediction, p if p_ok else None)
            self.confusion.update(_pair_counts(label_text, pred_text))
            if len(self.confusion.pairs) > MAX_CLASSES:
                self.confusion = None
                self.scores = ScoreSample()
            elif spec.score_column is not None and spec.score_column in batch.schema.names:
                scores, ok = _numbers(rows.column(spec.score_column))
                if not ok:
                    raise InputError(f"score column {spec.score_column!r} holds values that are not numbers")
                codes = np.array(
                    [self.codes.setdefault(v, len(self.codes)) for v in label_text.to_pylist()],
                    dtype=np.int64,
                )
                self.scores.update(scores, codes)


def _numbers(array: pa.Array | pa.ChunkedArray) -> tuple[npt.NDArray[np.float64], bool]:
    """The values as float64 and True, or an empty array and False when some are not numbers."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    t = array.type
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        try:
            values = pc.cast(pc.utf8_trim_whitespace(array), pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            return np.empty(0), False
    else:
        return np.empty(0), False
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        return np.empty(0), False
    return values, True


def _as_text(array: pa.Array | pa.ChunkedArray, numbers: npt.NDArray[np.float64] | None) -> pa.Array:
    """Class names as text; numbers written canonically, so "1", 1 and 1.0 are the same class."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_boolean(array.type):
        return pc.cast(array, pa.string())
    if numbers is not None:
        if np.all(numbers == np.floor(numbers)) and np.all(np.abs(numbers) < 2**53):
            return pc.cast(pa.array(numbers.astype(np.int64)), pa.string())
        return pa.array([repr(float(x)) for x in numbers], type=pa.string())
    return pc.cast(array, pa.string())


def _pair_counts(labels: pa.Array, predictions: pa.Array) -> dict[tuple[str, str], int]:
    import numpy as np
    import pyarrow.compute as pc

    lab = pc.dictionary_encode(labels)
    pre = pc.dictionary_encode(predictions)
    lab_names = lab.dictionary.to_pylist()
    pre_names = pre.dictionary.to_pylist()
    keys = lab.indices.to_numpy().astype(np.int64) * len(pre_names) + pre.indices.to_numpy()
    unique, counts = np.unique(keys, return_counts=True)
    return {
        (str(lab_names[k // len(pre_names)]), str(pre_names[k % len(pre_names)])): int(c)
        for k, c in zip(unique.tolist(), counts.tolist(), strict=True)
    }


@dataclass(frozen=True)
class QualityProfile:
    """The quality of a model's predictions on some labelled data: metrics and mergeable state."""

    spec: QualitySpec
    problem: Problem
    rows: int  # labelled rows with a prediction
    unlabelled: int
    missing_predictions: int
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    positive_label: str | None = None
    confusion: ConfusionCounts | None = None
    regression: RegressionSums | None = None


def measure(batches: Iterable[pa.RecordBatch], spec: QualitySpec) -> QualityProfile:
    """Stream batches into a quality profile (see the module docstring for the rules)."""
    acc = _Accumulator(spec)
    for batch in batches:
        acc.update(batch)
    for column in (spec.label_column, spec.prediction_column, spec.score_column):
        if column is not None and column not in acc.seen:
            raise InputError(f"column {column!r} is not in the data", hint=f"columns: {sorted(acc.seen)}")
    problem = spec.problem or _infer_problem(acc)
    if problem is Problem.REGRESSION:
        if acc.regression is None:
            raise InputError(
                "regression needs numeric labels and predictions",
                hint="use --problem classification for class labels",
            )
        return QualityProfile(
            spec,
            problem,
            acc.regression.n,
            acc.unlabelled,
            acc.missing_predictions,
            acc.regression.metrics(),
            regression=acc.regression,
        )
    if acc.confusion is None:
        raise InputError(f"more than {MAX_CLASSES} distinct (label, prediction) pairs: not classification")
    metrics, per_class = acc.confusion.metrics()
    positive = None
    if spec.score_column is not None:
        labels = sorted({label for label, _ in acc.confusion.pairs}, key=_class_order)
        positive = (
            spec.positive_label if spec.positive_label is not None else (labels[-1] if labels else None)
        )
        if len(labels) == 2 and positive in acc.codes:
            auc = acc.scores.auc(acc.codes[positive])
            if auc is not None:
                metrics["roc_auc"] = auc
    return QualityProfile(
        spec,
        problem,
        acc.confusion.n,
        acc.unlabelled,
        acc.missing_predictions,
        metrics,
        per_class,
        positive,
        confusion=acc.confusion,
    )


def _class_order(name: str) -> tuple[int, float, str]:
    """Numbers in numeric order before text (scikit-learn sorts 0 < 1, 'neg' < 'pos')."""
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def _infer_problem(acc: _Accumulator) -> Problem:
    if acc.regression is None or acc.confusion is None:
        return Problem.CLASSIFICATION if acc.confusion is not None else Problem.REGRESSION
    labels = {label for label, _ in acc.confusion.pairs}
    if acc.labels_integral and len(labels) <= MAX_AUTO_CLASSES:
        return Problem.CLASSIFICATION
    return Problem.REGRESSION


# -- the baseline's quality.json -----------------------------------------------------------------


@dataclass(frozen=True)
class QualityBaseline:
    profile: QualityProfile
    tolerances: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))
    min_rows: int = DEFAULT_MIN_ROWS


def quality_json(baseline: QualityBaseline) -> dict[str, Any]:
    q = baseline.profile
    state: dict[str, Any] = {}
    if q.confusion is not None:
        state["confusion"] = q.confusion.to_json()
    if q.regression is not None:
        state["regression"] = q.regression.to_json()
    return {
        "schema_version": QUALITY_SCHEMA,
        "problem": q.problem.value,
        "prediction_column": q.spec.prediction_column,
        "label_column": q.spec.label_column,
        "score_column": q.spec.score_column,
        "positive_label": q.positive_label,
        "rows": q.rows,
        "unlabelled": q.unlabelled,
        "missing_predictions": q.missing_predictions,
        "metrics": q.metrics,
        "per_class": q.per_class,
        "min_rows": baseline.min_rows,
        "tolerances": baseline.tolerances,
        "state": state,
    }


def write_quality(baseline: QualityBaseline, folder: Path) -> Path:
    path = folder / QUALITY_FILE
    path.write_text(json.dumps(quality_json(baseline), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return path


def load_quality(folder: Path) -> QualityBaseline:
    path = folder / QUALITY_FILE
    if not path.is_file():
        raise InputError(
            f"{path} is missing: the baseline records no model quality",
            hint="rebuild it with `bastion monitor baseline ... --prediction-column P --label-column L`",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not readable JSON: {exc}") from None
    return parse_quality(data, str(path))


def parse_quality(data: Any, where: str = QUALITY_FILE) -> QualityBaseline:
    allowed = set(quality_json(_EMPTY).keys())
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a JSON object")
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}", hint=f"known: {sorted(allowed)}")
    if data.get("schema_version") != QUALITY_SCHEMA:
        raise ConfigError(f"{where}: unsupported schema_version {data.get('schema_version')!r}")
    tolerances = dict(DEFAULT_TOLERANCES)
    raw_tol = data.get("tolerances", {})
    if not isinstance(raw_tol, Mapping):
        raise ConfigError(f"{where}: tolerances must be a JSON object")
    for name, value in raw_tol.items():
        tolerances[str(name)] = _tolerance(f"{where}: tolerances.{name}", name, value)
    min_rows = data.get("min_rows", DEFAULT_MIN_ROWS)
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise ConfigError(f"{where}: min_rows must be a positive integer")
    try:
        problem = Problem(data["problem"])
        spec = QualitySpec(
            str(data["prediction_column"]),
            str(data["label_column"]),
            None if data.get("score_column") is None else str(data["score_column"]),
            problem,
            None if data.get("positive_label") is None else str(data["positive_label"]),
        )
        metrics = {str(k): float(v) for k, v in dict(data["metrics"]).items()}
        per_class = {
            str(c): {str(k): float(v) for k, v in dict(m).items()} for c, m in dict(data["per_class"]).items()
        }
        state = dict(data.get("state", {}))
        confusion = ConfusionCounts.from_json(state["confusion"]) if "confusion" in state else None
        regression = RegressionSums.from_json(state["regression"]) if "regression" in state else None
        profile = QualityProfile(
            spec,
            problem,
            int(data["rows"]),
            int(data.get("unlabelled", 0)),
            int(data.get("missing_predictions", 0)),
            metrics,
            per_class,
            spec.positive_label,
            confusion,
            regression,
        )
    except (KeyError, TypeError, ValueError, UsageError) as exc:
        raise ConfigError(f"{where}: malformed quality baseline: {exc!r}") from None
    return QualityBaseline(profile, tolerances, min_rows)


def _tolerance(where: str, name: str, value: Any) -> float:
    if name not in DEFAULT_TOLERANCES:
        raise ConfigError(f"{where}: unknown metric", hint=f"known: {sorted(DEFAULT_TOLERANCES)}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ConfigError(f"{where} must be a non-negative number, not {value!r}")
    return float(value)


def parse_tolerance_options(options: Sequence[str]) -> dict[str, float]:
    """``NAME=VALUE`` command-line overrides."""
    out: dict[str, float] = {}
    for option in options:
        name, sep, value = option.partition("=")
        if not sep:
            raise UsageError(
                f"--tolerance {option!r} must be NAME=VALUE", hint="e.g. --tolerance accuracy=0.02"
            )
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"--tolerance {option!r}: {value!r} is not a number") from None
        try:
            out[name.strip()] = _tolerance(f"--tolerance {option}", name.strip(), number)
        except ConfigError as exc:
            raise UsageError(str(exc), hint=exc.hint) from None
    return out


_EMPTY = QualityBaseline(QualityProfile(QualitySpec("p", "l"), Problem.REGRESSION, 0, 0, 0, {}))


# -- comparison ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricResult:
    name: str
    baseline: float
    current: float
    tolerance: float
    higher_is_better: bool
    degraded: bool

    @property
    def limit(self) -> float:
        """The worst value still accepted."""
        if self.higher_is_better:
            return self.baseline - self.tolerance
        return self.baseline * (1 + self.tolerance)


@dataclass(frozen=True)
class QualityReport:
    status: Status
    problem: Problem
    rows: int
    reference_rows: int
    unlabelled: int
    missing_predictions: int
    min_rows: int
    metrics: tuple[MetricResult, ...]
    current: QualityProfile | None = None

    @property
    def degraded_metrics(self) -> list[str]:
        return [m.name for m in self.metrics if m.degraded]

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": REPORT_SCHEMA,
            "status": self.status.value,
            "problem": self.problem.value,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "unlabelled": self.unlabelled,
            "missing_predictions": self.missing_predictions,
            "min_rows": self.min_rows,
            "degraded_metrics": self.degraded_metrics,
            "violations": [
                {
                    "feature_name": m.name,
                    "constraint_check_type": "model_quality_check",
                    "description": _describe(m),
                    "severity": "error",
                }
                for m in self.metrics
                if m.degraded
            ],
            "metrics": {
                m.name: {
                    "baseline": m.baseline,
                    "current": m.current,
                    "tolerance": m.tolerance,
                    "limit": m.limit,
                    "direction": "higher_is_better" if m.higher_is_better else "lower_is_better",
                    "degraded": m.degraded,
                }
                for m in self.metrics
            },
            "per_class": self.current.per_class if self.current else {},
        }


def _describe(m: MetricResult) -> str:
    word = "fell" if m.higher_is_better else "rose"
    bound = f"baseline {m.baseline:.4g}, tolerance {m.tolerance:g}"
    if not m.higher_is_better:
        bound += " relative"
    return f"{m.name} {word} to {m.current:.4g} ({bound}, limit {m.limit:.4g})"


def compare(
    baseline: QualityBaseline, current: QualityProfile, tolerances: Mapping[str, float] | None = None
) -> QualityReport:
    ref = baseline.profile
    if current.problem is not ref.problem:
        raise UsageError(
            f"the window was measured as {current.problem.value} but the baseline is {ref.problem.value}"
        )
    tol = {**baseline.tolerances, **(tolerances or {})}
    if current.rows < baseline.min_rows:
        return QualityReport(
            Status.INSUFFICIENT_DATA,
            ref.problem,
            current.rows,
            ref.rows,
            current.unlabelled,
            current.missing_predictions,
            baseline.min_rows,
            (),
            current,
        )
    results = []
    for name in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER):
        if name in ref.metrics and name in current.metrics:
            results.append(_judge(name, ref.metrics[name], current.metrics[name], tol[name]))
    for cls, ref_class in ref.per_class.items():
        cur_class = current.per_class.get(cls)
        if cur_class is None or min(ref_class["support"], cur_class["support"]) < baseline.min_rows:
            continue
        result = _judge("f1", ref_class["f1"], cur_class["f1"], tol["f1_per_class"])
        results.append(replace(result, name=f"f1[{cls}]"))
    status = Status.ALARM if any(r.degraded for r in results) else Status.OK
    return QualityReport(
        status,
        ref.problem,
        current.rows,
        ref.rows,
        current.unlabelled,
        current.missing_predictions,
        baseline.min_rows,
        tuple(results),
        current,
    )


def _judge(name: str, reference: float, current: float, tolerance: float) -> MetricResult:
    higher = name not in LOWER_IS_BETTER
    slack = 1e-12  # a window equal to the baseline never degrades through rounding
    if higher:
        degraded = current < reference - tolerance - slack
    else:
        degraded = current > reference * (1 + tolerance) + slack
    return MetricResult(name, reference, current, tolerance, higher, degraded)

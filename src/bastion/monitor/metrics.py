"""Model-quality metrics from mergeable accumulators, with NumPy only (no scikit-learn at run time).

Each accumulator updates batch by batch in memory bounded by the number of classes (classification)
or constant (regression), merges with another of its kind and round-trips through JSON, like the
profiles. ROC AUC is the one exception: it needs every (score, label) pair, so
:class:`ScoreSample` keeps them (9 bytes a labelled row). Definitions follow scikit-learn's, so its
functions are the reference the tests compare against: macro averages are over the union of the
labels and the predictions, a precision or recall with an empty denominator is 0
(``zero_division=0``), and ROC AUC counts tied scores as half (the trapezoidal ROC curve).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]
    BoolArray = npt.NDArray[np.bool_]
    IntArray = npt.NDArray[np.int64]

MAX_CLASSES = 1_000  # more distinct (label, prediction) pairs than this: not a classification problem


@dataclass
class ConfusionCounts:
    """Counts of (label, prediction) pairs: the confusion matrix, sparse."""

    pairs: dict[tuple[str, str], int] = field(default_factory=dict)

    def update(self, pairs: dict[tuple[str, str], int]) -> None:
        for key, count in pairs.items():
            self.pairs[key] = self.pairs.get(key, 0) + count

    def merge(self, other: ConfusionCounts) -> None:
        self.update(other.pairs)

    @property
    def n(self) -> int:
        return sum(self.pairs.values())

    @property
    def classes(self) -> list[str]:
        return sorted({c for pair in self.pairs for c in pair})

    def metrics(self) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        """Accuracy and macro precision / recall / F1, and per class precision, recall, F1, support."""
        classes = self.classes
        n = self.n
        correct = sum(count for (label, pred), count in self.pairs.items() if label == pred)
        per_class: dict[str, dict[str, float]] = {}
        for c in classes:
            tp = self.pairs.get((c, c), 0)
            support = sum(count for (label, _), count in self.pairs.items() if label == c)
            predicted = sum(count for (_, pred), count in self.pairs.items() if pred == c)
            precision = tp / predicted if predicted else 0.0
            recall = tp / support if support else 0.0
            f1 = 2 * tp / (support + predicted) if support + predicted else 0.0
            per_class[c] = {"precision": precision, "recall": recall, "f1": f1, "support": float(support)}
        k = len(classes) or 1
        headline = {
            "accuracy": correct / n if n else 0.0,
            "precision_macro": sum(m["precision"] for m in per_class.values()) / k,
            "recall_macro": sum(m["recall"] for m in per_class.values()) / k,
            "f1_macro": sum(m["f1"] for m in per_class.values()) / k,
        }
        return headline, per_class

    def to_json(self) -> dict[str, Any]:
        return {"pairs": [[label, pred, count] for (label, pred), count in sorted(self.pairs.items())]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConfusionCounts:
        pairs: dict[tuple[str, str], int] = {}
        for label, pred, count in data["pairs"]:
            if int(count) < 0:
                raise ValueError("confusion counts must be non-negative")
            pairs[(str(label), str(pred))] = int(count)
        return cls(pairs)


@dataclass
class RegressionSums:
    """Sums that give MAE, RMSE and R² exactly, merged like moments (Chan et al.)."""

    n: int = 0
    abs_error: float = 0.0
    sq_error: float = 0.0
    label_mean: float = 0.0
    label_m2: float = 0.0  # sum of squared deviations of the labels from their mean

    def update(self, labels: FloatArray, predictions: FloatArray) -> None:
        if labels.size == 0:
            return
        error = labels - predictions
        mean = float(labels.mean())
        self.merge(
            RegressionSums(
                n=int(labels.size),
                abs_error=float(abs(error).sum()),
                sq_error=float((error * error).sum()),
                label_mean=mean,
                label_m2=float(((labels - mean) ** 2).sum()),
            )
        )

    def merge(self, other: RegressionSums) -> None:
        if other.n == 0:
            return
        total = self.n + other.n
        delta = other.label_mean - self.label_mean
        self.label_m2 += other.label_m2 + delta * delta * self.n * other.n / total
        self.label_mean += delta * other.n / total
        self.abs_error += other.abs_error
        self.sq_error += other.sq_error
        self.n = total

    def metrics(self) -> dict[str, float]:
        if self.n == 0:
            return {}
        r2 = 1.0 if self.sq_error == 0 else 0.0  # constant labels: scikit-learn's force_finite convention
        if self.label_m2 > 0:
            r2 = 1.0 - self.sq_error / self.label_m2
        return {
            "mae": self.abs_error / self.n,
            "rmse": math.sqrt(self.sq_error / self.n),
            "r2": r2,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "abs_error": self.abs_error,
            "sq_error": self.sq_error,
            "label_mean": self.label_mean,
            "label_m2": self.label_m2,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegressionSums:
        sums = cls(
            int(data["n"]),
            float(data["abs_error"]),
            float(data["sq_error"]),
            float(data["label_mean"]),
            float(data["label_m2"]),
        )
        if sums.n < 0 or min(sums.abs_error, sums.sq_error, sums.label_m2) < 0:
            raise ValueError("regression sums must be non-negative")
        return sums


def roc_auc(scores: FloatArray, positive: BoolArray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); None with one class."""
    import numpy as np

    n_pos = int(positive.sum())
    n_neg = int(positive.size) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # rank (1-based) of the last member of each group of ties
    average = upper - (counts - 1) / 2.0
    rank_sum = float(average[inverse][positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


@dataclass
class ScoreSample:
    """Every (score, label code) pair seen, for ROC AUC once the positive class is known."""

    chunks: list[tuple[FloatArray, IntArray]] = field(default_factory=list)

    def update(self, scores: FloatArray, codes: IntArray) -> None:
        if scores.size:
            self.chunks.append((scores, codes))

    def auc(self, positive_code: int) -> float | None:
        import numpy as np

        if not self.chunks:
            return None
        scores = np.concatenate([s for s, _ in self.chunks])
        codes = np.concatenate([c for _, c in self.chunks])
        return roc_auc(scores, codes == positive_code)

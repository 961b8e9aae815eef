"""What a served model answers (``Prediction``), and the in-process models of the plain formats.

``LinearModel`` is a ``bastion-linear/v1`` document (a linear, logistic or softmax model as plain JSON,
checked strictly); ``SklearnModel`` wraps any fitted estimator with ``predict`` (``predict_proba`` when it
has one), whether it came from joblib or skops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

LINEAR_FORMAT = "bastion-linear/v1"


@dataclass(frozen=True)
class Prediction:
    """Per row: a label (classifiers) or a value (regressors), and class probabilities when known."""

    outputs: list[Any]
    probabilities: np.ndarray | None
    classes: tuple[Any, ...]


class LinearModel:
    def __init__(self, doc: Any) -> None:
        if not isinstance(doc, dict) or doc.get("format") != LINEAR_FORMAT:
            raise ValueError(f"not a {LINEAR_FORMAT} document")
        kind = doc.get("kind")
        if kind not in ("linear", "logistic", "softmax"):
            raise ValueError("kind must be linear, logistic or softmax")
        coef = np.asarray(doc.get("coef"), dtype=np.float64)
        intercept = np.atleast_1d(np.asarray(doc.get("intercept", 0.0), dtype=np.float64))
        if coef.ndim == 1:
            coef = coef[None, :]
        if coef.ndim != 2 or coef.shape[1] == 0 or intercept.shape != (coef.shape[0],):
            raise ValueError("coef must be rows × features and intercept one value per row")
        if not (np.all(np.isfinite(coef)) and np.all(np.isfinite(intercept))):
            raise ValueError("non-finite coefficient")
        classes = tuple(doc.get("classes", ()))
        if kind == "logistic" and (coef.shape[0] != 1 or len(classes) != 2):
            raise ValueError("logistic needs one coefficient row and two classes")
        if kind == "softmax" and len(classes) != coef.shape[0]:
            raise ValueError("softmax needs one coefficient row per class")
        if kind == "linear" and coef.shape[0] != 1:
            raise ValueError("linear needs one coefficient row")
        self.kind, self.coef, self.intercept, self.classes = kind, coef, intercept, classes
        self.n_features = int(coef.shape[1])

    def predict(self, x: np.ndarray) -> Prediction:
        z = x @ self.coef.T + self.intercept
        if self.kind == "linear":
            return Prediction([float(v) for v in z[:, 0]], None, ())
        if self.kind == "logistic":
            p1 = 1.0 / (1.0 + np.exp(-np.clip(z[:, 0], -500, 500)))
            proba = np.stack([1.0 - p1, p1], axis=1)
        else:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            proba = e / e.sum(axis=1, keepdims=True)
        labels = [self.classes[i] for i in proba.argmax(axis=1)]
        return Prediction(labels, proba, self.classes)


class SklearnModel:
    def __init__(self, estimator: Any) -> None:
        if not callable(getattr(estimator, "predict", None)):
            raise ValueError("the object has no predict method")
        self.estimator = estimator
        n = getattr(estimator, "n_features_in_", None)
        if not isinstance(n, int | np.integer):
            raise ValueError("the estimator is not fitted (no n_features_in_)")
        self.n_features = int(n)
        self.classes: tuple[Any, ...] = tuple(_plain(c) for c in getattr(estimator, "classes_", ()))

    def predict(self, x: np.ndarray) -> Prediction:
        if self.classes and callable(getattr(self.estimator, "predict_proba", None)):
            proba = np.asarray(self.estimator.predict_proba(x), dtype=np.float64)
            labels = [self.classes[i] for i in proba.argmax(axis=1)]
            return Prediction(labels, proba, self.classes)
        return Prediction([_plain(v) for v in self.estimator.predict(x)], None, self.classes)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value

"""Train the two models examples/gateway/bastion.yaml serves, and their training references.

    python examples/gateway/make_models.py            # writes beside this file

* ``churn.joblib``: a scikit-learn logistic regression (binary), loaded only after the model scanner
  passes it;
* ``fraud.json``: a three-class softmax exported as ``bastion-linear/v1`` JSON (no pickle at all);
* ``<model>.reference.json``: mean, spread and covariance of each model's training inputs, which the
  gateway's extraction detector compares every identity's queries with.

The data is synthetic (``make_classification``) so the example runs anywhere without a download.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from bastion.gateway.detection import build_reference

HERE = Path(__file__).resolve().parent


def make_models(out: Path = HERE) -> dict[str, np.ndarray]:
    """Write the models and references to ``out``; returns each model's training inputs."""
    out.mkdir(parents=True, exist_ok=True)
    x_churn, y_churn = make_classification(
        n_samples=4000, n_features=4, n_informative=3, n_redundant=1, random_state=7
    )
    joblib.dump(LogisticRegression(max_iter=500).fit(x_churn, y_churn), out / "churn.joblib")

    x_fraud, y_fraud = make_classification(
        n_samples=4000, n_features=4, n_informative=3, n_redundant=1, n_classes=3, random_state=11
    )
    fraud = LogisticRegression(max_iter=500).fit(x_fraud, y_fraud)
    linear = {
        "format": "bastion-linear/v1",
        "kind": "softmax",
        "classes": ["ok", "review", "block"],
        "coef": fraud.coef_.tolist(),
        "intercept": fraud.intercept_.tolist(),
    }
    (out / "fraud.json").write_text(json.dumps(linear, indent=1) + "\n", encoding="utf-8")

    for name, x in (("churn", x_churn), ("fraud", x_fraud)):
        (out / f"{name}.reference.json").write_text(json.dumps(build_reference(x)) + "\n", encoding="utf-8")
    return {"churn": x_churn, "fraud": x_fraud}


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    make_models(target)
    print(f"wrote churn.joblib, fraud.json and their references to {target}")

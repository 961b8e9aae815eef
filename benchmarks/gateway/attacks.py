"""Model extraction and membership inference through the gateway, on 127.0.0.1 only, bounded, self-stopping.

(a) **Extraction.** The benchmark trains a victim (a small MLP, 3 classes, 8 features) and serves it through
the gateway. An attacker with a query budget asks it about inputs chosen three ways: ``natural`` (samples
from the data distribution, the attacker's own data), ``jbda`` (Papernot et al.'s Jacobian-based dataset
augmentation: 50 natural seeds, then steps along the sign of a local surrogate's gradient, doubling each
round) and ``uniform`` (uniform in the training box). A surrogate MLP is trained on whatever the gateway
answered (probability vectors as soft targets, labels as one-hot). Reported: fidelity (agreement with the
victim on 2,000 held-out natural inputs the attacker never sent), rows answered before the graded response
blocked the attacker (403), the row count at the first alert, and the level reached; with detection on and
off, and with output hardening off (raw probabilities) vs rounding to 2 decimals vs noise vs labels only.

(b) **Membership inference.** An overfit model (an unregularised MLP on 500 noisy-labelled records), and an
attacker who holds 500 members and 500 non-members and scores each by the confidence the gateway gives to
its true label (labels only: 1 if the answer is the true label). The threshold is chosen on one half of the
records and the advantage (TPR − FPR) measured on the other half, both ways round.

    .venv/bin/python benchmarks/gateway/attacks.py [--budget 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier, MLPRegressor

from bastion.gateway.app import build_app
from bastion.gateway.config import parse_config
from bastion.gateway.credentials import ApiKeyStore
from bastion.gateway.detection import Level
from bastion.gateway.runtime import Gateway
from bastion.gateway.server import serve_in_thread

BATCH = 50  # rows per request
MI_RECORDS = 500  # members, and as many non-members
RANGE = 50.0  # the gateway's accepted feature range
HARDENING: dict[str, dict[str, Any]] = {
    "raw probabilities": {"mode": "probabilities", "round": None},
    "round 2": {"mode": "probabilities", "round": 2},
    "noise 0.05": {"mode": "probabilities", "round": 4, "noise": 0.05},
    "labels only": {"mode": "labels"},
}
Oracle = Callable[[np.ndarray], np.ndarray | None]


@dataclass
class Served:
    """One gateway run on loopback for one attacker identity."""

    url: str
    token: str
    gateway: Gateway
    classes: int
    answered: int = 0
    blocked: bool = False

    def ask(self, client: httpx.Client, x: np.ndarray) -> np.ndarray | None:
        """Soft targets for ``x`` (probabilities, or one-hot labels), or None once refused."""
        out: list[np.ndarray] = []
        for i in range(0, len(x), BATCH):
            chunk = x[i : i + BATCH]
            r = client.post(
                f"{self.url}/v1/models/victim:predict",
                json={"instances": chunk.tolist()},
                headers={"Authorization": f"Bearer {self.token}"},
            )
            if r.status_code != 200:
                self.blocked = r.status_code == 403 and r.json()["error"] == "blocked"
                if not self.blocked:
                    raise RuntimeError(f"unexpected {r.status_code}: {r.text}")
                break
            self.answered += len(chunk)
            for p in r.json()["predictions"]:
                out.append(np.asarray(p, float) if isinstance(p, list) else np.eye(self.classes)[int(p)])
        if not out:
            return None
        return np.vstack(out)

    def first_alert(self) -> int | None:
        events = [r for r in self.gateway.audit.recent(1000) if r.get("event") == "suspected-extraction"]
        return min((int(e["queries"]) for e in events), default=None)

    def level(self) -> Level:
        return self.gateway.detectors["victim"].level("attacker", "victim")


def gateway_config(root: Path, model: Path, X: np.ndarray, output: dict[str, Any], detect: bool) -> Any:
    huge = {"capacity": 1e9, "per_second": 1e9}
    doc = {
        "server": {"environment": "bench", "max_rows": 512},
        "auth": {"api_keys_file": "keys.json"},
        "identities": {
            "attacker": {
                "bindings": [{"role": "model-consumer", "environment": "bench", "models": ["victim"]}]
            }
        },
        "limits": {"ip": huge, "identity": huge, "identity_model": huge, "daily_rows": 10**9},
        "audit": {"path": "audit.jsonl"},
        "models": [
            {
                "name": "victim",
                "environment": "bench",
                "path": str(model),
                "format": "sklearn-joblib",
                "feature_min": -RANGE,
                "feature_max": RANGE,
                "output": output,
                "detection": {"enabled": detect, "mean": X.mean(0).tolist(), "std": X.std(0).tolist()},
            }
        ],
    }
    return parse_config(json.loads(json.dumps(doc)), base=root)


def run_attack(
    root: Path,
    model: Path,
    X: np.ndarray,
    output: dict[str, Any],
    detect: bool,
    attack: Callable[[Served, httpx.Client], tuple[np.ndarray, np.ndarray]],
) -> tuple[Served, np.ndarray, np.ndarray]:
    """Serve ``model`` under ``output``/``detect`` on 127.0.0.1 and let ``attack`` query it."""
    run = Path(tempfile.mkdtemp(dir=root))  # a fresh key file and audit log for every run
    config = gateway_config(run, model, X, output, detect)
    token = ApiKeyStore(run / "keys.json").create("attacker")[0]
    gw = Gateway(config)  # closed by the app's lifespan when the server stops
    with serve_in_thread(build_app(config, gateway=gw), config) as url, httpx.Client(timeout=30) as c:
        served = Served(url, token, gw, len(gw.models["victim"].impl.classes))
        queries, answers = attack(served, c)
    return served, queries, answers


# -- (a) extraction ------------------------------------------------------------------------------------------


def natural(pool: np.ndarray, budget: int) -> Callable[[Served, httpx.Client], tuple[np.ndarray, np.ndarray]]:
    def attack(served: Served, client: httpx.Client) -> tuple[np.ndarray, np.ndarray]:
        return _fixed(served, client, pool[:budget])

    return attack


def uniform(
    lo: np.ndarray, hi: np.ndarray, budget: int, rng: np.random.Generator
) -> Callable[[Served, httpx.Client], tuple[np.ndarray, np.ndarray]]:
    def attack(served: Served, client: httpx.Client) -> tuple[np.ndarray, np.ndarray]:
        return _fixed(served, client, rng.uniform(lo, hi, (budget, lo.size)))

    return attack


def _fixed(served: Served, client: httpx.Client, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    answers = served.ask(client, x)
    if answers is None:
        return x[:0], np.zeros((0, served.classes))
    return x[: len(answers)], answers


def jbda(
    seeds: np.ndarray, std: np.ndarray, budget: int, step: float = 0.3
) -> Callable[[Served, httpx.Client], tuple[np.ndarray, np.ndarray]]:
    """Jacobian-based dataset augmentation (Papernot et al., 2017) with a logistic-regression local model."""

    def attack(served: Served, client: httpx.Client) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = seeds, served.ask(client, seeds)
        if ys is None:
            return seeds[:0], np.zeros((0, served.classes))
        xs = xs[: len(ys)]
        rnd = 0
        while len(xs) < budget and not served.blocked:
            labels = ys.argmax(1)
            if len(set(labels.tolist())) < 2:
                break
            local = LogisticRegression(max_iter=2000).fit(xs, labels)
            proba = local.predict_proba(xs)
            w = local.coef_ if local.coef_.shape[0] > 1 else np.vstack([-local.coef_, local.coef_])
            col = np.searchsorted(local.classes_, labels)
            p_c = proba[np.arange(len(xs)), col]
            grad = p_c[:, None] * (w[col] - proba @ w)  # d p_c / d x for a multinomial logistic model
            sign = 1.0 if rnd % 2 == 0 else -1.0  # Papernot's periodic step: alternate the direction
            fresh = np.clip(xs + sign * step * std * np.sign(grad), -RANGE, RANGE)
            fresh = fresh[: budget - len(xs)]
            answers = served.ask(client, fresh)
            if answers is None:
                break
            xs, ys = np.vstack([xs, fresh[: len(answers)]]), np.vstack([ys, answers])
            rnd += 1
        return xs, ys

    return attack


def surrogate_fidelity(
    xs: np.ndarray, ys: np.ndarray, victim: Any, test: np.ndarray, seed: int
) -> float | None:
    if len(xs) < 10:
        return None
    surrogate = MLPRegressor(hidden_layer_sizes=(64,), max_iter=600, random_state=seed).fit(xs, ys)
    agree = surrogate.predict(test).argmax(1) == victim.predict(test)
    return float(agree.mean())


def extraction(root: Path, budget: int, seed: int) -> list[dict[str, Any]]:
    X, y = make_classification(
        n_samples=8000, n_features=8, n_informative=6, n_classes=3, class_sep=1.2, random_state=seed
    )
    train, pool, test = X[:3000], X[3000:6000], X[6000:]
    victim = MLPClassifier(hidden_layer_sizes=(32,), max_iter=800, random_state=seed).fit(train, y[:3000])
    model = root / "victim.joblib"
    joblib.dump(victim, model)
    rng = np.random.default_rng(seed)
    seeds = pool[rng.choice(len(pool), 50, replace=False)]
    lo, hi = train.min(0), train.max(0)
    attacks = {
        "natural": lambda: natural(pool, budget),
        "jbda": lambda: jbda(seeds, train.std(0), budget),
        "uniform": lambda: uniform(lo, hi, budget, np.random.default_rng(seed + 1)),
    }
    rows = []
    for name, make in attacks.items():
        for detect in (False, True):
            for label, output in HARDENING.items():
                served, xs, ys = run_attack(root, model, train, output, detect, make())
                rows.append(
                    {
                        "attack": name,
                        "detection": "on" if detect else "off",
                        "output": label,
                        "answered": served.answered,
                        "blocked": served.blocked,
                        "first_alert": served.first_alert(),
                        "level": served.level().name.lower(),
                        "fidelity": surrogate_fidelity(xs, ys, victim, test, seed),
                    }
                )
    return rows


# -- (b) membership inference -------------------------------------------------------------------------------


def _advantage(scores_in: np.ndarray, scores_out: np.ndarray) -> tuple[float, float, float]:
    """Threshold chosen on one half of each set, (advantage, TPR, FPR) measured on the other half; both ways
    round, averaged."""
    h = len(scores_in) // 2
    results = []
    for pick, test in ((slice(None, h), slice(h, None)), (slice(h, None), slice(None, h))):
        a, b = scores_in[pick], scores_out[pick]
        candidates = np.unique(np.concatenate([a, b, [np.inf]]))
        best = candidates[int(np.argmax([(a >= t).mean() - (b >= t).mean() for t in candidates]))]
        tpr, fpr = float((scores_in[test] >= best).mean()), float((scores_out[test] >= best).mean())
        results.append((tpr - fpr, tpr, fpr))
    adv, tpr, fpr = np.mean(results, axis=0)
    return float(adv), float(tpr), float(fpr)


def membership(root: Path, seed: int) -> tuple[list[dict[str, Any]], tuple[float, float]]:
    X, y = make_classification(
        n_samples=2 * MI_RECORDS, n_features=8, n_informative=6, n_classes=2, flip_y=0.15, random_state=seed
    )
    members = X[:MI_RECORDS], y[:MI_RECORDS]
    outsiders = X[MI_RECORDS:], y[MI_RECORDS:]
    model = MLPClassifier(hidden_layer_sizes=(256,), alpha=0.0, max_iter=3000, tol=1e-7, random_state=seed)
    model.fit(*members)
    accuracy = (float(model.score(*members)), float(model.score(*outsiders)))
    path = root / "overfit.joblib"
    joblib.dump(model, path)
    outputs = {"raw probabilities": HARDENING["raw probabilities"], "round 1": {"round": 1}}
    outputs |= {k: v for k, v in HARDENING.items() if k != "raw probabilities"}
    rows = []
    for label, output in outputs.items():

        def attack(served: Served, client: httpx.Client) -> tuple[np.ndarray, np.ndarray]:
            both = np.vstack([members[0], outsiders[0]])
            answers = served.ask(client, both)
            assert answers is not None and len(answers) == len(both), "the membership queries were refused"
            return both, answers

        served, _, answers = run_attack(root, path, X, output, True, attack)
        truth = np.concatenate([members[1], outsiders[1]])
        conf = answers[np.arange(len(truth)), truth]  # one-hot answers give 1/0: "the label was right"
        adv, tpr, fpr = _advantage(conf[:MI_RECORDS], conf[MI_RECORDS:])
        rows.append({"output": label, "advantage": adv, "tpr": tpr, "fpr": fpr, "level": served.level().name})
    return rows, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=2000, help="rows each extraction attacker may send")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("BASTION_GATEWAY_SECRET", "a" * 64)  # keyed noise; a fixed secret for the bench
    logging.getLogger("bastion.gateway").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = extraction(root, args.budget, args.seed)
        mi, (train_acc, test_acc) = membership(root, args.seed)
    print(
        f"(a) extraction of an MLP (8 features, 3 classes), budget {args.budget} rows, {BATCH} rows/request"
    )
    print(
        f"{'attack':<8} {'detect':<6} {'output':<18} {'answered':>8} {'alert at':>8} {'level':<12} fidelity"
    )
    for r in rows:
        fid = "-" if r["fidelity"] is None else f"{r['fidelity']:.3f}"
        alert = "-" if r["first_alert"] is None else str(r["first_alert"])
        answered = f"{r['answered']}{'*' if r['blocked'] else ''}"
        print(
            f"{r['attack']:<8} {r['detection']:<6} {r['output']:<18} {answered:>8} {alert:>8} "
            f"{r['level']:<12} {fid}"
        )
    print("  * = blocked (403) after that many rows; fidelity on 2,000 held-out natural inputs")
    print()
    print(
        f"(b) membership inference, overfit MLP: train accuracy {train_acc:.2f}, test accuracy {test_acc:.2f}"
    )
    print(f"{'output':<18} {'advantage':>9} {'TPR':>6} {'FPR':>6}  detector")
    for r in mi:
        print(
            f"{r['output']:<18} {r['advantage']:>9.3f} {r['tpr']:>6.2f} {r['fpr']:>6.2f}  "
            f"{r['level'].lower()}"
        )
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

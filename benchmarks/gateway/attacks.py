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
The detector has the victim's training reference (``bastion-reference/v1``: mean, std, covariance and the
training rows' 99th-percentile Mahalanobis distance), so the out-of-distribution rate is one of its signals.

(b) **Membership inference.** An overfit model (an unregularised MLP on 500 noisy-labelled records), and an
attacker who holds 500 members and 500 non-members and scores each by the confidence the gateway gives to
its true label (labels only: 1 if the answer is the true label). The threshold is chosen on one half of the
records and the advantage (TPR − FPR) measured on the other half, both ways round.

(c) **Detection.** Rows answered until the first alarm and until the block, and the signals of the first
alarm, for each extraction attack with the training reference and without it (the PRADA, duplicate and
out-of-range signals alone), raw probabilities; and false alarms on benign traffic: ``--benign`` identities
each sending 2,000 fresh rows of the training distribution through the gateway, and 100 × 2,000 such rows
fed to the detector in process. Also in process: how far uniform queries get on a dataset without redundant
features (isotropic within clusters: the harder case for a Mahalanobis test), and the detector's added cost
per one-row request with and without the reference.

(d) **Natural-data extraction against a daily quota.** Queries drawn from the data distribution look like
benign traffic to every signal (they *are* benign traffic, asked by someone else), so the row quota per
identity and day (``limits.daily_rows``) is what bounds them. Reported: the surrogate's fidelity after
``n`` natural rows for a range of ``n``, on raw probabilities and on labels only, in process (the gateway
answers natural rows unchanged, as (c) shows), i.e. the fidelity a quota of ``n`` rows per day lets one
identity reach in a day.

(e) **Equation-solving extraction of a linear model** (Tramèr et al., 2016). A logistic regression (8
features) is served through the gateway, detection on; the attacker sends ``n`` natural rows and solves
logit(p) = w·x + b for (w, b) by least squares over the answers (``n = 9`` is the exact minimum, d + 1;
answers rounded to 0 or 1 are left out of the fit while enough others remain; with labels only, the
"probability" is the one-hot label, which is what a solver gets).
Reported per output hardening: fidelity of the recovered model (agreement on 2,000 held-out rows) and the
relative error of the recovered weights.

    .venv/bin/python benchmarks/gateway/attacks.py [--budget 2000] [--seed 0] [--benign 10]
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
from bastion.gateway.config import Detection, parse_config
from bastion.gateway.credentials import ApiKeyStore
from bastion.gateway.detection import ExtractionDetector, Level, Reference, build_reference
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

    def alarms(self, caller: str = "attacker") -> list[dict[str, Any]]:
        return [
            r
            for r in self.gateway.audit.recent(1000)
            if r.get("event") == "suspected-extraction" and r.get("caller") == caller
        ]

    def first_alert(self) -> int | None:
        return min((int(e["queries"]) for e in self.alarms()), default=None)

    def level(self, caller: str = "attacker") -> Level:
        return self.gateway.detectors["victim"].level(caller, "victim")


BENIGN = tuple(f"user{n}" for n in range(100))


def gateway_config(
    root: Path, model: Path, X: np.ndarray, output: dict[str, Any], detect: bool, reference: bool = True
) -> Any:
    huge = {"capacity": 1e9, "per_second": 1e9}
    consumer = {"bindings": [{"role": "model-consumer", "environment": "bench", "models": ["victim"]}]}
    detection: dict[str, Any] = {"enabled": detect}
    if reference:  # what the training script writes beside the model; mean and std come from it
        (root / "victim.reference.json").write_text(json.dumps(build_reference(X)))
        detection["reference"] = "victim.reference.json"
    else:
        detection |= {"mean": X.mean(0).tolist(), "std": X.std(0).tolist()}
    doc = {
        "server": {"environment": "bench", "max_rows": 512},
        "auth": {"api_keys_file": "keys.json"},
        "identities": {name: consumer for name in ("attacker", *BENIGN)},
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
                "detection": detection,
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
    *,
    reference: bool = True,
    identity: str = "attacker",
) -> tuple[Served, np.ndarray, np.ndarray]:
    """Serve ``model`` under ``output``/``detect`` on 127.0.0.1 and let ``attack`` query it."""
    run = Path(tempfile.mkdtemp(dir=root))  # a fresh key file and audit log for every run
    config = gateway_config(run, model, X, output, detect, reference)
    token = ApiKeyStore(run / "keys.json").create(identity)[0]
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


@dataclass
class Victim:
    """The victim, its training rows, the attacker's natural pool, the test rows, fresh benign rows."""

    model: Path
    estimator: Any
    train: np.ndarray
    pool: np.ndarray
    test: np.ndarray
    benign: np.ndarray


def make_victim(root: Path, seed: int, redundant: int = 2) -> Victim:
    X, y = make_classification(
        n_samples=8000 + 200_000,
        n_features=8,
        n_informative=8 - redundant,
        n_redundant=redundant,
        n_classes=3,
        class_sep=1.2,
        random_state=seed,
    )
    train = X[:3000]
    victim = MLPClassifier(hidden_layer_sizes=(32,), max_iter=800, random_state=seed).fit(train, y[:3000])
    model = root / f"victim{redundant}.joblib"
    joblib.dump(victim, model)
    return Victim(model, victim, train, X[3000:6000], X[6000:8000], X[8000:])


def attacks(v: Victim, budget: int, seed: int) -> dict[str, Callable[[], Any]]:
    rng = np.random.default_rng(seed)
    seeds = v.pool[rng.choice(len(v.pool), 50, replace=False)]
    lo, hi = v.train.min(0), v.train.max(0)
    return {
        "natural": lambda: natural(v.pool, budget),
        "jbda": lambda: jbda(seeds, v.train.std(0), budget),
        "uniform": lambda: uniform(lo, hi, budget, np.random.default_rng(seed + 1)),
    }


def extraction(v: Victim, root: Path, budget: int, seed: int) -> list[dict[str, Any]]:
    model, train, victim, test = v.model, v.train, v.estimator, v.test
    rows = []
    for name, make in attacks(v, budget, seed).items():
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


# -- (c) detection ------------------------------------------------------------------------------------------


def detection(v: Victim, root: Path, budget: int, seed: int, benign: int) -> dict[str, Any]:
    """Rows until the first alarm and the block per attack, with and without the reference; false alarms."""
    raw = HARDENING["raw probabilities"]
    table = []
    for name, make in attacks(v, budget, seed).items():
        for reference in (False, True):
            served, _, _ = run_attack(root, v.model, v.train, raw, True, make(), reference=reference)
            alarms = served.alarms()
            table.append(
                {
                    "attack": name,
                    "reference": reference,
                    "first_alarm": served.first_alert(),
                    "signals": sorted(set(alarms[0]["signals"])) if alarms else [],
                    "ood_alarm": min(
                        (e["queries"] for e in alarms if "ood-queries" in e["signals"]), default=None
                    ),
                    "answered": served.answered,
                    "blocked": served.blocked,
                    "level": served.level().name.lower(),
                }
            )
    return {
        "attacks": table,
        "benign_http": benign_http(v, root, benign),
        "benign_process": benign_in_process(v, 100),
        "isotropic": isotropic_uniform(root, budget, seed),
        "cost": detector_cost(v),
    }


def benign_http(v: Victim, root: Path, identities: int, rows: int = 2000) -> dict[str, Any]:
    """``identities`` benign callers, each 2,000 fresh rows of the training distribution, via the gateway."""
    run = Path(tempfile.mkdtemp(dir=root))
    config = gateway_config(run, v.model, v.train, HARDENING["raw probabilities"], True)
    store = ApiKeyStore(run / "keys.json")
    tokens = {name: store.create(name)[0] for name in BENIGN[:identities]}
    gw = Gateway(config)
    with serve_in_thread(build_app(config, gateway=gw), config) as url, httpx.Client(timeout=30) as c:
        for n, token in enumerate(tokens.values()):
            served = Served(url, token, gw, len(gw.models["victim"].impl.classes))
            served.ask(c, v.benign[n * rows : (n + 1) * rows])  # a blocked caller stops, and is counted
        events = [r for r in gw.audit.recent(1000) if r.get("event") == "suspected-extraction"]
        levels = [gw.detectors["victim"].level(name, "victim") for name in tokens]
    return {
        "identities": identities,
        "rows": identities * rows,
        "alarmed": len({e["caller"] for e in events}),
        "ood": sum("ood-queries" in e["signals"] for e in events),
        "max_level": max(levels).name.lower(),
    }


def benign_in_process(v: Victim, identities: int, rows: int = 2000) -> dict[str, Any]:
    reference = Reference.from_document(build_reference(v.train), v.train.shape[1])
    det = ExtractionDetector(Detection(), reference=reference)
    events = []
    for n in range(identities):
        stream = v.benign[n * rows : (n + 1) * rows]
        for i in range(0, rows, BATCH):
            events += det.observe(f"user{n}", "victim", stream[i : i + BATCH])
    checks = identities * ((rows - Detection().min_queries) // Detection().check_every + 1)
    return {
        "identities": identities,
        "rows": identities * rows,
        "checks": checks,
        "alarmed": len({e.caller for e in events}),
        "ood": sum("ood-queries" in e.signals for e in events),
        "rate": float(np.mean(reference.beyond(v.benign[: identities * rows]))),
    }


def isotropic_uniform(root: Path, budget: int, seed: int) -> dict[str, Any]:
    """Uniform queries against a dataset with no redundant feature, in process (the same detector)."""
    v = make_victim(root, seed, redundant=0)
    reference = Reference.from_document(build_reference(v.train), v.train.shape[1])
    det = ExtractionDetector(Detection(), reference=reference)
    rng = np.random.default_rng(seed + 1)
    x = rng.uniform(v.train.min(0), v.train.max(0), (budget, v.train.shape[1]))
    events = []
    for i in range(0, budget, BATCH):
        events += det.observe("attacker", "victim", x[i : i + BATCH])
        if det.level("attacker", "victim") is Level.BLOCK:
            break
    return {
        "uniform_rate": float(np.mean(reference.beyond(x))),
        "natural_rate": float(np.mean(reference.beyond(v.benign[:20_000]))),
        "ood_alarm": min((e.queries for e in events if "ood-queries" in e.signals), default=None),
        "block": next((e.queries for e in events if e.level is Level.BLOCK), None),
    }


def detector_cost(v: Victim, requests: int = 20_000, repeats: int = 5) -> dict[str, float]:
    """In-process µs per one-row ``observe``, with the baseline mean/std only and with the reference;
    alternated, the fastest of ``repeats`` runs each (the machine is shared)."""
    reference = Reference.from_document(build_reference(v.train), v.train.shape[1])
    rows = [v.benign[i : i + 1] for i in range(requests)]
    best = {"baseline": np.inf, "reference": np.inf}
    for _ in range(repeats):
        for label in best:
            if label == "reference":
                det = ExtractionDetector(Detection(), reference=reference)
            else:
                det = ExtractionDetector(Detection(), mean=v.train.mean(0), std=v.train.std(0))
            started = time.perf_counter()
            for i, row in enumerate(rows):
                det.observe(f"user{i % 4}", "victim", row)
            best[label] = min(best[label], (time.perf_counter() - started) / requests * 1e6)
    started = time.perf_counter()
    for row in rows:
        reference.beyond(row)
    best["beyond"] = (time.perf_counter() - started) / requests * 1e6
    return best


# -- (b) membership inference -------------------------------------------------------------------------------


QUOTAS = (25, 50, 100, 200, 500, 1000, 2000, 3000)


def quota_curve(v: Victim, seed: int) -> list[dict[str, Any]]:
    """Fidelity of natural-data extraction after ``n`` rows, raw probabilities and labels only."""
    rows = []
    for n in QUOTAS:
        xs = v.pool[:n]
        proba = v.estimator.predict_proba(xs)
        labels = np.eye(proba.shape[1])[proba.argmax(1)]
        rows.append(
            {
                "rows": n,
                "raw": surrogate_fidelity(xs, proba, v.estimator, v.test, seed),
                "labels": surrogate_fidelity(xs, labels, v.estimator, v.test, seed),
            }
        )
    return rows


def equation_solving(root: Path, seed: int) -> list[dict[str, Any]]:
    """Least-squares solving of a served logistic regression's weights from its answers, per hardening."""
    X, y = make_classification(n_samples=8000, n_features=8, n_informative=6, random_state=seed)
    lr = LogisticRegression(max_iter=1000).fit(X[:3000], y[:3000])
    path = root / "linear-victim.joblib"
    joblib.dump(lr, path)
    truth = np.append(lr.coef_[0], lr.intercept_[0])
    test = X[6000:8000]
    rows = []
    for label, output in HARDENING.items():
        for n in (9, 50, 200):
            served, xs, ys = run_attack(root, path, X[:3000], output, True, natural(X[3000:6000], n))
            p = np.clip(ys[:, 1], 1e-9, 1 - 1e-9)
            # answers rounded to 0 or 1 say only "far from the boundary": left out while enough remain
            keep = (p > 0.005) & (p < 0.995)
            if keep.sum() <= xs.shape[1]:
                keep[:] = True
            design = np.hstack([xs, np.ones((len(xs), 1))])[keep]
            solved = np.linalg.lstsq(design, np.log(p / (1 - p))[keep], rcond=None)[0]
            agree = (test @ solved[:-1] + solved[-1] > 0).astype(int) == lr.predict(test)
            rows.append(
                {
                    "output": label,
                    "rows": n,
                    "answered": served.answered,
                    "fidelity": float(agree.mean()),
                    "weight_error": float(np.linalg.norm(solved - truth) / np.linalg.norm(truth)),
                    "level": served.level().name,
                }
            )
    return rows


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
    parser.add_argument("--benign", type=int, default=10, help="benign identities through the gateway")
    args = parser.parse_args()
    os.environ.setdefault("BASTION_GATEWAY_SECRET", "a" * 64)  # keyed noise; a fixed secret for the bench
    logging.getLogger("bastion.gateway").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        victim = make_victim(root, args.seed)
        rows = extraction(victim, root, args.budget, args.seed)
        mi, (train_acc, test_acc) = membership(root, args.seed)
        detected = detection(victim, root, args.budget, args.seed, args.benign)
        curve = quota_curve(victim, args.seed)
        solved = equation_solving(root, args.seed)
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
    print()
    print_detection(detected, args.budget)
    print()
    print("(d) natural-data extraction: surrogate fidelity after n rows (what a daily quota of n allows)")
    print(f"{'rows':>6} {'raw probabilities':>18} {'labels only':>12}")
    for r in curve:
        print(f"{r['rows']:>6} {r['raw']:>18.3f} {r['labels']:>12.3f}")
    print()
    print("(e) equation-solving extraction of a logistic regression (8 features), detection on")
    print(f"{'output':<18} {'rows':>5} {'fidelity':>9} {'weight error':>13}  level")
    for r in solved:
        print(
            f"{r['output']:<18} {r['rows']:>5} {r['fidelity']:>9.3f} {r['weight_error']:>13.3f}  "
            f"{r['level'].lower()}"
        )
    print(f"\n{time.perf_counter() - started:.0f} s")


def print_detection(d: dict[str, Any], budget: int) -> None:
    print(f"(c) detection, raw probabilities, budget {budget} rows, {BATCH} rows/request")
    print(
        f"{'attack':<8} {'reference':<9} {'1st alarm':>9} {'ood alarm':>9} {'answered':>8} "
        f"{'level':<12} signals"
    )
    for r in d["attacks"]:
        first = "-" if r["first_alarm"] is None else str(r["first_alarm"])
        ood = "-" if r["ood_alarm"] is None else str(r["ood_alarm"])
        answered = f"{r['answered']}{'*' if r['blocked'] else ''}"
        print(
            f"{r['attack']:<8} {'yes' if r['reference'] else 'no':<9} {first:>9} {ood:>9} {answered:>8} "
            f"{r['level']:<12} {', '.join(r['signals']) or '-'}"
        )
    print(
        "  rows answered at the first alarm / the first ood-queries alarm; * = blocked (403) after that many"
    )
    h, p = d["benign_http"], d["benign_process"]
    print(
        f"benign through the gateway: {h['identities']} identities × 2,000 fresh training-distribution rows "
        f"({h['rows']} rows): {h['alarmed']} identities alarmed, {h['ood']} ood-queries alarms, "
        f"highest level {h['max_level']}"
    )
    print(
        f"benign in process: {p['identities']} × 2,000 rows ({p['checks']} checks): "
        f"{p['alarmed']} identities alarmed, {p['ood']} ood-queries alarms; "
        f"rows beyond the threshold: {p['rate']:.4f} (training: 0.01)"
    )
    iso = d["isotropic"]
    print(
        f"no redundant features (in process): uniform rows beyond the threshold {iso['uniform_rate']:.3f}, "
        f"natural {iso['natural_rate']:.4f}; first ood-queries alarm at {iso['ood_alarm']}, "
        f"block at {iso['block']}"
    )
    c = d["cost"]
    print(
        f"detector cost per one-row request, in process (fastest of 5 × 20,000): {c['baseline']:.1f} µs "
        f"without the reference, {c['reference']:.1f} µs with it (+{c['reference'] - c['baseline']:.1f} µs); "
        f"Reference.beyond alone {c['beyond']:.1f} µs"
    )


if __name__ == "__main__":
    main()

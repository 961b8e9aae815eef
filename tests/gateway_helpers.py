"""Builders for gateway tests: a real scikit-learn model, a configuration, API keys, an ASGI client."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import uvicorn
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from bastion.gateway.app import GatewayApp, build_app
from bastion.gateway.config import GatewayConfig, parse_config
from bastion.gateway.credentials import ApiKeyStore

FEATURES = 6


def free_port() -> int:
    """A loopback port nothing listens on (at the time of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_on_loopback(app: Any) -> Iterator[str]:
    """Run an ASGI app on a real uvicorn server in a thread, on a free loopback port; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "test server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Setup:
    root: Path
    config: GatewayConfig
    keys: dict[str, str]
    X: np.ndarray

    @property
    def audit_path(self) -> Path:
        return self.config.audit.path

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]

    def access(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["kind"] == "access"]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["kind"] == "security" and r["event"] == name]


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return make_classification(n_samples=2000, n_features=FEATURES, n_informative=4, random_state=seed)


def write_models(root: Path) -> np.ndarray:
    X, y = make_data()
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), root / "clf.joblib")
    linear = {
        "format": "bastion-linear/v1",
        "kind": "softmax",
        "classes": ["a", "b", "c"],
        "coef": [[1.0] * FEATURES, [0.0] * FEATURES, [-1.0] * FEATURES],
        "intercept": [0.0, 0.1, 0.0],
    }
    (root / "lin.json").write_text(json.dumps(linear))
    return X


def base_config(root: Path, X: np.ndarray, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "server": {"environment": "prod", "max_rows": 64},
        "auth": {"api_keys_file": "keys.json"},
        "identities": {
            "alice": {"bindings": [{"role": "model-consumer", "environment": "prod", "models": ["clf"]}]},
            "bob": {
                "bindings": [{"role": "data-scientist", "environment": "prod", "models": ["clf", "lin"]}]
            },
            "carol": {"bindings": [{"role": "security-auditor", "environment": "prod"}]},
            "dave": {"bindings": [{"role": "ml-engineer", "environment": "staging"}]},
            "mallory": {"bindings": [{"role": "model-consumer", "environment": "prod", "models": ["clf"]}]},
        },
        "limits": {
            "identity": {"capacity": 400, "per_second": 1},
            "identity_model": {"capacity": 400, "per_second": 1},
            "failed_auth": {"capacity": 5, "per_second": 0.01},
        },
        "audit": {"path": "audit.jsonl"},
        "models": [
            {
                "name": "clf",
                "environment": "prod",
                "path": "clf.joblib",
                "format": "sklearn-joblib",
                "feature_min": -50,
                "feature_max": 50,
                "detection": {"mean": X.mean(0).tolist(), "std": X.std(0).tolist()},
            },
            {
                "name": "lin",
                "environment": "prod",
                "path": "lin.json",
                "format": "linear-json",
                "output": {"mode": "top-k", "top_k": 2, "round": 2},
            },
        ],
    }
    for key, value in overrides.items():
        doc[key] = value
    return doc


def make_setup(root: Path, **overrides: Any) -> Setup:
    X = write_models(root)
    doc = base_config(root, X, **overrides)
    config = parse_config(json.loads(json.dumps(doc)), base=root)
    store = ApiKeyStore(root / "keys.json")
    keys = {name: store.create(name)[0] for name in ("alice", "bob", "carol", "dave", "mallory")}
    return Setup(root, config, keys, X)


def client(app: GatewayApp, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


__all__ = ["FEATURES", "Setup", "bearer", "build_app", "client", "make_setup"]

"""Throughput and latency on loopback: the Bastion gateway (every protection on) vs a bare Starlette endpoint
serving the same scikit-learn model on uvicorn. Each server runs in its own process; the load generator is an
async httpx client with a fixed concurrency and a fixed number of requests (bounded load, 127.0.0.1 only).

    .venv/bin/python benchmarks/gateway/throughput.py [--requests 3000] [--concurrency 16] [--rows 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_workdir(work: Path) -> tuple[str, np.ndarray]:
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    from bastion.gateway.credentials import ApiKeyStore

    X, y = make_classification(n_samples=20_000, n_features=8, n_informative=5, random_state=0)
    joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), work / "model.joblib")
    big = {"capacity": 1e9, "per_second": 1e9}
    config = {
        "server": {"environment": "prod", "max_rows": 512},
        "auth": {"api_keys_file": "keys.json"},
        "identities": {
            "bench": {"bindings": [{"role": "model-consumer", "environment": "prod", "models": ["m"]}]}
        },
        "limits": {
            "ip": big,
            "identity": big,
            "identity_model": big,
            "daily_rows": 10**12,
            "concurrent": 1024,
        },
        "audit": {"path": "audit.jsonl"},
        "models": [
            {
                "name": "m",
                "environment": "prod",
                "path": "model.joblib",
                "format": "sklearn-joblib",
                "feature_min": -100,
                "feature_max": 100,
                "detection": {"mean": X.mean(0).tolist(), "std": X.std(0).tolist(), "window": 2000},
            }
        ],
    }
    (work / "bastion.yaml").write_text(json.dumps(config))
    token, _ = ApiKeyStore(work / "keys.json").create("bench")
    return token, X


def serve(mode: str, work: Path, port: int) -> None:
    import uvicorn

    if mode == "gateway":
        from bastion.gateway.app import build_app
        from bastion.gateway.config import load_config
        from bastion.gateway.server import uvicorn_config

        config = load_config(work / "bastion.yaml")
        uvicorn.Server(uvicorn_config(build_app(config), config, port=port)).run()
        return
    import joblib
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    model = joblib.load(work / "model.joblib")  # our own file, made above: the baseline does no checks

    async def predict(request: Request) -> JSONResponse:
        body = await request.json()
        proba = model.predict_proba(np.asarray(body["instances"], dtype=np.float64))
        return JSONResponse({"predictions": np.round(proba, 4).tolist()})

    app = Starlette(routes=[Route("/v1/models/m:predict", predict, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def load(
    url: str, token: str, X: np.ndarray, requests: int, concurrency: int, rows: int
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        headers = {"Authorization": f"Bearer {token}"}

        async def worker() -> None:
            for i in counter:
                start = (i * rows) % (len(X) - rows)
                body = {"instances": X[start : start + rows].tolist()}
                t0 = time.perf_counter()
                r = await client.post("/v1/models/m:predict", json=body, headers=headers)
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        for w in range(
            min(50, requests)
        ):  # warm-up on distinct rows (repeats would rightly look like probing)
            rows_w = X[len(X) - (w + 1) * rows : len(X) - w * rows].tolist()
            await client.post("/v1/models/m:predict", json={"instances": rows_w}, headers=headers)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000
    return {
        "rps": requests / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "statuses": statuses,
    }


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=["bare", "gateway"])
    parser.add_argument("--work", type=Path)
    parser.add_argument("--port", type=int)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rows", type=int, default=1)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.work, args.port)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        token, X = make_workdir(work)
        results = {}
        for mode in ("bare", "gateway"):
            port = _free_port()
            env = {**os.environ, "BASTION_GATEWAY_SECRET": "b" * 64}
            proc = subprocess.Popen(
                [sys.executable, __file__, "--serve", mode, "--work", str(work), "--port", str(port)],
                env=env,
                cwd=ROOT,
            )
            try:
                _wait(port, proc)
                results[mode] = asyncio.run(
                    load(f"http://127.0.0.1:{port}", token, X, args.requests, args.concurrency, args.rows)
                )
            finally:
                proc.terminate()
                proc.wait(timeout=15)
    print(
        f"{args.requests} requests, concurrency {args.concurrency}, {args.rows} row(s) per request, loopback"
    )
    print(f"{'server':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for mode, r in results.items():
        print(f"{mode:<10} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}  {r['statuses']}")
    bare, gw = results["bare"], results["gateway"]
    print(
        f"gateway/bare throughput: {gw['rps'] / bare['rps']:.2f}x; "
        f"added p50: {gw['p50_ms'] - bare['p50_ms']:+.2f} ms"
    )


if __name__ == "__main__":
    main()

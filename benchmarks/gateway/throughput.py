"""Throughput and latency on loopback: the Bastion gateway (every protection on) vs the same scikit-learn
model behind a bare FastAPI endpoint (what the issue names) and a bare Starlette one (less framework: a
stricter baseline), all on uvicorn with h11. Each server runs in its own process.

The gateway runs twice: as configured by default, where concurrent requests that reach the model in the
same turn of the event loop share one model call (``batch_rows``, see ``bastion.gateway.batching``), and
with ``batch_rows: 0`` (one model call per request, as the bare endpoints make), which isolates what the
protections themselves cost; ``gateway-redis`` is the set-up for several replicas: limits, model states and
detection levels in Redis (``$BASTION_BENCH_REDIS``, default redis://127.0.0.1:6379/0).

The load generator is ``wrk`` (Debian's package; one thread, a Lua script that cycles through distinct
rows, since repeated rows would rightly look like probing to the gateway) or, without it, an async httpx
client. Runs alternate the servers and are repeated; the table gives medians over runs, and the ratios are
taken within each run before the median.

Besides requests/second and latency, each server's **CPU time per request** is read from ``/proc`` (user +
system, all threads): on a shared or loaded machine it is the steadier measure of what a request costs,
and bare / gateway CPU per request is the throughput ratio that a dedicated core would show.

    .venv/bin/python benchmarks/gateway/throughput.py [--runs 5] [--seconds 10] [--concurrency 16] [--rows 1]
        [--client wrk|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Request as FastAPIRequest  # at module level: FastAPI reads the annotation by name

ROOT = Path(__file__).resolve().parents[2]
PATH = "/v1/models/m:predict"


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
    config["models"][0]["batch_rows"] = 0
    (work / "bastion-unbatched.yaml").write_text(json.dumps(config))
    # several replicas' set-up: limits, model states and detection levels in Redis (batching on)
    config["models"][0]["batch_rows"] = 256
    config["models"][0]["detection"]["shared"] = True
    prefix = f"bench{os.getpid()}:"
    config["limits"] |= {"backend": "redis", "redis_url": REDIS_URL, "redis_prefix": prefix}
    (work / "bastion-redis.yaml").write_text(json.dumps(config))
    token, _ = ApiKeyStore(work / "keys.json").create("bench")
    return token, X


MODES = ("fastapi", "starlette", "gateway", "gateway-unbatched", "gateway-redis")
CONFIGS = {
    "gateway": "bastion.yaml",
    "gateway-unbatched": "bastion-unbatched.yaml",
    "gateway-redis": "bastion-redis.yaml",
}
REDIS_URL = os.environ.get("BASTION_BENCH_REDIS", "redis://127.0.0.1:6379/0")
BASELINES = ("fastapi", "starlette")


def serve(mode: str, work: Path, port: int) -> None:
    import uvicorn

    if mode.startswith("gateway"):
        from bastion.gateway.app import build_app
        from bastion.gateway.config import load_config
        from bastion.gateway.server import uvicorn_config

        config = load_config(work / CONFIGS[mode])
        uvicorn.Server(uvicorn_config(build_app(config), config, port=port)).run()
        return
    import joblib

    model = joblib.load(work / "model.joblib")  # our own file, made above: the baselines do no checks

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        proba = model.predict_proba(np.asarray(body["instances"], dtype=np.float64))
        return {"predictions": np.round(proba, 4).tolist()}

    app: Any
    if mode == "fastapi":
        from fastapi import FastAPI

        app = FastAPI()

        @app.post(PATH)
        async def predict_fastapi(request: FastAPIRequest) -> dict[str, Any]:
            return answer(await request.json())

    else:
        from starlette.applications import Starlette
        from starlette.requests import Request as StarletteRequest
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def predict(request: StarletteRequest) -> JSONResponse:
            return JSONResponse(answer(await request.json()))

        app = Starlette(routes=[Route(PATH, predict, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, http="h11")


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


_WRK_SCRIPT = """
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
local i = %(start)d
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "%(path)s", nil, bodies[i])
end
"""


def _ms(text: str) -> float:
    """wrk's latency text (``812.00us``, ``1.20ms``, ``1.02s``, ``1.50m``) in milliseconds; NaN if odd."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        return math.nan
    return float(match.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[match.group(2)]


def load_wrk(
    url: str, token: str, bodies: Path, seconds: float, concurrency: int, start: int, work: Path
) -> dict[str, Any]:
    script = work / f"load-{start}.lua"
    script.write_text(_WRK_SCRIPT % {"bodies": bodies, "start": start, "token": token, "path": PATH})
    command = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        # the percentile lines only: "85.50%" in the thread statistics must not read as the median
        "p50_ms": _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "failed": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


async def load_httpx(
    url: str, token: str, X: np.ndarray, seconds: float, concurrency: int, rows: int, start: int
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    failed = 0
    counter = iter(range(start, 10**9))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        headers = {"Authorization": f"Bearer {token}"}

        async def worker() -> None:
            nonlocal failed
            for i in counter:
                if time.perf_counter() > stop:
                    return
                first = (i * rows) % (len(X) - rows)
                t0 = time.perf_counter()
                r = await client.post(
                    PATH, json={"instances": X[first : first + rows].tolist()}, headers=headers
                )
                latencies.append(time.perf_counter() - t0)
                failed += r.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "failed": failed,
        "socket_errors": "",
    }


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def one_run(
    mode: str, args: argparse.Namespace, work: Path, token: str, X: np.ndarray, bodies: Path
) -> dict[str, Any]:
    port = _free_port()
    env = {**os.environ, "BASTION_GATEWAY_SECRET": "b" * 64, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, "--work", str(work), "--port", str(port)],
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(port, proc)
        # warm-up on rows the measured run does not send first (distinct rows: repeats look like probing)
        warm = min(2.0, args.seconds / 2)
        if args.client == "wrk":
            load_wrk(url, token, bodies, warm, args.concurrency, len(X) // 2, work)
        else:
            asyncio.run(load_httpx(url, token, X, warm, args.concurrency, args.rows, len(X) // 2))
        cpu0 = _cpu_seconds(proc.pid)
        if args.client == "wrk":
            result = load_wrk(url, token, bodies, args.seconds, args.concurrency, 0, work)
        else:
            result = asyncio.run(load_httpx(url, token, X, args.seconds, args.concurrency, args.rows, 0))
        cpu1 = _cpu_seconds(proc.pid)
        per = 1e6 / max(result["requests"], 1)
        result["user_us"], result["sys_us"] = (cpu1[0] - cpu0[0]) * per, (cpu1[1] - cpu0[1]) * per
        result["cpu_us"] = result["user_us"] + result["sys_us"]
        return result
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _forget_redis_keys(prefix: str) -> None:
    """Delete what the Redis-backed runs left (detection levels and model states have no expiry)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=MODES)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--port", type=int)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument(
        "--client", choices=["wrk", "httpx"], default="wrk" if shutil.which("wrk") else "httpx"
    )
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {MODES}")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.work, args.port)
        return
    modes = [m for m in MODES if m in args.modes.split(",")]
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        token, X = make_workdir(work)
        bodies = work / "bodies.jsonl"
        with bodies.open("w") as handle:
            for i in range(0, len(X) - args.rows, args.rows):
                handle.write(json.dumps({"instances": X[i : i + args.rows].tolist()}) + "\n")
        try:
            for _ in range(args.runs):
                for mode in modes:
                    runs[mode].append(one_run(mode, args, work, token, X, bodies))
        finally:
            if "gateway-redis" in modes:
                _forget_redis_keys(f"bench{os.getpid()}:")
    print(
        f"{args.client}, {args.runs} runs of {args.seconds:g} s, concurrency {args.concurrency}, "
        f"{args.rows} row(s) per request, loopback; medians over runs"
    )
    print(f"{'server':<18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req (user+sys)':>22}  failed")
    for mode, results in runs.items():
        keys = ("rps", "p50_ms", "p99_ms", "cpu_us", "user_us", "sys_us")
        med = {k: statistics.median(r[k] for r in results) for k in keys}
        failed = sum(r["failed"] for r in results)
        cpu = f"{med['cpu_us']:.0f} ({med['user_us']:.0f}+{med['sys_us']:.0f})"
        print(
            f"{mode:<18} {med['rps']:>8.0f} {med['p50_ms']:>8.2f} {med['p99_ms']:>8.2f} {cpu:>22}  {failed}"
        )
    print()
    print(f"{'gateway vs':<30} {'req/s ratio':>12} {'CPU ratio':>10} {'added p50':>10}  req/s ratio per run")
    for gateway in [m for m in CONFIGS if m in runs]:
        for baseline in [m for m in BASELINES if m in runs]:
            pairs = list(zip(runs[baseline], runs[gateway], strict=True))
            rps = statistics.median(g["rps"] / b["rps"] for b, g in pairs)
            cpu = statistics.median(b["cpu_us"] / g["cpu_us"] for b, g in pairs)
            p50 = statistics.median(g["p50_ms"] - b["p50_ms"] for b, g in pairs)
            per_run = ", ".join(f"{g['rps'] / b['rps']:.2f}" for b, g in pairs)
            label = f"{gateway} / {baseline}"
            print(f"{label:<30} {rps:>11.2f}x {cpu:>9.2f}x {p50:>+8.2f}ms  {per_run}")
    print("(CPU ratio: bare / gateway CPU per request, the req/s ratio a dedicated core would show)")


if __name__ == "__main__":
    main()

# mypy: disable-error-code="import-untyped"
# (scikit-learn and joblib ship no type stubs; this silences only the imports)
"""The demo's gateway stage: serve a model Bastion trains itself through the gateway on 127.0.0.1, then show
an authorised prediction, concurrent ones sharing model calls, the refusals (401, 403, 429), an extraction
attack detected and answered step by step, a second one with uniform random queries caught against the
training reference, and the audit chain verified."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _config(root: Path) -> dict[str, Any]:
    consumer = [{"role": "model-consumer", "environment": "prod", "models": ["churn"]}]
    return {
        "server": {"environment": "prod", "max_rows": 100},
        "auth": {"api_keys_file": "keys.json"},
        "identities": {
            "web-app": {"bindings": consumer},
            "partner": {"bindings": consumer},
            "scraper": {"bindings": consumer},
            "auditor": {"bindings": [{"role": "security-auditor", "environment": "prod"}]},
            "intern": {"bindings": [{"role": "data-scientist", "environment": "staging"}]},
        },
        "limits": {
            "identity": {"capacity": 1500, "per_second": 5},
            "identity_model": {"capacity": 1500, "per_second": 5},
        },
        "audit": {"path": "audit.jsonl"},
        "models": [
            {
                "name": "churn",
                "environment": "prod",
                "path": "churn.joblib",
                "format": "sklearn-joblib",
                "feature_min": -100,
                "feature_max": 100,
                "output": {"round": 3},
                "detection": {"reference": "churn.reference.json"},  # the training inputs' statistics
            }
        ],
    }


async def _concurrent(url: str, headers: dict[str, str], rows: Any) -> list[int]:
    """The statuses of one single-row request per row, all sent at once on their own connections."""
    import httpx

    limits = httpx.Limits(max_connections=len(rows))
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        replies = await asyncio.gather(
            *(
                client.post("/v1/models/churn:predict", json={"instances": [r.tolist()]}, headers=headers)
                for r in rows
            )
        )
    return [r.status_code for r in replies]


def run_gateway_stage(console: Console, workdir: Path) -> bool:
    """True when every request was answered as the security design says it must be."""
    import httpx
    import joblib
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    from bastion.gateway.app import build_app
    from bastion.gateway.audit import verify_chain
    from bastion.gateway.config import parse_config
    from bastion.gateway.credentials import ApiKeyStore
    from bastion.gateway.detection import build_reference
    from bastion.gateway.server import serve_in_thread

    root = workdir / "gateway"
    root.mkdir(parents=True, exist_ok=True)
    for stale in ("audit.jsonl", "keys.json"):
        (root / stale).unlink(missing_ok=True)
    X, y = make_classification(n_samples=3000, n_features=8, n_informative=5, random_state=7)
    joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), root / "churn.joblib")
    (root / "churn.reference.json").write_text(json.dumps(build_reference(X)))
    doc = _config(root)
    (root / "bastion.yaml").write_text(json.dumps(doc, indent=2))
    config = parse_config(doc, base=root)
    store = ApiKeyStore(config.auth.api_keys_file or root / "keys.json")
    keys = {name: store.create(name)[0] for name in ("web-app", "partner", "scraper", "auditor", "intern")}
    _, revoked = store.create("web-app")
    store.revoke(revoked.id)

    table = Table(title="Requests through the Bastion gateway (127.0.0.1)")
    for column in ("who", "request", "status", "answer", "expected"):
        table.add_column(column)
    checks: list[bool] = []

    def show(who: str, what: str, r: httpx.Response, expected: int, answer: str | None = None) -> None:
        body = r.json()
        text = answer if answer is not None else str(body.get("predictions", body.get("error", body)))[:60]
        colour = "green" if r.status_code < 400 else "red"
        table.add_row(who, what, f"[{colour}]{r.status_code}[/{colour}]", text, str(expected))
        checks.append(r.status_code == expected)

    def auth(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[name]}"}

    rng = np.random.default_rng(11)
    app = build_app(config)
    with serve_in_thread(app, config) as url, httpx.Client(base_url=url, timeout=10) as http:
        row = {"instances": X[:1].tolist()}
        show(
            "web-app",
            "predict 1 row",
            http.post("/v1/models/churn:predict", json=row, headers=auth("web-app")),
            200,
        )
        batcher = app.gw.models["churn"].batcher
        calls = batcher.calls if batcher else 0
        together = asyncio.run(_concurrent(url, auth("partner"), X[3000 - 16 :]))
        calls = (batcher.calls if batcher else len(together)) - calls
        table.add_row(
            "partner",
            f"{len(together)} requests at once",
            "[green]200[/green]" if set(together) == {200} else f"[red]{sorted(set(together))}[/red]",
            f"{calls} model call(s): micro-batched",
            "200",
        )
        checks.append(set(together) == {200})
        show("anonymous", "predict, no key", http.post("/v1/models/churn:predict", json=row), 401)
        show(
            "web-app",
            "revoked key",
            http.get("/v1/models", headers={"Authorization": "Bearer bst_" + revoked.id + "_" + "x" * 43}),
            401,
        )
        show(
            "intern",
            "predict (staging grant only)",
            http.post("/v1/models/churn:predict", json=row, headers=auth("intern")),
            403,
        )
        nan = http.post(
            "/v1/models/churn:predict",
            content=b'{"instances": [[NaN,0,0,0,0,0,0,0]]}',
            headers={**auth("web-app"), "Content-Type": "application/json"},
        )
        show("web-app", "NaN in the body", nan, 400)
        # abuse: the partner floods the model with natural-looking rows until its row budget runs out
        flood = None
        for i in range(30):
            flood = http.post(
                "/v1/models/churn:predict",
                json={"instances": X[100 + i * 100 : 200 + i * 100].tolist()},
                headers=auth("partner"),
            )
            if flood.status_code == 429:
                break
        assert flood is not None
        show(
            "partner",
            f"flood: request {i + 1} of 100 rows",
            flood,
            429,
            f"Retry-After: {flood.headers.get('retry-after')} s",
        )
        # extraction: Jacobian-style synthetic queries around a few seeds
        current = X[rng.integers(0, len(X), 10)]
        levels: list[str] = []
        last = None
        sent = 0
        for _ in range(80):
            sent += len(current)
            current = current + 0.05 * np.sign(rng.normal(size=current.shape))
            last = http.post(
                "/v1/models/churn:predict", json={"instances": current.tolist()}, headers=auth("web-app")
            )
            if (
                last.status_code == 200
                and isinstance(last.json()["predictions"][0], int)
                and "labels" not in levels
            ):
                levels.append("labels")
            if last.status_code != 200:
                break
        assert last is not None
        show(
            "web-app",
            f"extraction: {sent} synthetic queries",
            last,
            403,
            f"{last.json().get('error')} after answers went labels-only",
        )
        # extraction with uniform random queries inside the features' range: nothing like real data
        low, high = X.min(0), X.max(0)
        sent = 0
        for _ in range(40):
            batch = rng.uniform(low, high, size=(50, X.shape[1]))
            sent += len(batch)
            last = http.post(
                "/v1/models/churn:predict", json={"instances": batch.tolist()}, headers=auth("scraper")
            )
            if last.status_code != 200:
                break
        show(
            "scraper", f"extraction: {sent} uniform random queries", last, 403, str(last.json().get("error"))
        )
        audit = http.get("/admin/audit?limit=1000", headers=auth("auditor"))
        show("auditor", "GET /admin/audit", audit, 200, f"{len(audit.json().get('records', []))} records")
    console.print(table)

    records = [json.loads(line) for line in config.audit.path.read_text().splitlines()]
    events = [r for r in records if r.get("event") == "suspected-extraction"]
    for e in events:
        console.print(
            f"  security event: suspected extraction by {e['caller']} → {e['level']} "
            f"(signals {', '.join(e['signals'])}, W'={e['statistic']}, after {e['queries']} queries)"
        )
    report = verify_chain(config.audit.path)
    console.print(
        f"Audit chain {config.audit.path.name}: {report.records} records, "
        f"{'intact' if report.ok else 'BROKEN'} (bastion audit verify {config.audit.path})"
    )
    by_caller: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_caller.setdefault(e["caller"], []).append(e)
    ok = (
        all(checks)
        and report.ok
        and [e["level"] for e in by_caller.get("web-app", [])]
        == ["alert", "labels_only", "throttle", "block"]
        and any("ood-queries" in e["signals"] for e in by_caller.get("scraper", []))
    )
    ok = ok and "labels" in levels and not any(k in config.audit.path.read_text() for k in keys.values())
    if ok:
        console.print(
            "[green]Gateway stage behaved as expected: refusals, graded response, intact audit chain.[/green]"
        )
    else:
        console.print("[bold red]gateway stage check failed[/bold red]")
    return ok

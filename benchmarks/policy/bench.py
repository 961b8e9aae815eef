"""Policy benchmarks: a verdict over a 2,000-component SBOM, and admission webhook latency.

1. Verdict: a synthetic Python environment with N distributions is attested (CycloneDX BOM, signed),
   verified once, then ``decide`` (projection + Rego evaluation of signed-by-trusted-key,
   approved-packages, no-known-vulnerabilities against a 500-advisory OSV snapshot) is timed with
   the policy compiled once. Target: under 300 ms.
2. Admission: the HTTPS webhook answers AdmissionReview v1 requests (a Pod with a pinned image and
   an annotated model, both looked up as signed verdicts in the SQLite evidence store) over one
   keep-alive-free TLS connection per request, as the API server does; p50 / p99 in ms.

    .venv/bin/python benchmarks/policy/bench.py [--components 2000] [--runs 30] [--requests 300]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import ssl
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integration.test_admission_webhook import _pod, _review, _self_signed
from tests.unit.evidence_helpers import make_key
from tests.unit.policy_helpers import make_venv

from bastion.evidence.attest import HashOptions, attest
from bastion.evidence.keys import Keyring
from bastion.evidence.store import EvidenceStore
from bastion.evidence.targets import parse_target
from bastion.evidence.verify import verify
from bastion.policy import Environment, attest_verdict, compile_policy, decide
from bastion.policy.admission import AdmissionConfig, StoreVerdicts
from bastion.policy.projection import load_advisories
from bastion.policy.webhook import make_server
from bastion.scanners.workspace.advisories import import_osv


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_verdict(tmp: Path, components: int, runs: int) -> dict[str, float]:
    ring = Keyring(tmp / "home")
    _, signer = make_key(ring, "bench")
    venv = make_venv(tmp / "venv", {f"pkg{i:05d}": f"1.{i % 50}.0" for i in range(components)})
    target = parse_target(f"env:{venv}")
    bundles = [a.bundle for a in attest(target, signer, None, HashOptions())]
    osv = tmp / "osv"
    osv.mkdir()
    for i in range(500):
        record = {
            "id": f"GHSA-bench-{i:04d}",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": f"pkg{i * 4:05d}"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0.0"}]}],
                }
            ],
        }
        (osv / f"{i}.json").write_text(json.dumps(record))
    import_osv([osv], tmp / "snapshot.json")
    advisories = load_advisories(tmp / "snapshot.json")
    approved = "\n".join(f"        - pkg{i:05d}" for i in range(components))
    policy = tmp / "policy.yaml"
    policy.write_text(
        "apiVersion: bastion/v1\nkind: Policy\nname: bench\nrules:\n  - id: signed-by-trusted-key\n"
        f"  - id: approved-packages\n    params:\n      approved:\n{approved}\n"
        "  - id: no-known-vulnerabilities\n"
    )
    started = time.perf_counter()
    compiled = compile_policy(policy)
    compile_s = time.perf_counter() - started
    started = time.perf_counter()
    result = verify(target, bundles, ring)
    verify_s = time.perf_counter() - started
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        verdict = decide(compiled, result, Environment.PROD, target=target, advisories=advisories)
        times.append(time.perf_counter() - started)
    assert verdict.outcome.value == "pass", verdict.to_dict()
    return {
        "components": components,
        "compile_ms": compile_s * 1000,
        "verify_ms": verify_s * 1000,
        "decide_p50_ms": statistics.median(times) * 1000,
        "decide_max_ms": max(times) * 1000,
    }


def bench_admission(tmp: Path, requests: int) -> dict[str, float]:
    ring = Keyring(tmp / "home2")
    _, signer = make_key(ring, "bench")
    store = EvidenceStore(f"sqlite:///{tmp / 'home2' / 'evidence.db'}")
    model = tmp / "model"
    model.mkdir()
    (model / "README.md").write_text("---\nlicense: mit\n---\n")
    policy = tmp / "p.yaml"
    policy.write_text("apiVersion: bastion/v1\nkind: Policy\nname: b\nrules:\n  - id: digests-match\n")
    target = parse_target(f"dir:{model}")
    result = verify(target, [a.bundle for a in attest(target, signer, None, HashOptions())], ring)
    verdict = decide(compile_policy(policy), result, Environment.PROD, target=target)
    image = "sha256:" + "ab" * 32
    attest_verdict(verdict, signer, store)
    attest_verdict(replace(verdict, subject_digest=image, subject_name="app"), signer, store)
    cert, key = _self_signed(tmp)
    server = make_server("127.0.0.1", 0, cert, key, AdmissionConfig(), StoreVerdicts(store, ring))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    context = ssl.create_default_context(cafile=str(cert))
    body = _review(_pod("registry.example/app@" + image, verdict.subject_digest))
    times = []
    try:
        for _ in range(requests):
            started = time.perf_counter()
            conn = http.client.HTTPSConnection("localhost", server.server_address[1], context=context)
            conn.request("POST", "/validate", body=body, headers={"Content-Type": "application/json"})
            answer = json.loads(conn.getresponse().read())
            conn.close()
            times.append(time.perf_counter() - started)
            assert answer["response"]["allowed"] is True, answer
    finally:
        server.shutdown()
        server.server_close()
        store.close()
    return {
        "requests": requests,
        "p50_ms": percentile(times, 0.50) * 1000,
        "p99_ms": percentile(times, 0.99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--components", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        verdict = bench_verdict(Path(tmp), args.components, args.runs)
        admission = bench_admission(Path(tmp), args.requests)
    print(
        json.dumps(
            {
                "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "verdict": verdict,
                "admission": admission,
            },
            indent=2,
        )
    )
    ok = verdict["decide_p50_ms"] < 300
    print(
        f"verdict over {args.components} components: p50 {verdict['decide_p50_ms']:.1f} ms "
        f"({'under' if ok else 'OVER'} the 300 ms target); admission p50 {admission['p50_ms']:.1f} ms, "
        f"p99 {admission['p99_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()

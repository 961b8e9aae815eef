"""Score Bastion and the anchors on a generated project: precision / recall per category, and MB/s.

    python benchmarks/workspace/bench.py CORPUS [--tools bastion,detect-secrets,gitleaks,bandit]

CORPUS is what generate.py wrote (CORPUS/project, CORPUS/truth.json). Anchor tools are looked up in
benchmarks/workspace/.venvs/<tool>/bin (run.sh creates them); a missing tool is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
Key = tuple[str, int | None, str]  # file, line, category


def _bin(tool: str, exe: str) -> Path | None:
    p = HERE / ".venvs" / tool / "bin" / exe
    return p if p.exists() else None


def run_bastion(project: Path) -> tuple[list[dict[str, Any]], float]:
    exe = ROOT / ".venv" / "bin" / "bastion"
    start = time.perf_counter()
    out = subprocess.run(
        [str(exe), "scan", str(project), "--only", "workspace", "-f", "json", "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    doc = json.loads(out.stdout)
    return doc["findings"], elapsed


def run_detect_secrets(project: Path) -> tuple[list[dict[str, Any]], float] | None:
    exe = _bin("detect-secrets", "detect-secrets")
    if exe is None:
        return None
    start = time.perf_counter()
    out = subprocess.run(
        [str(exe), "scan", "--all-files", "."], cwd=project, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    results = json.loads(out.stdout).get("results", {})
    return [
        {"file": f, "line": r["line_number"], "category": "secret"} for f, rs in results.items() for r in rs
    ], elapsed


def run_gitleaks(project: Path) -> tuple[list[dict[str, Any]], float] | None:
    exe = _bin("gitleaks", "gitleaks")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "r.json"
        start = time.perf_counter()
        subprocess.run(
            [
                str(exe),
                "dir",
                str(project),
                "-f",
                "json",
                "-r",
                str(report),
                "--no-banner",
                "--exit-code",
                "0",
            ],
            capture_output=True,
            check=False,
        )
        elapsed = time.perf_counter() - start
        data = json.loads(report.read_text() or "[]")
    return [
        {"file": os.path.relpath(d["File"], project), "line": d["StartLine"], "category": "secret"}
        for d in data
    ], elapsed


def run_bandit(project: Path) -> tuple[list[dict[str, Any]], float] | None:
    exe = _bin("bandit", "bandit")
    if exe is None:
        return None
    start = time.perf_counter()
    out = subprocess.run(
        [str(exe), "-r", ".", "-f", "json", "-q"], cwd=project, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    results = json.loads(out.stdout or "{}").get("results", [])
    secrets = {"B105", "B106", "B107"}
    return [
        {
            "file": os.path.relpath(r["filename"], "."),
            "line": r["line_number"],
            "category": "secret" if r["test_id"] in secrets else "unsafe_code",
        }
        for r in results
    ], elapsed


def _normal(f: dict[str, Any]) -> dict[str, Any]:
    return {**f, "file": f["file"].removeprefix("./")}


def score(truth: list[dict[str, Any]], found: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per category (and per 'where' for recall): precision over reported lines, recall over planted ones."""
    found = [_normal(f) for f in found]
    out: dict[str, dict[str, float]] = {}
    for cat in ("secret", "unsafe_code", "dockerfile", "pii"):
        t = [x for x in truth if x["category"] == cat]
        if cat == "pii":
            planted = {(x["file"], x["column"], x["where"]) for x in t}
            got = {
                (f["file"], (f.get("member") or "").removeprefix("column "), f.get("kind"))
                for f in found
                if f["category"] == cat
            }
        else:
            planted = {(x["file"], x["line"]) for x in t}
            got = {(f["file"], f["line"]) for f in found if f["category"] == cat}
        tp = len(planted & got)
        out[cat] = {
            "planted": len(planted),
            "reported": len(got),
            "precision": tp / len(got) if got else float("nan"),
            "recall": tp / len(planted) if planted else float("nan"),
        }
        if cat == "secret":
            by_where: dict[str, set[tuple[str, int]]] = defaultdict(set)
            for x in t:
                by_where[x["where"]].add((x["file"], x["line"]))
            for where, keys in sorted(by_where.items()):
                out[f"secret/{where}"] = {"planted": len(keys), "recall": len(keys & got) / len(keys)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--tools", default="bastion,detect-secrets,gitleaks,bandit")
    args = ap.parse_args()
    project = args.corpus / "project"
    truth = json.loads((args.corpus / "truth.json").read_text())
    mb = sum(p.stat().st_size for p in project.rglob("*") if p.is_file()) / 1e6
    runners = {
        "bastion": run_bastion,
        "detect-secrets": run_detect_secrets,
        "gitleaks": run_gitleaks,
        "bandit": run_bandit,
    }
    print(f"corpus: {mb:.1f} MB, {len(truth)} planted findings")
    print(f"{'tool':<15} {'category':<24} {'planted':>7} {'reported':>8} {'precision':>9} {'recall':>7}")
    results = {}
    for tool in args.tools.split(","):
        res = runners[tool](project)
        if res is None:
            print(f"{tool:<15} not installed (bash benchmarks/workspace/run.sh --setup-only)")
            continue
        found, elapsed = res
        table = score(truth, found)
        results[tool] = {"seconds": elapsed, "mb_per_s": mb / elapsed, "scores": table}
        for cat, s in table.items():
            if tool != "bastion" and s.get("reported", 1) == 0 and cat in ("pii", "dockerfile"):
                continue
            prec = f"{s['precision']:.3f}" if "precision" in s else ""
            rep = str(int(s["reported"])) if "reported" in s else ""
            print(f"{tool:<15} {cat:<24} {int(s['planted']):>7} {rep:>8} {prec:>9} {s['recall']:>7.3f}")
        print(f"{tool:<15} {'speed':<24} {elapsed:>7.1f}s {mb / elapsed:>8.1f} MB/s")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

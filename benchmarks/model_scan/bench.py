"""Run Bastion and the anchor scanners over the corpus and tabulate detections and throughput.

Every tool runs through its own CLI, from its own virtual environment under ``.venvs/<tool>``,
as a subprocess:
  * once per corpus file (detections, false positives, errors; per-file timings include the
    tool's process start-up, as a CI gate calling it per file would pay);
  * once on the whole corpus folder, where the tool accepts a folder (throughput; median of
    ``--repeat`` runs);
  * with ``--big``, on each big checkpoint ``--repeat`` times (throughput; median).

Each run is mapped to one status:
  detected     the tool reported the file as unsafe (its own gate: exit code / JSON verdict)
  clean        the tool scanned the file and reported nothing
  unsupported  the tool did not scan the file (format not handled, nothing scanned)
  error        the tool failed, crashed, timed out or said it could not decide
A reported finding wins over an error the same run also reported.

Results: ``results/results.json`` (everything, per run) and ``results/results.md`` (the tables).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
CORPUS = HERE / "corpus"
RESULTS = HERE / "results"

DETECTED, CLEAN, UNSUPPORTED, ERROR = "detected", "clean", "unsupported", "error"


@dataclass
class Run:
    """One invocation of one tool."""

    tool: str
    target: str  # corpus-relative path, or a folder
    status: str
    exit_code: int | None
    seconds: float
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Proc:
    exit_code: int | None  # None: timed out
    stdout: str
    stderr: str
    seconds: float
    workdir: Path


def tail(text: str, n: int = 240) -> str:
    text = " ".join(text.split())
    return text[-n:]


# --------------------------------------------------------------------------------------------
# Tools: how to call each CLI and how to read its answer.
# --------------------------------------------------------------------------------------------
@dataclass
class Tool:
    name: str
    venv: str
    exe: str
    file_cmd: Callable[[Path, Path], list[str]]  # (target, workdir) -> argv after the executable
    parse: Callable[[Proc], tuple[str, str, dict[str, Any]]]  # -> (status, detail, extra)
    folder_ok: bool = True

    def binary(self, override: str | None = None) -> Path:
        if override:
            return Path(override)
        return VENVS / self.venv / "bin" / self.exe

    def version(self) -> str:
        dist = {"bastion": "bastion-mlsecops"}.get(self.name, self.name)
        py = VENVS / self.venv / "bin" / "python"
        if not py.exists():
            return "?"
        cp = subprocess.run(
            [str(py), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
            check=False,
        )
        return cp.stdout.strip() or "?"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _json_in(text: str) -> Any:
    """The first JSON object printed on stdout (tools may print banners around it)."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        return json.loads(text[start:])
    except ValueError:
        try:
            return json.JSONDecoder().raw_decode(text[start:])[0]
        except ValueError:
            return None


def parse_modelscan(p: Proc) -> tuple[str, str, dict[str, Any]]:
    # exit 0 clean, 1 issues, 2 errors (wins over issues in its exit code), 3 nothing scanned, 4 usage
    report = _read_json(p.workdir / "modelscan.json") or {}
    issues = report.get("issues") or []
    errors = report.get("errors") or []
    scanned = (report.get("summary") or {}).get("scanned", {}).get("total_scanned", 0)
    extra = {"issues": len(issues), "errors": len(errors), "scanned": scanned}
    if issues:
        sev = sorted({str(i.get("severity")) for i in issues})
        return (
            DETECTED,
            f"{len(issues)} issue(s) {','.join(sev)}: {tail(str(issues[0].get('description')), 120)}",
            extra,
        )
    if p.exit_code == 0:
        return CLEAN, "", extra
    if p.exit_code == 3 and not errors:
        return UNSUPPORTED, "nothing scanned (exit 3)", extra
    if p.exit_code == 3 and errors:
        return UNSUPPORTED, f"nothing scanned: {tail(str(errors[0].get('description')), 160)}", extra
    if errors:
        return ERROR, f"exit {p.exit_code}: {tail(str(errors[0].get('description')), 160)}", extra
    return ERROR, f"exit {p.exit_code}: {tail(p.stdout + p.stderr)}", extra


def parse_picklescan(p: Proc) -> tuple[str, str, dict[str, Any]]:
    # exit 0 no dangerous globals, 1 dangerous globals found, 2 scan error (wins in its exit code)
    def num(label: str) -> int:
        m = re.search(label + r":\s*(\d+)", p.stdout)
        return int(m.group(1)) if m else 0

    extra = {
        "scanned": num("Scanned files"),
        "infected": num("Infected files"),
        "dangerous": num("Dangerous globals"),
        "suspicious": num("Suspicious globals"),
    }
    found = [ln.strip() for ln in p.stdout.splitlines() if "FOUND" in ln]
    if extra["dangerous"] or p.exit_code == 1:
        return DETECTED, tail(found[0] if found else p.stdout, 160), extra
    if p.exit_code == 0 and extra["scanned"] == 0:
        return UNSUPPORTED, "no file scanned", extra
    if p.exit_code == 0:
        return CLEAN, f"{extra['suspicious']} suspicious (non-failing)" if extra["suspicious"] else "", extra
    return ERROR, f"exit {p.exit_code}: {tail(p.stdout + p.stderr)}", extra


def parse_fickling(p: Proc) -> tuple[str, str, dict[str, Any]]:
    # fickling.constants: EXIT_CLEAN 0, EXIT_UNSAFE 1, EXIT_ERROR 2 (parse failure: 'DO NOT TRUST')
    report = _read_json(p.workdir / "fickling.json") or {}
    extra = {"severity": report.get("severity")} if isinstance(report, dict) else {}
    if p.exit_code == 1:
        return DETECTED, tail(str(report.get("analysis", "")) if isinstance(report, dict) else "", 160), extra
    if p.exit_code == 0:
        return CLEAN, "", extra
    return ERROR, f"exit {p.exit_code}: {tail(p.stderr or p.stdout, 160)}", extra


def parse_modelaudit(p: Proc) -> tuple[str, str, dict[str, Any]]:
    # exit 0 no issues, 1 issues found (any severity above info gates), 2 errors during scanning
    report = _read_json(p.workdir / "modelaudit.json") or {}
    issues = [i for i in report.get("issues") or [] if isinstance(i, dict)]
    order = {"debug": 0, "info": 1, "warning": 2, "critical": 3}
    worst = max(
        (str(i.get("severity", "")).lower() for i in issues), key=lambda s: order.get(s, 0), default=""
    )
    gating = [i for i in issues if order.get(str(i.get("severity", "")).lower(), 0) >= order["warning"]]
    extra = {
        "issues": len(issues),
        "max_severity": worst,
        "critical": sum(str(i.get("severity", "")).lower() == "critical" for i in issues),
        "files_scanned": report.get("files_scanned"),
    }
    first = (sorted(gating, key=lambda i: -order.get(str(i.get("severity", "")).lower(), 0)) or [{}])[0]
    if p.exit_code == 1 or gating:
        return DETECTED, f"max {worst}: {tail(str(first.get('message', '')), 140)}", extra
    if p.exit_code == 0:
        if report.get("files_scanned") == 0:
            return UNSUPPORTED, "no file scanned", extra
        return CLEAN, "", extra
    errs = report.get("errors") or []
    failed = [c for c in report.get("checks") or [] if isinstance(c, dict) and c.get("status") == "failed"]
    msg = errs[0] if errs else (failed[0].get("message") if failed else (p.stderr or p.stdout))
    return ERROR, f"exit {p.exit_code}: {tail(str(msg), 160)}", extra


def parse_bastion(p: Proc) -> tuple[str, str, dict[str, Any]]:
    # exit 0 safe, 1 unsafe, 2 could not decide, 3 nothing scannable; JSON verdict on stdout
    report = _json_in(p.stdout)
    if not isinstance(report, dict):
        return ERROR, f"exit {p.exit_code}, no JSON: {tail(p.stderr or p.stdout)}", {}
    verdict = report.get("verdict")
    findings = [f for f in report.get("findings") or [] if isinstance(f, dict)]
    problems = [f for f in report.get("problems") or [] if isinstance(f, dict)]
    high = [f for f in findings if str(f.get("severity", "")).lower() in ("critical", "high")]
    extra = {
        "verdict": verdict,
        "findings": len(findings),
        "problems": len(problems),
        "severities": sorted({str(f.get("severity")) for f in findings}),
    }

    def describe(f: dict[str, Any]) -> str:
        bits = [str(f.get(k)) for k in ("severity", "rule", "rule_id", "id", "title", "message") if f.get(k)]
        return tail(" ".join(bits), 160)

    if verdict == "unsafe" or p.exit_code == 1 or high:
        return DETECTED, describe((high or findings or [{}])[0]), extra
    if verdict == "safe" and p.exit_code == 0:
        return CLEAN, f"{len(findings)} low finding(s)" if findings else "", extra
    if verdict == "unsupported" or p.exit_code == 3:
        return (
            UNSUPPORTED,
            tail(str(problems[0].get("message")) if problems else "nothing scannable", 160),
            extra,
        )
    msg = problems[0].get("message") if problems else (p.stderr or p.stdout)
    return ERROR, f"{verdict} (exit {p.exit_code}): {tail(str(msg), 160)}", extra


TOOLS: dict[str, Tool] = {
    "bastion": Tool(
        "bastion",
        "bastion",
        "bastion",
        lambda t, w: ["scan", str(t), "--format", "json", "--no-progress"],
        parse_bastion,
    ),
    "modelscan": Tool(
        "modelscan",
        "modelscan",
        "modelscan",
        lambda t, w: ["scan", "-p", str(t), "-r", "json", "-o", str(w / "modelscan.json")],
        parse_modelscan,
    ),
    "picklescan": Tool(
        "picklescan", "picklescan", "picklescan", lambda t, w: ["--path", str(t)], parse_picklescan
    ),
    "fickling": Tool(
        "fickling",
        "fickling",
        "fickling",
        lambda t, w: ["--check-safety", "--json-output", str(w / "fickling.json"), str(t)],
        parse_fickling,
        folder_ok=False,
    ),
    "modelaudit": Tool(
        "modelaudit",
        "modelaudit",
        "modelaudit",
        lambda t, w: [
            "scan",
            str(t),
            "--format",
            "json",
            "--output",
            str(w / "modelaudit.json"),
            "--no-cache",
        ],
        parse_modelaudit,
    ),
}
ANCHORS = ["modelscan", "picklescan", "fickling", "modelaudit"]


def tool_env(tool: Tool) -> dict[str, str]:
    return venv_env(VENVS / tool.venv)


def venv_env(venv: Path | None) -> dict[str, str]:
    """The environment a tool runs in: its venv first on PATH, no telemetry, no colours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    if venv is not None:
        env["PATH"] = str(venv / "bin") + os.pathsep + env.get("PATH", "")
        env["VIRTUAL_ENV"] = str(venv)
    # no network here anyway; keep the tools from trying (telemetry, hub look-ups)
    env.update(
        {
            "PROMPTFOO_DISABLE_TELEMETRY": "1",
            "NO_ANALYTICS": "1",
            "HF_HUB_OFFLINE": "1",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "NO_COLOR": "1",
            "TERM": "dumb",
        }
    )
    return env


def invoke(tool: Tool, target: Path, timeout: float, exe: Path) -> Proc:
    workdir = Path(tempfile.mkdtemp(prefix=f"ms-{tool.name}-"))
    argv = [str(exe), *tool.file_cmd(target, workdir)]
    t0 = time.perf_counter()
    try:
        cp = subprocess.run(
            argv,
            cwd=workdir,
            env=tool_env(tool),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        code: int | None = cp.returncode
        out, err = cp.stdout, cp.stderr
    except subprocess.TimeoutExpired as exc:
        code = None
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    seconds = time.perf_counter() - t0
    return Proc(code, out, err, seconds, workdir)


def run_one(tool: Tool, target: Path, rel: str, timeout: float, exe: Path) -> Run:
    p = invoke(tool, target, timeout, exe)
    try:
        if p.exit_code is None:
            return Run(tool.name, rel, ERROR, None, p.seconds, f"timed out after {timeout:.0f}s")
        try:
            status, detail, extra = tool.parse(p)
        except Exception as exc:  # noqa: BLE001 -- a parser bug must not kill the whole benchmark
            status, detail, extra = ERROR, f"harness could not parse output: {exc!r}", {}
        if p.exit_code is not None and p.exit_code < 0:
            status, detail = ERROR, f"killed by signal {-p.exit_code}: {tail(p.stderr)}"
        return Run(tool.name, rel, status, p.exit_code, p.seconds, detail, extra)
    finally:
        shutil.rmtree(p.workdir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Tables.
# --------------------------------------------------------------------------------------------
MARK = {DETECTED: "**yes**", CLEAN: "no", UNSUPPORTED: "unsup", ERROR: "ERR"}


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def derived_critical_only(runs: list[Run]) -> list[Run]:
    """modelaudit gates on warnings too; this view counts a detection only at severity critical."""
    out = []
    for r in runs:
        if r.tool != "modelaudit":
            continue
        status = r.status
        if status == DETECTED and not r.extra.get("critical"):
            status = CLEAN
        out.append(Run("modelaudit[critical]", r.target, status, r.exit_code, r.seconds, r.detail, r.extra))
    return out


def summarise(
    files: list[dict[str, Any]], runs: list[Run], folder: dict[str, Any], tools: list[str]
) -> tuple[dict[str, Any], str]:
    by_path = {f["path"]: f for f in files}
    mal = [f for f in files if f["label"] == "malicious"]
    ben = [f for f in files if f["label"] == "benign"]
    total_mb = sum(f["size"] for f in files) / 1e6
    summary: dict[str, Any] = {}
    rows = []
    for t in tools:
        tr = [r for r in runs if r.tool == t]
        if not tr:
            continue
        tp = sum(r.status == DETECTED and by_path[r.target]["label"] == "malicious" for r in tr)
        fp = sum(r.status == DETECTED and by_path[r.target]["label"] == "benign" for r in tr)
        errs = sum(r.status == ERROR for r in tr)
        unsup = sum(r.status == UNSUPPORTED for r in tr)
        secs = sum(r.seconds for r in tr)
        median_file_s = statistics.median(r.seconds for r in tr)
        fo = folder.get(t.split("[")[0]) if "[" not in t else None
        s = {
            "true_positives": tp,
            "malicious": len(mal),
            "false_positives": fp,
            "benign": len(ben),
            "errors": errs,
            "unsupported": unsup,
            "per_file_total_s": secs,
            "per_file_median_s": median_file_s,
            "per_file_files_per_s": len(tr) / secs if secs else None,
            "per_file_mb_per_s": total_mb / secs if secs else None,
        }
        if fo and fo.get("median_s"):
            s["folder_median_s"] = fo["median_s"]
            s["folder_files_per_s"] = len(files) / fo["median_s"]
            s["folder_mb_per_s"] = total_mb / fo["median_s"]
        summary[t] = s
        version = TOOLS[t].version() if t in TOOLS else TOOLS["modelaudit"].version()
        rows.append(
            [
                f"{t} {version}",
                f"{tp}/{len(mal)}",
                f"{fp}/{len(ben)}",
                str(errs),
                str(unsup),
                f"{median_file_s:.2f}",
                f"{len(tr) / secs:.2f}",
                f"{total_mb / secs:.3f}",
                f"{s['folder_files_per_s']:.1f}" if "folder_files_per_s" in s else "n/a",
                f"{s['folder_mb_per_s']:.2f}" if "folder_mb_per_s" in s else "n/a",
            ]
        )
    md = [
        f"Corpus: {len(files)} files ({len(mal)} malicious, {len(ben)} benign, {total_mb:.2f} MB).",
        "",
        md_table(
            [
                "tool",
                "TP (detected malicious)",
                "FP (flagged benign)",
                "errors",
                "unsupported",
                "median s/file",
                "files/s (per-file)",
                "MB/s (per-file)",
                "files/s (folder)",
                "MB/s (folder)",
            ],
            rows,
        ),
    ]
    return summary, "\n".join(md)


def class_matrix(files: list[dict[str, Any]], runs: list[Run], tools: list[str], label: str) -> str:
    status = {(r.tool, r.target): r.status for r in runs}
    rows = []
    for f in files:
        if f["label"] != label:
            continue
        cells = [MARK.get(status.get((t, f["path"]), ""), "-") for t in tools]
        if label == "benign" and all(status.get((t, f["path"])) == CLEAN for t in tools):
            continue  # only show benign files that some tool did not call clean
        rows.append([f["cls"], f"`{Path(f['path']).name}`", *cells])
    if not rows:
        return "(every tool called every benign file clean)"
    return md_table(["class", "file", *tools], rows)


def problems_list(files: list[dict[str, Any]], runs: list[Run], tool: str) -> str:
    by_path = {f["path"]: f for f in files}
    lines = []
    for r in runs:
        if r.tool != tool:
            continue
        f = by_path[r.target]
        expected = DETECTED if f["label"] == "malicious" else CLEAN
        if r.status != expected:
            lines.append(
                f"- `{r.target}` ({f['cls']}): expected {expected}, got **{r.status}** "
                f"(exit {r.exit_code}) {r.detail}"
            )
    return "\n".join(lines) or "- none"


# --------------------------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--tools", default=",".join(["bastion", *ANCHORS]), help="comma-separated subset")
    ap.add_argument("--repeat", type=int, default=3, help="runs per throughput measurement (median)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per corpus-file run")
    ap.add_argument("--big", action="store_true", help="also time the big checkpoints (corpus.py --big)")
    ap.add_argument("--big-timeout", type=float, default=900, help="seconds per big-checkpoint run")
    ap.add_argument("--no-folder", action="store_true", help="skip the whole-folder throughput runs")
    ap.add_argument(
        "--bastion-bin", default=None, help="use this bastion executable instead of .venvs/bastion"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    manifest = json.loads((args.corpus / "manifest.json").read_text())
    files: list[dict[str, Any]] = manifest["files"]
    tools = [t for t in args.tools.split(",") if t]
    exes = {t: TOOLS[t].binary(args.bastion_bin if t == "bastion" else None) for t in tools}
    for t, exe in list(exes.items()):
        if not exe.exists():
            print(f"!! {t}: {exe} missing; run run.sh --setup-only. Skipping {t}.", file=sys.stderr)
            tools.remove(t)

    runs: list[Run] = []
    for t in tools:
        t0 = time.perf_counter()
        for f in files:
            runs.append(run_one(TOOLS[t], args.corpus / f["path"], f["path"], args.timeout, exes[t]))
        tr = [r for r in runs if r.tool == t]
        print(
            f"{t}: {len(tr)} files in {time.perf_counter() - t0:.1f}s  "
            + " ".join(
                f"{k}={sum(r.status == k for r in tr)}" for k in (DETECTED, CLEAN, UNSUPPORTED, ERROR)
            ),
            file=sys.stderr,
        )

    folder: dict[str, Any] = {}
    folder_root = args.corpus / "main"
    if not args.no_folder:
        for t in tools:
            if not TOOLS[t].folder_ok:
                continue
            frs = [
                run_one(TOOLS[t], folder_root, "main/", args.timeout * 4, exes[t]) for _ in range(args.repeat)
            ]
            folder[t] = {
                "runs": [asdict(r) for r in frs],
                "median_s": statistics.median(r.seconds for r in frs),
                "exit_codes": [r.exit_code for r in frs],
            }
            print(
                f"{t}: folder median {folder[t]['median_s']:.2f}s (exit {folder[t]['exit_codes']})",
                file=sys.stderr,
            )

    big: dict[str, Any] = {}
    if args.big:
        big_manifest = args.corpus / "big_manifest.json"
        if not big_manifest.exists():
            print("!! --big: no big_manifest.json; run corpus.py --big first", file=sys.stderr)
        else:
            for bf in json.loads(big_manifest.read_text())["files"]:
                path = args.corpus / bf["path"]
                big[bf["path"]] = {"size": path.stat().st_size, "cls": bf["cls"], "tools": {}}
                for t in tools:
                    brs: list[Run] = []
                    for _ in range(args.repeat):
                        r = run_one(TOOLS[t], path, bf["path"], args.big_timeout, exes[t])
                        brs.append(r)
                        if r.exit_code is None:
                            break  # timed out: do not burn two more timeouts
                    med = statistics.median(r.seconds for r in brs)
                    big[bf["path"]]["tools"][t] = {
                        "runs": [asdict(r) for r in brs],
                        "median_s": med,
                        "mb_per_s": path.stat().st_size / 1e6 / med,
                        "status": brs[0].status,
                        "detail": brs[0].detail,
                    }
                    print(
                        f"{t}: {bf['path']} median {med:.2f}s status={brs[0].status} {brs[0].detail}",
                        file=sys.stderr,
                    )

    all_runs = runs + derived_critical_only(runs)
    table_tools = tools + (["modelaudit[critical]"] if "modelaudit" in tools else [])
    summary, summary_md = summarise(files, all_runs, folder, table_tools)

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    mach = machine_info()
    md = [
        "# Model-scan benchmark",
        "",
        f"Generated {now} on {mach['cpus']} CPU(s) ({mach['cpu']}). Per-file figures include each "
        "tool's process start-up; folder figures are one process over `corpus/main/` "
        f"(median of {args.repeat}).",
        "",
        "## Summary",
        "",
        summary_md,
        "",
        "`modelaudit[critical]` re-reads modelaudit's runs counting only critical findings as detections "
        "(modelaudit's own exit code also fails on warnings).",
        "",
        "## Malicious classes: who detects what",
        "",
        "`**yes**` detected, `no` missed (scanned, called clean), `unsup` not scanned, "
        "`ERR` error / could not decide.",
        "",
        class_matrix(files, all_runs, table_tools, "malicious"),
        "",
        "## Benign files not called clean by every tool",
        "",
        class_matrix(files, all_runs, table_tools, "benign"),
        "",
    ]
    if big:
        md += [
            "## Big-checkpoint throughput",
            "",
            f"Median of {args.repeat} runs, one process per run (start-up included). Ratio = Bastion MB/s / "
            "fastest anchor's MB/s among anchors that gave the right answer "
            "(clean: the checkpoints are benign).",
            "",
        ]
        rows = []
        for path, b in big.items():
            cells = []
            for t in tools:
                tb = b["tools"].get(t)
                cells.append(
                    f"{tb['median_s']:.1f}s = {tb['mb_per_s']:.0f} MB/s ({tb['status']})" if tb else "-"
                )
            ok = {t: tb for t, tb in b["tools"].items() if t in ANCHORS and tb["status"] == CLEAN}
            ratio = "n/a"
            bb = b["tools"].get("bastion")
            if ok and bb and bb["status"] in (CLEAN, DETECTED):
                fastest = max(ok, key=lambda k: ok[k]["mb_per_s"])
                ratio = f"{bb['mb_per_s'] / ok[fastest]['mb_per_s']:.2f} (vs {fastest})"
                b["ratio_bastion_vs_fastest_anchor"] = bb["mb_per_s"] / ok[fastest]["mb_per_s"]
                b["fastest_anchor"] = fastest
            rows.append([f"`{Path(path).name}` ({b['size'] / 1e6:.0f} MB)", *cells, ratio])
        md += [md_table(["file", *tools, "Bastion / fastest anchor"], rows), ""]
        for path, b in big.items():
            for t, tb in b["tools"].items():
                if tb["status"] not in (CLEAN,):
                    md.append(f"- {t} on `{path}`: {tb['status']} {tb['detail']}")
        md.append("")
    for t in tools:
        md += [f"## Misses, false positives and errors: {t}", "", problems_list(files, all_runs, t), ""]
    md += ["## Versions", "", *[f"- {t}: {TOOLS[t].version()}" for t in tools], ""]

    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "generated": dt.datetime.now(dt.UTC).isoformat(),
        "machine": machine_info(),
        "versions": {t: TOOLS[t].version() for t in tools},
        "repeat": args.repeat,
        "corpus": {"files": len(files), "bytes": sum(f["size"] for f in files)},
        "summary": summary,
        "folder": folder,
        "big": big,
        "per_file": [asdict(r) for r in all_runs],
        "manifest": files,
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "results.md").write_text("\n".join(md))
    print("\n".join(md))
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'results.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""In-process scan time: each scanner's library API called in a warm process, so that interpreter
start-up and imports are left out and only the scan itself is timed (`startup.py` times the whole
process instead). Bastion side by side with the anchors, each in its own venv under `.venvs/`.

    python benchmarks/model_scan/inprocess.py FILE... [--runs 15]
        [--tools bastion,picklescan,modelscan,fickling,modelaudit] [--venvs .venvs]
        [--bastion-python PYTHON] [--max-seconds 60] [--timeout 900] [--json OUT]

For every (file, tool) one worker process runs in the tool's venv (this same file, with the hidden
`--worker TOOL FILE RUNS` arguments; stdlib + that tool only): it imports the tool, scans the file
once untimed (warm-up: imports done, page cache hot), then times `--runs` scans with
`time.perf_counter` (fewer when they pass `--max-seconds`, at least 3) and prints
`{"times": [...], "verdict": "clean|unsafe|error", ...}` as JSON. The tool order turns by one for
each file, so that no tool always runs first on a noisy machine.

Prints per file the median ms and MB/s (file size / median) of each tool, its verdict, and the ratio
fastest anchor median / Bastion median (above 1: Bastion is faster). Only anchors that call the
file clean count for the ratio: the checkpoints this is meant for are benign. A clean verdict that
does not come from reading the file's pickles (modelscan on a legacy torch file, see partial_scan) is
marked `*` and left out of the ratio too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOOLS = ("bastion", "picklescan", "modelscan", "fickling", "modelaudit")
ANCHORS = TOOLS[1:]
CLEAN, UNSAFE, ERROR = "clean", "unsafe", "error"
MIN_RUNS = 3
# pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2): the first bytes of a legacy (non-zip) torch.save file
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."

# --------------------------------------------------------------------------------------------------
# Worker side: runs in the tool's own venv, imports nothing from this repo but the tool itself.
# Each factory imports the tool and returns scan(path) -> (verdict, detail).

Scan = Callable[[str], tuple[str, str]]


def _bastion() -> Scan:
    from bastion.scanners.engine import scan_paths

    def scan(path: str) -> tuple[str, str]:
        # workers=1: one file, no process pool
        report = scan_paths((Path(path),), workers=1)
        verdict = str(getattr(report.verdict, "value", report.verdict))
        detail = (
            f"bastion verdict {verdict}, {len(report.findings)} finding(s), {len(report.problems)} problem(s)"
        )
        if report.problems:
            detail += f": {report.problems[0]}"
        return {"safe": CLEAN, "unsafe": UNSAFE}.get(verdict, ERROR), detail

    return scan


def _picklescan() -> Scan:
    from picklescan.scanner import scan_file_path

    def scan(path: str) -> tuple[str, str]:
        result = scan_file_path(path)
        detail = (
            f"scanned {result.scanned_files}, issues {result.issues_count}, "
            f"infected {result.infected_files}, "
            f"scan_err {result.scan_err}"
        )
        if result.issues_count or result.infected_files:
            return UNSAFE, detail
        if result.scan_err or not result.scanned_files:
            return ERROR, detail
        return CLEAN, detail

    return scan


def _modelscan() -> Scan:
    from modelscan.modelscan import ModelScan

    scanner = ModelScan()  # scan() resets issues, errors, scanned and skipped on every call

    def scan(path: str) -> tuple[str, str]:
        scanner.scan(path)
        issues, errors, scanned = scanner.issues.all_issues, scanner.errors, scanner.scanned
        detail = f"{len(issues)} issue(s), {len(errors)} error(s), {len(scanned)} scanned"
        if errors:
            detail += f": {errors[0]}"
        if issues:
            return UNSAFE, detail
        if errors or not scanned:  # the CLI's exit 2 (errors) and 3 (nothing scanned)
            return ERROR, detail
        return CLEAN, detail

    return scan


def _fickling() -> Scan:
    # What `fickling --check-safety FILE` does (fickling.cli.main): every stacked pickle of the file
    # through the analysis; a parse error is its exit 2. It reads raw pickle streams only (a torch zip
    # does not parse: error).
    from fickling.analysis import Severity, check_safety
    from fickling.fickle import PickleDecodeError, StackedPickle

    def scan(path: str) -> tuple[str, str]:
        with open(path, "rb") as file:
            try:
                stacked = StackedPickle.load(file, fail_on_decode_error=False)
            except PickleDecodeError as exc:
                return ERROR, f"parse error: {exc}"[:300]
        worst = max((check_safety(p).severity for p in stacked), default=Severity.LIKELY_SAFE)
        detail = f"{len(stacked)} pickle(s), worst severity {worst.name}"
        return (UNSAFE if worst > Severity.LIKELY_SAFE else CLEAN), detail

    return scan


def _modelaudit() -> Scan:
    from modelaudit.core import determine_exit_code, scan_model_directory_or_file

    gating = {"warning", "critical"}  # the severities that fail its CLI (exit 1)

    def scan(path: str) -> tuple[str, str]:
        # the CLI's `--no-cache`: no scan-result cache, so every run really scans
        results = scan_model_directory_or_file(path, cache_enabled=False, cache_dir=None)
        code = determine_exit_code(results)
        sev = [str(getattr(i.severity, "value", i.severity)) for i in results.issues]
        detail = f"exit code {code}, files scanned {results.files_scanned}, issues {sorted(set(sev))}"
        if code == 1 or gating & set(sev):
            first = next(i for i in results.issues if str(getattr(i.severity, "value", i.severity)) in gating)
            return UNSAFE, f"{detail}: {first.message}"[:300]
        if code == 0:
            return CLEAN, detail
        failed = [c.message for c in results.checks if str(getattr(c.status, "value", c.status)) == "failed"]
        info = [i.message for i in results.issues if str(getattr(i.severity, "value", i.severity)) == "info"]
        return ERROR, f"{detail}: {(failed or info or [''])[0]}"[:300]

    return scan


WORKERS: dict[str, Callable[[], Scan]] = {
    "bastion": _bastion,
    "picklescan": _picklescan,
    "modelscan": _modelscan,
    "fickling": _fickling,
    "modelaudit": _modelaudit,
}


def worker(tool: str, path: str, runs: int, max_seconds: float) -> None:
    out = sys.stdout
    sys.stdout = sys.stderr  # whatever the tool prints must not mix with the JSON
    scan = WORKERS[tool]()

    def once() -> tuple[str, str]:
        try:
            return scan(path)
        except Exception as exc:  # noqa: BLE001 - a tool failing on a file is a result (error)
            return ERROR, f"{type(exc).__name__}: {exc}"[:300]

    verdict, detail = once()  # warm-up, untimed
    times: list[float] = []
    verdicts = {verdict}
    started = time.perf_counter()
    for _ in range(runs):
        t0 = time.perf_counter()
        v, _ = once()
        times.append(time.perf_counter() - t0)
        if v not in verdicts:
            verdicts.add(v)
            detail = f"verdict changed between runs {sorted(verdicts)}; {detail}"
            verdict = ERROR
        # one line per run, the driver reads the last: a worker killed on --timeout still reports
        out.write(json.dumps({"times": times, "verdict": verdict, "detail": detail}) + "\n")
        out.flush()
        if len(times) >= MIN_RUNS and time.perf_counter() - started > max_seconds:
            break


# --------------------------------------------------------------------------------------------------
# Driver side.


def tool_env(venv: Path | None) -> dict[str, str]:
    from bench import venv_env  # beside this file (sys.path[0]); stdlib only, like the workers

    return venv_env(venv)


def run_worker(python: Path, tool: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    argv = [str(python), str(Path(__file__).resolve()), "--worker", tool, str(path.resolve()), str(args.runs)]
    argv += ["--max-seconds", str(args.max_seconds)]
    venv = python.parent.parent
    try:
        cp = subprocess.run(
            argv,
            env=tool_env(venv),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=args.timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
        partial: dict[str, Any] = (
            json.loads(lines[-1]) if lines else {"times": [], "verdict": ERROR, "detail": ""}
        )
        partial["detail"] = f"worker killed after {args.timeout:.0f}s; {partial['detail']}"
        if not lines:
            partial["detail"] += "no timed run finished (the warm-up scan included)"
        return partial
    lines = [ln for ln in cp.stdout.splitlines() if ln.startswith("{")]
    if cp.returncode != 0 or not lines:
        tail = (cp.stderr or cp.stdout).strip().splitlines()[-3:]
        return {"times": [], "verdict": ERROR, "detail": f"worker exit {cp.returncode}: {' | '.join(tail)}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def partial_scan(tool: str, path: Path) -> str | None:
    """Why a tool's clean verdict on this file does not come from reading what the others read, if so."""
    if tool == "modelscan":
        with path.open("rb") as file:
            head = file.read(len(LEGACY_TORCH_MAGIC))
        if head == LEGACY_TORCH_MAGIC:
            # modelscan.tools.picklescanner.scan_pytorch: after the magic number it scans one pickle
            # (multiple_pickles=False), the protocol version, never the state-dict pickle after it
            return "legacy torch file: modelscan scans only the pickle after the magic number"
    return None


def python_of(tool: str, args: argparse.Namespace) -> Path | None:
    if tool == "bastion" and args.bastion_python:
        return Path(args.bastion_python)
    candidate = Path(args.venvs) / tool / "bin" / "python"
    if candidate.exists():
        return candidate
    if tool == "bastion":
        fallback = HERE.parent.parent / ".venv" / "bin" / "python"
        if fallback.exists():
            return fallback
    return None


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        wp = argparse.ArgumentParser()
        wp.add_argument("--worker", nargs=3, metavar=("TOOL", "FILE", "RUNS"))
        wp.add_argument("--max-seconds", type=float, default=float("inf"))
        wa = wp.parse_args()
        tool, file, runs = wa.worker
        worker(tool, file, int(runs), wa.max_seconds)
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument(
        "--runs", type=int, default=15, help="timed scans per (tool, file), after one warm-up"
    )
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated, from: " + ", ".join(TOOLS))
    parser.add_argument("--venvs", type=Path, default=HERE / ".venvs", help="one venv per tool: VENVS/<tool>")
    parser.add_argument(
        "--bastion-python",
        default=None,
        help="python with Bastion installed (default: VENVS/bastion, else .venv)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        help=f"stop timing a (tool, file) once its runs took this long (at least {MIN_RUNS} runs)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="kill a worker after this many seconds")
    parser.add_argument("--json", type=Path, default=None, help="also write every time and verdict here")
    args = parser.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tool(s) {unknown}; choose from {', '.join(TOOLS)}")
    pythons: dict[str, Path] = {}
    for tool in tools:
        python = python_of(tool, args)
        if python is None:
            print(f"note: skipping {tool}: no venv at {args.venvs / tool}", file=sys.stderr)
        else:
            pythons[tool] = python
    present = [t for t in tools if t in pythons]
    if not present:
        parser.error("none of the tools has a venv (run: bash benchmarks/model_scan/run.sh --setup-only)")

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for i, path in enumerate(args.files):
        order = present[i % len(present) :] + present[: i % len(present)]
        results[str(path)] = {}
        for tool in order:
            res = run_worker(pythons[tool], tool, path, args)
            res["partial"] = partial_scan(tool, path)
            results[str(path)][tool] = res
            med = statistics.median(res["times"]) * 1000 if res["times"] else float("nan")
            print(
                f"  {path.name} {tool}: median {med:.1f} ms of {len(res['times'])} run(s), {res['verdict']}"
                + (f" ({res['detail']})" if res["verdict"] != CLEAN or "killed" in res["detail"] else ""),
                file=sys.stderr,
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print_table(args.files, present, results)


def print_table(files: list[Path], tools: list[str], results: dict[str, dict[str, dict[str, Any]]]) -> None:
    header = ["file", "MB", *tools, "ratio"]
    notes: dict[str, list[str]] = {}
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" for _ in header) + " |")
    for path in files:
        size_mb = path.stat().st_size / 1e6
        cells = [path.name, f"{size_mb:.0f}" if size_mb >= 10 else f"{size_mb:.1f}"]
        medians: dict[str, float] = {}
        for tool in tools:
            res = results[str(path)][tool]
            if not res["times"]:
                cells.append(f"- ({res['verdict']})")
                continue
            med = statistics.median(res["times"])
            medians[tool] = med
            rate = size_mb / med if med > 0 else float("inf")
            mark = "*" if res.get("partial") else ""
            cells.append(f"{fmt_ms(med)} = {rate:,.0f} MB/s ({res['verdict']}{mark})")
        ok = [
            medians[t]
            for t in tools
            if t in ANCHORS
            and t in medians
            and results[str(path)][t]["verdict"] == CLEAN
            and not results[str(path)][t].get("partial")
        ]
        ours = medians.get("bastion")
        bastion_clean = results[str(path)].get("bastion", {}).get("verdict") == CLEAN
        cells.append(f"{min(ok) / ours:.2f}x" if ok and ours and bastion_clean else "-")
        print("| " + " | ".join(cells) + " |")
        for t in tools:
            reason = results[str(path)][t].get("partial")
            if reason:
                notes.setdefault(f"{t}: {reason}", []).append(path.name)
    for note, names in notes.items():
        print(f"\n\\* not used for the ratio ({', '.join(names)}): {note}")


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:,.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


if __name__ == "__main__":
    main()

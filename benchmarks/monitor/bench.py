"""Drift benchmark driver: generate data once, run every tool on every scenario, print the table.

    python benchmarks/monitor/bench.py --venvs benchmarks/monitor/.venvs --rows 100000,1000000

Scenarios and their ground truth come from ``bastion.monitor.synthetic`` (24 numeric + 6
categorical columns). Precision and recall count flagged columns over the drifting scenarios; the
"none" and "negligible" windows must raise no alarm (``null alarms`` counts those that did). The
"correlation_flip" window changes no column's distribution, only the joint one: a flagged column
there is a false positive, and ``joint`` says whether the tool raised a window-level alarm on it
(the anchors' univariate drift reports alarm when they flag a column). Times are medians per window.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NULL = ("none", "negligible")
JOINT = ("correlation_flip",)
CORPUS_VERSION = "v2"  # v2: num_04 correlated with num_00 (bastion.monitor.synthetic)


def corpus(rows: int, scenarios: list[str]) -> tuple[Path, dict[str, tuple[Path, list[str]]]]:
    import pyarrow.parquet as pq

    from bastion.monitor.synthetic import apply_scenario, make_table

    folder = HERE / "corpus" / CORPUS_VERSION / str(rows)
    folder.mkdir(parents=True, exist_ok=True)
    ref = folder / "reference.parquet"
    if not ref.exists():
        pq.write_table(make_table(rows, seed=0), ref)
    windows = {}
    for i, name in enumerate(scenarios):
        path = folder / f"{name}.parquet"
        truth = folder / f"{name}.truth.json"
        if not path.exists() or not truth.exists():
            case = apply_scenario(make_table(rows, seed=100 + i), name)
            pq.write_table(case.table, path)
            truth.write_text(json.dumps(sorted(case.drifted)))
        windows[name] = (path, json.loads(truth.read_text()))
    return ref, windows


def run(tool: str, python: str, ref: Path, cur: Path, timeout: int) -> dict[str, object]:
    try:
        done = subprocess.run(
            [python, str(HERE / "tools.py"), tool, str(ref), str(cur)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout {timeout}s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:120]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    from bastion.monitor.synthetic import SCENARIOS

    parser = argparse.ArgumentParser()
    parser.add_argument("--venvs", type=Path, default=HERE / ".venvs")
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--tools", default="bastion,evidently,alibi-detect,nannyml,whylogs")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    if args.generate_only:
        for rows in [int(r) for r in args.rows.split(",")]:
            corpus(rows, scenarios)
        return
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")  # one file per run: runs may overlap
    rows_out = []
    for rows in [int(r) for r in args.rows.split(",")]:
        # Generated in a child process: on Linux a process's peak RSS (ru_maxrss) is inherited across
        # fork + exec, so tools started from a driver that held the generated tables would all report
        # the driver's peak instead of their own.
        subprocess.run(
            [sys.executable, __file__, "--generate-only", "--rows", str(rows), "--scenarios", args.scenarios],
            check=True,
        )
        ref, windows = corpus(rows, scenarios)
        for tool in args.tools.split(","):
            python = sys.executable if tool == "bastion" else str(args.venvs / tool / "bin" / "python")
            tp = fp = fn = null_alarms = 0
            joint: str = "-"
            seconds: list[float] = []
            peak = 0.0
            errors = []
            per_window = {}
            for name, (path, truth) in windows.items():
                out = run(tool, python, ref, path, args.timeout)
                if "error" in out:
                    errors.append(f"{name}: {out['error']}")
                    continue
                flagged = set(out["flagged"])  # type: ignore[call-overload]
                alarm = bool(out.get("alarm", bool(flagged)))
                print(f"[{rows} {tool} {name}] {out['seconds']:.1f}s {out['peak_mb']:.0f}MB alarm={alarm} "
                      f"flagged={sorted(flagged)} truth={truth}", file=sys.stderr)  # fmt: skip
                per_window[name] = {"seconds": out["seconds"], "peak_mb": out["peak_mb"], "alarm": alarm,
                                    "flagged": sorted(flagged)}  # fmt: skip
                seconds.append(float(out["seconds"]))  # type: ignore[arg-type]
                peak = max(peak, float(out["peak_mb"]))  # type: ignore[arg-type]
                if name in NULL:
                    null_alarms += alarm
                    fp += len(flagged)
                else:
                    tp += len(flagged & set(truth))
                    fp += len(flagged - set(truth))
                    fn += len(set(truth) - flagged)
                if name in JOINT:
                    joint = "yes" if alarm else "no"
            precision = tp / (tp + fp) if tp + fp else float("nan")
            recall = tp / (tp + fn) if tp + fn else float("nan")
            median_s = statistics.median(seconds) if seconds else float("nan")
            rows_out.append(
                {"rows": rows, "tool": tool, "runs": len(seconds), "precision": precision, "recall": recall,
                 "null_alarms": null_alarms, "joint_alarm": joint, "median_s": median_s, "peak_mb": peak,
                 "errors": errors, "windows": per_window}
            )  # fmt: skip
            (results_dir / f"results-{stamp}.json").write_text(json.dumps(rows_out, indent=1))
    nulls = len([s for s in scenarios if s in NULL])
    print(f"{'rows':>9} {'tool':13} {'runs':>4} {'precision':>9} {'recall':>6} {'null alarms':>11} "
          f"{'joint':>5} {'median s':>9} {'peak MB':>8}")  # fmt: skip
    for r in rows_out:
        print(f"{r['rows']:>9} {r['tool']:13} {r['runs']:>4} {r['precision']:>9.2f} {r['recall']:>6.2f} "
              f"{r['null_alarms']:>6}/{nulls}    {r['joint_alarm']:>5} {r['median_s']:>9.2f} "
              f"{r['peak_mb']:>8.0f}" + (f"  errors: {r['errors']}" if r["errors"] else ""))  # fmt: skip


if __name__ == "__main__":
    main()

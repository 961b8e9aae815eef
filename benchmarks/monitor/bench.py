"""Drift benchmark driver: generate data once, run every tool on every scenario, print the table.

    python benchmarks/monitor/bench.py --venvs benchmarks/monitor/.venvs --rows 100000,1000000

Scenarios and their ground truth come from ``bastion.monitor.synthetic`` (24 numeric + 6
categorical columns). Precision and recall count flagged columns over the drifting scenarios; the
"none" and "negligible" windows must flag nothing (``null alarms`` counts those that did).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NULL = ("none", "negligible")


def corpus(rows: int, scenarios: list[str]) -> tuple[Path, dict[str, tuple[Path, list[str]]]]:
    import pyarrow.parquet as pq

    from bastion.monitor.synthetic import apply_scenario, make_table

    folder = HERE / "corpus" / str(rows)
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
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    rows_out = []
    for rows in [int(r) for r in args.rows.split(",")]:
        ref, windows = corpus(rows, scenarios)
        for tool in args.tools.split(","):
            python = sys.executable if tool == "bastion" else str(args.venvs / tool / "bin" / "python")
            tp = fp = fn = null_alarms = 0
            seconds: list[float] = []
            peak = 0.0
            errors = []
            for name, (path, truth) in windows.items():
                out = run(tool, python, ref, path, args.timeout)
                if "error" in out:
                    errors.append(f"{name}: {out['error']}")
                    continue
                flagged = set(out["flagged"])  # type: ignore[call-overload]
                print(f"[{rows} {tool} {name}] {out['seconds']:.1f}s flagged={sorted(flagged)} truth={truth}",
                      file=sys.stderr)  # fmt: skip
                seconds.append(float(out["seconds"]))  # type: ignore[arg-type]
                peak = max(peak, float(out["peak_mb"]))  # type: ignore[arg-type]
                if name in NULL:
                    null_alarms += bool(flagged)
                    fp += len(flagged)
                else:
                    tp += len(flagged & set(truth))
                    fp += len(flagged - set(truth))
                    fn += len(set(truth) - flagged)
            precision = tp / (tp + fp) if tp + fp else float("nan")
            recall = tp / (tp + fn) if tp + fn else float("nan")
            mean_s = sum(seconds) / len(seconds) if seconds else float("nan")
            rows_out.append(
                {"rows": rows, "tool": tool, "runs": len(seconds), "precision": precision, "recall": recall,
                 "null_alarms": null_alarms, "mean_s": mean_s, "peak_mb": peak, "errors": errors}
            )  # fmt: skip
            (results_dir / "results.json").write_text(json.dumps(rows_out, indent=1))
    print(f"{'rows':>9} {'tool':13} {'runs':>4} {'precision':>9} {'recall':>6} {'null alarms':>11} "
          f"{'s/window':>9} {'peak MB':>8}")  # fmt: skip
    for r in rows_out:
        print(f"{r['rows']:>9} {r['tool']:13} {r['runs']:>4} {r['precision']:>9.2f} {r['recall']:>6.2f} "
              f"{r['null_alarms']:>6}/{len([s for s in scenarios if s in NULL])}    {r['mean_s']:>9.2f} "
              f"{r['peak_mb']:>8.0f}" + (f"  errors: {r['errors']}" if r["errors"] else ""))  # fmt: skip


if __name__ == "__main__":
    main()

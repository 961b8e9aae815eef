"""Whole-process time of one-file scans, Bastion against picklescan, runs alternated so that a noisy
machine slows both alike. On checkpoints with few tensors every scanner is start-up bound: this is the
number that matters for a CI job that scans files one process at a time.

    python benchmarks/model_scan/startup.py FILE... [--runs 41]
        [--bastion .venvs/bastion/bin/bastion] [--picklescan .venvs/picklescan/bin/picklescan]

Prints the median wall time of each tool per file and the ratio (picklescan time / Bastion time: above
1 means Bastion is faster).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=41)
    parser.add_argument("--bastion", default=str(HERE / ".venvs" / "bastion" / "bin" / "bastion"))
    parser.add_argument("--picklescan", default=str(HERE / ".venvs" / "picklescan" / "bin" / "picklescan"))
    args = parser.parse_args()
    print(f"{'file':40} {'picklescan ms':>14} {'bastion ms':>11} {'ratio':>6}")
    for path in args.files:
        tools = {
            "picklescan": [args.picklescan, "--path", str(path)],
            "bastion": [args.bastion, "scan", str(path), "--no-progress", "--format", "json"],
        }
        times: dict[str, list[float]] = {name: [] for name in tools}
        for _ in range(args.runs):
            for name, cmd in tools.items():
                times[name].append(timed(cmd))
        pick, ours = statistics.median(times["picklescan"]), statistics.median(times["bastion"])
        print(f"{path.name:40} {pick * 1000:14.0f} {ours * 1000:11.0f} {pick / ours:5.2f}x")


if __name__ == "__main__":
    main()

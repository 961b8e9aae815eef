"""Writes the large benign checkpoints that `startup.py` and `inprocess.py` time: one state dict of
float32 zeros per tensor count, saved with `torch.save` in the zip format (`zip<N>.pt`) and in the
legacy format (`legacy<N>.pt`), each about `--mb` megabytes, plus a 4 MB zip of 16 tensors
(`small16.pt`). Few tensors make every scanner start-up bound; many make parsing the pickle the work.

    .venvs/corpus/bin/python benchmarks/model_scan/checkpoints.py OUT_DIR [--mb 1024]
        [--tensors 16,1000,50000]

Needs torch (the `corpus` venv of run.sh has it). Writes 2 x len(tensors) files of `--mb` each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--mb", type=int, default=1024, help="size of each big checkpoint")
    parser.add_argument("--tensors", default="16,1000,50000", help="tensor counts, comma-separated")
    args = parser.parse_args()
    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    n_floats = args.mb * 1024 * 1024 // 4
    files: list[tuple[str, int, int, bool]] = [("small16.pt", 16, 1024 * 1024, False)]
    for count in (int(c) for c in args.tensors.split(",")):
        files += [(f"zip{count}.pt", count, n_floats, False), (f"legacy{count}.pt", count, n_floats, True)]
    for name, count, floats, legacy in files:
        path = args.out / name
        state = {f"blocks.{i}.weight": torch.zeros(floats // count) for i in range(count)}
        torch.save(state, path, _use_new_zipfile_serialization=not legacy)
        print(f"{path}: {count} tensors, {path.stat().st_size / 1e6:.0f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

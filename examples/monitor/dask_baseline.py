"""Profile a partitioned dataset on a Dask cluster, one task per partition, and merge the parts.

Each worker reads only its own partition (streaming, in bounded memory) and writes a partial baseline;
the client merges the partial baselines into one (``bastion.monitor.merge_baselines``), which is the
same baseline as one pass over all the data: the sketches and co-moments merge exactly, no raw rows
ever leave a worker. The same shape works on Ray (``ray.remote`` on ``profile_partition``) or any
engine that can run a Python function per file.

    pip install 'bastion-mlsecops[monitor,dask]'
    python examples/monitor/dask_baseline.py DATA_FOLDER OUT_FOLDER [--scheduler tcp://host:8786]

Without ``--scheduler`` a local cluster of two worker processes is started. Partial baselines go under
``OUT_FOLDER/parts/`` (on a real cluster, give a folder every worker and the client can read, such as a
shared file system), the merged baseline to ``OUT_FOLDER``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bastion import monitor

SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")


def profile_partition(path: str, out: str) -> str:
    """Runs on a worker: the partial baseline of one partition, written to ``out``."""
    monitor.write_baseline(monitor.build_baseline([Path(path)]), Path(out))
    return out


def partitions(folder: Path) -> list[Path]:
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    if not found:
        raise SystemExit(f"no CSV, JSON lines or Parquet files under {folder}")
    return found


def dask_baseline(data: Path, out: Path, scheduler: str | None = None, workers: int = 2) -> monitor.Baseline:
    """Profile every partition under ``data`` on Dask, merge, write the merged baseline to ``out``."""
    from dask.distributed import Client, LocalCluster

    parts_dir = out / "parts"
    files = partitions(data)
    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)
    try:
        with Client(scheduler or cluster) as client:
            futures = [
                client.submit(profile_partition, str(path), str(parts_dir / f"part-{i:05d}"), pure=False)
                for i, path in enumerate(files)
            ]
            written = client.gather(futures)
    finally:
        if cluster is not None:
            cluster.close()
    merged = monitor.merge_baselines([monitor.load_baseline(Path(p)) for p in written])
    monitor.write_baseline(merged, out)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path, help="folder of partitions (CSV, JSON lines, Parquet)")
    parser.add_argument("out", type=Path, help="where the merged baseline goes")
    parser.add_argument("--scheduler", help="address of an existing Dask scheduler")
    parser.add_argument("--workers", type=int, default=2, help="local cluster size (without --scheduler)")
    args = parser.parse_args(argv)
    merged = dask_baseline(args.data, args.out, args.scheduler, args.workers)
    print(f"merged {len(merged.sources)} partitions: {merged.profile.rows} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

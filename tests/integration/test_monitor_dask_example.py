"""The documented scale-out path, run for real: examples/monitor/dask_baseline.py profiles partitions on a
local Dask cluster (two worker processes) and merges them; the result equals one pass over all the data."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("dask.distributed")
pq = pytest.importorskip("pyarrow.parquet")

from bastion import monitor  # noqa: E402
from bastion.monitor.baseline import statistics_json  # noqa: E402
from bastion.monitor.synthetic import make_table  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "monitor"


def _features(baseline: monitor.Baseline) -> dict[str, dict[str, object]]:
    doc = statistics_json(baseline.profile)
    return {f["name"]: f for f in doc["features"]}


def test_dask_partitions_merge_into_the_one_pass_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the workers are fresh processes: they find the example module through PYTHONPATH
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    example = importlib.import_module("dask_baseline")

    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        pq.write_table(make_table(3000, n_numeric=6, n_categorical=2, seed=i), data / f"part-{i}.parquet")

    merged = example.dask_baseline(data, tmp_path / "baseline")
    single = monitor.build_baseline([data])

    assert merged.profile.rows == single.profile.rows == 12_000
    assert len(merged.sources) == 4
    got, want = _features(merged), _features(single)
    assert got.keys() == want.keys()
    compared = 0
    for name, feature in want.items():
        assert got[name]["inferred_type"] == feature["inferred_type"]
        if "numerical_statistics" in feature:
            a, b = got[name]["numerical_statistics"], feature["numerical_statistics"]
            assert isinstance(a, dict) and isinstance(b, dict)
            for key in ("min", "max", "sum"):
                assert a[key] == pytest.approx(b[key], rel=1e-9), (name, key)
            assert a["mean"] == pytest.approx(b["mean"], rel=1e-9, abs=1e-12), name
            compared += 1
    assert compared == 6  # every numeric column
    assert merged.joint is not None and single.joint is not None

    # and the merged baseline written to disk judges a window like the one-pass baseline does
    window = tmp_path / "window.parquet"
    pq.write_table(make_table(3000, n_numeric=6, n_categorical=2, seed=99), window)
    loaded = monitor.load_baseline(tmp_path / "baseline")
    assert monitor.check(loaded, window).status == monitor.check(single, window).status
    assert "dask_baseline" in sys.modules

"""Monitor model inputs and outputs: baselines, data-quality and drift checks, alarms and actions.

The public API, by task::

    from bastion import monitor

    baseline = monitor.build_baseline([Path("train.parquet")])
    monitor.write_baseline(baseline, Path("baseline/"))
    report = monitor.check(monitor.load_baseline(Path("baseline/")), Path("window.csv"))
    report.status, report.drifted_columns, report.to_json()

    spec = monitor.QualitySpec(prediction_column="pred", label_column="label")
    quality = monitor.measure_quality([Path("labelled.parquet")], spec)

Heavy modules (NumPy, PyArrow, SciPy; the ``monitor`` extra) are imported only when used.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from bastion.monitor.alarms import AlarmConfig, AlarmState, MissingData
from bastion.monitor.baseline import Baseline, Constraints, MonitoringConfig, load_baseline, write_baseline
from bastion.monitor.check import CheckReport, Status
from bastion.monitor.profile import DatasetProfile
from bastion.monitor.quality import QualityProfile, QualityReport, QualitySpec

__all__ = [
    "AlarmConfig",
    "AlarmState",
    "Baseline",
    "CheckReport",
    "Constraints",
    "DatasetProfile",
    "MissingData",
    "MonitoringConfig",
    "QualityProfile",
    "QualityReport",
    "QualitySpec",
    "Status",
    "build_baseline",
    "check",
    "load_baseline",
    "measure_quality",
    "profile_paths",
    "write_baseline",
]


def profile_paths(
    paths: Sequence[Path], *, like: DatasetProfile | None = None, exclude: Collection[str] = ()
) -> DatasetProfile:
    """Profile files or folders (CSV, JSON lines, Parquet), streaming, in bounded memory.

    ``exclude`` names columns left out of the profile (a ground-truth label column, for instance).
    """
    from itertools import chain

    from bastion.monitor.profile import profile_batches
    from bastion.monitor.sources import read_batches

    batches = chain.from_iterable(read_batches(p) for p in paths)
    if not exclude:
        return profile_batches(batches, like=like)
    kept = (b.select([n for n in b.schema.names if n not in exclude]) for b in batches)
    return profile_batches(kept, like=like)


def build_baseline(paths: Sequence[Path], *, exclude: Collection[str] = ()) -> Baseline:
    """A baseline (profile + suggested constraints) from training data."""
    from bastion.monitor.baseline import make_baseline

    return make_baseline(profile_paths(paths, exclude=exclude), tuple(str(p) for p in paths))


def measure_quality(paths: Sequence[Path], spec: QualitySpec) -> QualityProfile:
    """Model-quality metrics of labelled data (reads only the prediction, label and score columns)."""
    from itertools import chain

    from bastion.monitor.quality import measure
    from bastion.monitor.sources import read_batches

    return measure(chain.from_iterable(read_batches(p, columns=spec.columns) for p in paths), spec)


def check(baseline: Baseline, data: Path | Sequence[Path]) -> CheckReport:
    """Check a window of data against a baseline, without reading the reference data again."""
    from bastion.monitor.check import check_profile

    paths = [data] if isinstance(data, Path) else list(data)
    return check_profile(baseline, profile_paths(paths, like=baseline.profile))

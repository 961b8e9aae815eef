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

from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.monitor.alarms import AlarmConfig, AlarmState, MissingData
from bastion.monitor.baseline import (
    Baseline,
    Constraints,
    MonitoringConfig,
    load_baseline,
    merge_baselines,
    write_baseline,
)
from bastion.monitor.capture import CaptureReader
from bastion.monitor.check import CheckReport, Status
from bastion.monitor.multivariate import JointMoments, MultivariateResult
from bastion.monitor.profile import DatasetProfile
from bastion.monitor.quality import QualityProfile, QualityReport, QualitySpec

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "AlarmConfig",
    "AlarmState",
    "Baseline",
    "CaptureReader",
    "CheckReport",
    "Constraints",
    "DatasetProfile",
    "JointMoments",
    "MissingData",
    "MonitoringConfig",
    "MultivariateResult",
    "QualityProfile",
    "QualityReport",
    "QualitySpec",
    "Status",
    "baseline_from_batches",
    "build_baseline",
    "check",
    "load_baseline",
    "measure_quality",
    "merge_baselines",
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


def build_baseline(
    paths: Sequence[Path], *, exclude: Collection[str] = (), multivariate: bool = True
) -> Baseline:
    """A baseline (profile + suggested constraints) from training data.

    ``multivariate`` also accumulates the joint co-moments of the multivariate drift detector (sums
    over rows, never a row; ``O(columns²)`` numbers in the baseline).
    """
    from itertools import chain

    from bastion.monitor.sources import read_batches

    batches = chain.from_iterable(read_batches(p) for p in paths)
    return baseline_from_batches(
        batches, tuple(str(p) for p in paths), exclude=exclude, multivariate=multivariate
    )


def baseline_from_batches(
    batches: Iterable[pa.RecordBatch],
    sources: tuple[str, ...] = (),
    *,
    exclude: Collection[str] = (),
    multivariate: bool = True,
) -> Baseline:
    """A baseline from any stream of record batches (captured traffic, for instance)."""
    from bastion.monitor.baseline import make_baseline
    from bastion.monitor.profile import profile_batches

    if exclude:
        batches = (b.select([n for n in b.schema.names if n not in exclude]) for b in batches)
    if not multivariate:
        return make_baseline(profile_batches(batches), sources)
    joint = JointMoments()
    return make_baseline(profile_batches(joint.observe(batches)), sources, joint)


def measure_quality(paths: Sequence[Path], spec: QualitySpec) -> QualityProfile:
    """Model-quality metrics of labelled data (reads only the prediction, label and score columns)."""
    from itertools import chain

    from bastion.monitor.quality import measure
    from bastion.monitor.sources import read_batches

    return measure(chain.from_iterable(read_batches(p, columns=spec.columns) for p in paths), spec)


def check(baseline: Baseline, data: Path | Sequence[Path]) -> CheckReport:
    """Check a window of data against a baseline, without reading the reference data again."""
    from itertools import chain

    from bastion.monitor.check import check_batches
    from bastion.monitor.sources import read_batches

    paths = [data] if isinstance(data, Path) else list(data)
    return check_batches(baseline, chain.from_iterable(read_batches(p) for p in paths))

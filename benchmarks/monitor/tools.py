"""One detector run: ``python tools.py TOOL REFERENCE.parquet CURRENT.parquet`` prints a JSON line.

Runs inside the tool's own virtual environment. Time covers everything from reading both files to
the list of flagged columns (for Bastion too: it profiles the reference, multivariate co-moments
included, instead of reusing a stored baseline, the less favourable case). Each anchor is used with
its documented defaults. ``alarm`` is the window-level verdict: Bastion's status (per-column checks
and the multivariate detector), for the anchors' univariate reports "at least one column flagged".
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any


def _frames(ref: str, cur: str) -> tuple[Any, Any]:
    import pandas as pd

    return pd.read_parquet(ref), pd.read_parquet(cur)


def _categorical(df: Any) -> list[str]:
    return [c for c in df.columns if df[c].dtype == object or str(df[c].dtype) in {"string", "category"}]


def bastion(ref: str, cur: str) -> tuple[list[str], bool]:
    from pathlib import Path

    from bastion.monitor import Status, build_baseline, check

    report = check(build_baseline([Path(ref)]), Path(cur))
    return report.flagged_columns, report.status is Status.ALARM


def evidently(ref: str, cur: str) -> list[str]:
    from evidently.legacy.metric_preset import DataDriftPreset
    from evidently.legacy.report import Report

    r, c = _frames(ref, cur)
    report = Report(metrics=[DataDriftPreset()])
    report.run(reference_data=r, current_data=c)
    for metric in report.as_dict()["metrics"]:
        result = metric["result"]
        if "drift_by_columns" in result:
            return sorted(k for k, v in result["drift_by_columns"].items() if v["drift_detected"])
    raise RuntimeError("no drift table in Evidently's report")


def alibi_detect(ref: str, cur: str) -> list[str]:
    import numpy as np
    from alibi_detect.cd import TabularDrift

    r, c = _frames(ref, cur)
    cats = _categorical(r)
    columns = list(r.columns)
    for name in cats:
        codes = {v: i for i, v in enumerate(sorted(set(r[name].dropna()) | set(c[name].dropna())))}
        r[name] = r[name].map(codes).fillna(-1)
        c[name] = c[name].map(codes).fillna(-1)
    x_ref = r.fillna(-999.0).to_numpy(dtype=np.float32)
    x_cur = c.fillna(-999.0).to_numpy(dtype=np.float32)
    detector = TabularDrift(x_ref, p_val=0.05, categories_per_feature={columns.index(n): None for n in cats})
    result = detector.predict(x_cur, drift_type="feature")
    flags = np.asarray(result["data"]["is_drift"]).astype(bool)
    return sorted(name for name, flag in zip(columns, flags, strict=True) if flag)


def nannyml(ref: str, cur: str) -> list[str]:
    import nannyml as nml

    r, c = _frames(ref, cur)
    cats = _categorical(r)
    calc = nml.UnivariateDriftCalculator(
        column_names=list(r.columns),
        treat_as_categorical=cats,
        continuous_methods=["kolmogorov_smirnov", "jensen_shannon"],
        categorical_methods=["chi2", "jensen_shannon"],
        chunk_number=1,
    )
    calc.fit(r)
    df = calc.calculate(c).filter(period="analysis").to_df()
    flagged = set()
    for column in df.columns:
        if len(column) == 3 and column[2] == "alert" and bool(df[column].any()):
            flagged.add(column[0])
    return sorted(flagged)


def whylogs(ref: str, cur: str) -> list[str]:
    import whylogs as why
    from whylogs.viz.drift.column_drift_algorithms import calculate_drift_scores

    r, c = _frames(ref, cur)
    scores = calculate_drift_scores(
        target_view=why.log(c).view(), reference_view=why.log(r).view(), with_thresholds=True
    )
    return sorted(k for k, v in scores.items() if v and v.get("drift_category") == "DRIFT")


TOOLS: dict[str, Any] = {
    "bastion": bastion,
    "evidently": evidently,
    "alibi-detect": alibi_detect,
    "nannyml": nannyml,
    "whylogs": whylogs,
}

if __name__ == "__main__":
    tool, ref, cur = sys.argv[1:4]
    start = time.perf_counter()
    result = TOOLS[tool](ref, cur)
    seconds = time.perf_counter() - start
    flagged, alarm = result if isinstance(result, tuple) else (result, bool(result))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps({"tool": tool, "flagged": flagged, "alarm": alarm, "seconds": seconds, "peak_mb": peak_mb})
    )

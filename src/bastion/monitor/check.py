"""Compare a window with a baseline: data-quality violations and per-column drift, one status.

The decision rule for drift keeps false alarms in check on both small and very large windows. A
column drifts when (1) its difference from the reference is statistically significant after the
multiple-testing correction across all columns (Benjamini-Hochberg by default; within a column the
tests are Bonferroni-combined) *and* (2) at least one effect size reaches its threshold. A p-value
alone says "different"; on a million rows everything is different. The effect sizes say "by enough
to matter". A window with fewer than ``min_rows`` rows is ``INSUFFICIENT_DATA``, never ``OK``.

The multivariate detector (:mod:`bastion.monitor.multivariate`), when the baseline has one, gives a
separate window-level verdict: it raises the alarm too (``multivariate_drift_check``) but names no
column; attribution stays per column.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bastion.monitor.baseline import Baseline, FeatureConstraint, MonitoringConfig
from bastion.monitor.drift import (
    Histogram,
    Test,
    adjust,
    categorical_tests,
    numeric_tests,
    proportion_increase_p,
)
from bastion.monitor.multivariate import MultivariateResult, ResidualStats, assess, fit
from bastion.monitor.profile import ColumnKind, ColumnProfile, DatasetProfile, profile_batches

if TYPE_CHECKING:
    import pyarrow as pa

REPORT_SCHEMA = "bastion.monitor.check/1"


class Status(enum.Enum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


EXIT_CODES = {Status.OK: 0, Status.ALARM: 1, Status.INSUFFICIENT_DATA: 3}
MULTIVARIATE_CHECK = "multivariate_drift_check"
MULTIVARIATE_FEATURE = "*"  # the feature_name of the multivariate violation: the whole row


@dataclass(frozen=True)
class Violation:
    feature_name: str
    constraint_check_type: str
    description: str
    severity: str = "error"  # "warning" is reported but does not raise the alarm


@dataclass(frozen=True)
class ColumnResult:
    name: str
    kind: str
    drift: bool | None  # None: not tested (too few values, drift disabled, missing column)
    method: str | None = None
    statistic: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    reference_rows: int = 0
    current_rows: int = 0
    histogram: Histogram | None = None
    note: str | None = None


@dataclass(frozen=True)
class CheckReport:
    status: Status
    rows: int
    reference_rows: int
    violations: tuple[Violation, ...]
    columns: tuple[ColumnResult, ...]
    alpha: float
    correction: str
    multivariate: MultivariateResult | None = None  # None: the baseline has no multivariate detector

    @property
    def drifted_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.drift]

    @property
    def flagged_columns(self) -> list[str]:
        """Columns with drift or an error-severity violation (the multivariate verdict names none)."""
        names = {
            v.feature_name
            for v in self.violations
            if v.severity == "error" and v.constraint_check_type != MULTIVARIATE_CHECK
        }
        return sorted(names)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": REPORT_SCHEMA,
            "status": self.status.value,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "drifted_columns": self.drifted_columns,
            "flagged_columns": self.flagged_columns,
            "violations": [
                {
                    "feature_name": v.feature_name,
                    "constraint_check_type": v.constraint_check_type,
                    "description": v.description,
                    "severity": v.severity,
                }
                for v in self.violations
            ],
            "columns": {
                c.name: {
                    "kind": c.kind,
                    "drift": c.drift,
                    "method": c.method,
                    "statistic": c.statistic,
                    "threshold": c.threshold,
                    "p_value": c.p_value,
                    "p_value_adjusted": c.p_value_adjusted,
                    "metrics": c.metrics,
                    "current_rows": c.current_rows,
                    **({"note": c.note} if c.note else {}),
                }
                for c in self.columns
            },
            "multivariate": self.multivariate.to_json() if self.multivariate is not None else None,
            "decision": {"alpha": self.alpha, "correction": self.correction},
        }


def check_batches(baseline: Baseline, batches: Iterable[pa.RecordBatch]) -> CheckReport:
    """Profile a window (streaming, typed like the baseline) and check it, multivariate drift included."""
    mv = baseline.constraints.config.multivariate
    if baseline.joint is None or not mv.enabled:
        return check_profile(baseline, profile_batches(batches, like=baseline.profile))
    model = fit(baseline.joint, mv.explained_variance)
    if isinstance(model, str):
        window = profile_batches(batches, like=baseline.profile)
        return check_profile(baseline, window, MultivariateResult(None, threshold=mv.threshold, note=model))
    stats = ResidualStats(model)
    window = profile_batches(stats.observe(batches), like=baseline.profile)
    return check_profile(baseline, window, assess(stats, mv.threshold, baseline.constraints.config.alpha))


@dataclass
class _Pending:
    column: ColumnResult
    p: float
    exceeded: list[tuple[float, Test, float]]  # (ratio, test, threshold)
    best: tuple[float, Test, float]


def check_profile(
    baseline: Baseline, window: DatasetProfile, multivariate: MultivariateResult | None = None
) -> CheckReport:
    cons = baseline.constraints
    cfg = cons.config
    ref = baseline.profile
    if window.rows < cfg.min_rows:
        return CheckReport(
            Status.INSUFFICIENT_DATA, window.rows, ref.rows, (), (), cfg.alpha, cfg.correction, multivariate
        )
    violations: list[Violation] = []
    results: list[ColumnResult] = []
    pending: list[_Pending] = []
    bonferroni_alpha = cfg.alpha / max(1, len(cons.features))
    for name in window.columns:
        if name not in ref.columns:
            violations.append(
                Violation(name, "extra_column_check", f"column {name!r} is not in the baseline", "warning")
            )
    for feature in cons.features:
        rc = ref.columns[feature.name]
        kind = rc.kind.value if rc.kind else "unknown"
        cc = window.columns.get(feature.name)
        if cc is None:
            violations.append(
                Violation(
                    feature.name, "missing_column_check", f"column {feature.name!r} is missing from the data"
                )
            )
            results.append(ColumnResult(feature.name, kind, None, note="missing column"))
            continue
        present = cc.rows - cc.missing
        if present and cc.invalid / present > 1 - cfg.datatype_check_threshold:
            violations.append(
                Violation(
                    feature.name,
                    "data_type_check",
                    f"{cc.invalid} of {present} values ({cc.invalid / present:.2%}) "
                    f"are not {feature.inferred_type}",
                )
            )
        drop = feature.completeness - cc.completeness
        if drop > cfg.completeness_tolerance:
            p = proportion_increase_p(rc.missing, rc.rows, cc.missing, cc.rows)
            if p < bonferroni_alpha:
                violations.append(
                    Violation(
                        feature.name,
                        "completeness_check",
                        f"completeness {cc.completeness:.4f} is below the baseline's "
                        f"{feature.completeness:.4f} "
                        f"(tolerance {cfg.completeness_tolerance}, p={p:.2g})",
                    )
                )
        if rc.kind is ColumnKind.NUMERIC and cc.sketch.n:
            violations.extend(_numeric_constraints(feature, rc, cc, cfg, bonferroni_alpha))
        if rc.kind is ColumnKind.STRING and feature.domains is not None and cc.categories.total:
            domain = set(feature.domains)
            outside = sum(c for v, c in cc.categories.counts.items() if v not in domain) + cc.categories.other
            share = outside / cc.categories.total
            if share > 1 - cfg.domain_content_threshold:
                new = sorted(v for v in cc.categories.counts if v not in domain)[:5]
                violations.append(
                    Violation(
                        feature.name,
                        "categorical_values_check",
                        f"{share:.2%} of values are outside the baseline domain "
                        f"(e.g. {', '.join(map(repr, new))})",
                    )
                )
        if not feature.drift:
            results.append(ColumnResult(feature.name, kind, None, note="drift check disabled"))
            continue
        if rc.kind is None or min(_present(rc), _present(cc)) < 2:
            results.append(
                ColumnResult(feature.name, kind, None, current_rows=cc.rows, note="too few values to compare")
            )
            continue
        pending.append(_evaluate_drift(feature.name, kind, rc, cc, cfg))
    adjusted = adjust([p.p for p in pending], cfg.correction)
    for item, p_adj in zip(pending, adjusted, strict=True):
        chosen = max(item.exceeded, key=lambda e: e[0]) if item.exceeded else item.best
        _, test, threshold = chosen
        drift = p_adj <= cfg.alpha and bool(item.exceeded)
        col = item.column
        results.append(
            ColumnResult(
                col.name,
                col.kind,
                drift,
                method=test.method,
                statistic=test.statistic,
                threshold=threshold,
                p_value=item.p,
                p_value_adjusted=p_adj,
                metrics=col.metrics,
                reference_rows=col.reference_rows,
                current_rows=col.current_rows,
                histogram=col.histogram,
            )
        )
        if drift:
            violations.append(
                Violation(
                    col.name,
                    "baseline_drift_check",
                    f"{test.method} {test.statistic:.4g} >= {threshold} "
                    f"(p={item.p:.2g}, adjusted {p_adj:.2g})",
                )
            )
    if multivariate is not None and multivariate.drift:
        top = ", ".join(list(multivariate.contributions)[:3])
        violations.append(
            Violation(
                MULTIVARIATE_FEATURE,
                MULTIVARIATE_CHECK,
                f"{multivariate.method}: mean reconstruction error {multivariate.current_error:.4g} is "
                f"{multivariate.statistic:.1%} above the reference's {multivariate.reference_error:.4g} "
                f"(threshold {multivariate.threshold:.0%}, p={multivariate.p_value:.2g}); "
                f"largest rise in {top}",
            )
        )
    order = {f.name: i for i, f in enumerate(cons.features)}
    results.sort(key=lambda r: order.get(r.name, len(order)))
    status = Status.ALARM if any(v.severity == "error" for v in violations) else Status.OK
    return CheckReport(
        status,
        window.rows,
        ref.rows,
        tuple(violations),
        tuple(results),
        cfg.alpha,
        cfg.correction,
        multivariate,
    )


def _present(col: ColumnProfile) -> int:
    return col.sketch.n if col.kind is ColumnKind.NUMERIC else col.categories.total


def _evaluate_drift(
    name: str, kind: str, rc: ColumnProfile, cc: ColumnProfile, cfg: MonitoringConfig
) -> _Pending:
    t = cfg.thresholds
    if rc.kind is ColumnKind.NUMERIC:
        tests, hist = numeric_tests(rc, cc, cfg.outlier_margin)
        limits = {"wasserstein": t.wasserstein, "psi": t.psi, "tail_excess": t.tail_excess}
        primary = "wasserstein"
    else:
        tests, hist, _ = categorical_tests(rc, cc)
        limits = {"psi": t.psi, "jensen_shannon": t.jensen_shannon}
        primary = "jensen_shannon"
    p_values = [x.p_value for x in tests if x.p_value is not None]
    p = min(1.0, min(p_values) * len(p_values))
    scored = [(x.statistic / limits[x.method], x, limits[x.method]) for x in tests if x.method in limits]
    exceeded = [s for s in scored if s[1].statistic >= s[2]]
    best = next(s for s in scored if s[1].method == primary)
    column = ColumnResult(
        name,
        kind,
        None,
        metrics={x.method: x.statistic for x in tests}
        | {f"p_{x.method}": x.p_value for x in tests if x.p_value is not None},
        reference_rows=_present(rc),
        current_rows=cc.rows,
        histogram=hist,
    )
    return _Pending(column, p, exceeded, best)


def _numeric_constraints(
    feature: FeatureConstraint, rc: ColumnProfile, cc: ColumnProfile, cfg: MonitoringConfig, alpha: float
) -> list[Violation]:
    import numpy as np
    from scipy.special import bdtrc

    out = []
    name = feature.name
    sketch = cc.sketch
    if feature.is_non_negative and cc.moments.minimum < 0:
        negatives = round(float(sketch.cdf(np.array([0.0]), strict=True)[0]) * sketch.n)
        out.append(
            Violation(
                name,
                "non_negative_check",
                f"{max(negatives, 1)} negative value(s); minimum {cc.moments.minimum:.6g}",
            )
        )
    if feature.range is not None:
        lo, hi = feature.range
        slack = cfg.outlier_margin * rc.moments.std
        below = float(sketch.cdf(np.array([lo - slack]), strict=True)[0])
        above = 1.0 - float(sketch.cdf(np.array([hi + slack]))[0])
        share = below + above
        hits = round(share * sketch.n)
        expected = min(1.0, 2.0 / (_present(rc) + 1))
        p = float(bdtrc(hits - 1, sketch.n, expected)) if hits > 0 else 1.0
        if share > cfg.range_tolerance and p < alpha:
            out.append(
                Violation(
                    name,
                    "range_check",
                    f"{share:.2%} of values are outside the baseline range [{lo:.6g}, {hi:.6g}] (p={p:.2g})",
                )
            )
    return out

"""Baselines: a stored profile plus user-editable constraints, written in SageMaker-compatible form.

A baseline folder holds three files:

* ``statistics.json``  SageMaker Model Monitor's statistics (same field names: ``inferred_type``,
  ``numerical_statistics.common.num_present``, ``distribution.kll``, ``string_statistics``...);
* ``constraints.json`` SageMaker's constraints (``completeness``, ``num_constraints.is_non_negative``,
  ``string_constraints.domains``, ``monitoring_config``) plus a ``bastion`` section per feature
  (``range``, ``drift``) and at the top (significance level, effect-size thresholds). Edit it freely;
  ``bastion monitor check`` reads it back and rejects fields it does not know;
* ``bastion-baseline.json`` the mergeable profile (moments, KLL sketches, category counts) that
  drift checks compare a window against, so the reference data is never read again, and the joint
  co-moments of the multivariate detector (:mod:`bastion.monitor.multivariate`; sums over rows,
  never a row).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bastion.errors import ConfigError, InputError
from bastion.monitor.multivariate import JointMoments
from bastion.monitor.profile import ColumnKind, ColumnProfile, DatasetProfile

BASELINE_SCHEMA = "bastion.monitor.baseline/1"
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
BASELINE_FILE = "bastion-baseline.json"
MAX_DOMAIN = 50  # categorical columns with more distinct values get no suggested domain
TOP_K = 20  # categories listed in statistics.json (the profile keeps more)


@dataclass(frozen=True)
class Thresholds:
    """Effect sizes at or above which a statistically significant difference counts as drift."""

    wasserstein: float = 0.1  # Wasserstein-1 distance / reference standard deviation
    psi: float = 0.2  # population stability index on reference deciles (or categories)
    tail_excess: float = 0.005  # extra share of rows beyond the reference's 0.1 % / 99.9 % quantiles
    jensen_shannon: float = 0.1  # Jensen-Shannon distance (base 2) between category frequencies


@dataclass(frozen=True)
class MultivariateConfig:
    """The PCA reconstruction-error detector (see :mod:`bastion.monitor.multivariate`)."""

    enabled: bool = True
    explained_variance: float = 0.95  # share of the reference variance the principal components keep
    threshold: float = 0.2  # relative rise of the mean reconstruction error that counts as drift


@dataclass(frozen=True)
class MonitoringConfig:
    alpha: float = 0.01  # false discovery rate (or family-wise error rate with bonferroni)
    correction: str = "benjamini-hochberg"  # or "bonferroni", "none"
    min_rows: int = 30  # fewer rows in a window: INSUFFICIENT_DATA
    completeness_tolerance: float = 0.02  # allowed drop in completeness before a violation
    datatype_check_threshold: float = 1.0  # share of present values that must match the type
    domain_content_threshold: float = 0.99  # share of values that must be in the baseline's domain
    range_tolerance: float = 0.001  # share of values allowed outside the baseline range
    outlier_margin: float = 0.25  # range and tail bounds are widened by this many reference std
    thresholds: Thresholds = field(default_factory=Thresholds)
    multivariate: MultivariateConfig = field(default_factory=MultivariateConfig)


@dataclass(frozen=True)
class FeatureConstraint:
    name: str
    inferred_type: str
    completeness: float
    is_non_negative: bool | None = None
    range: tuple[float, float] | None = None
    domains: tuple[str, ...] | None = None
    drift: bool = True


@dataclass(frozen=True)
class Constraints:
    features: tuple[FeatureConstraint, ...]
    config: MonitoringConfig = field(default_factory=MonitoringConfig)

    def feature(self, name: str) -> FeatureConstraint | None:
        return next((f for f in self.features if f.name == name), None)


@dataclass(frozen=True)
class Baseline:
    profile: DatasetProfile
    constraints: Constraints
    created: str
    sources: tuple[str, ...] = ()
    joint: JointMoments | None = None  # None: built without the multivariate detector


def suggest_constraints(profile: DatasetProfile, config: MonitoringConfig | None = None) -> Constraints:
    features = []
    for name, col in profile.columns.items():
        feature = FeatureConstraint(name=name, inferred_type=col.inferred_type, completeness=col.completeness)
        if col.kind is ColumnKind.NUMERIC and col.moments.count:
            feature = replace(
                feature,
                is_non_negative=col.moments.minimum >= 0,
                range=(col.moments.minimum, col.moments.maximum),
            )
        elif (
            col.kind is ColumnKind.STRING
            and col.categories.other == 0
            and len(col.categories.counts) <= MAX_DOMAIN
        ):
            feature = replace(feature, domains=tuple(sorted(col.categories.counts)))
        features.append(feature)
    return Constraints(tuple(features), config or MonitoringConfig())


def make_baseline(
    profile: DatasetProfile, sources: tuple[str, ...] = (), joint: JointMoments | None = None
) -> Baseline:
    if profile.rows == 0:
        raise InputError(
            "the baseline data has no rows", hint="a baseline needs representative training data"
        )
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return Baseline(profile, suggest_constraints(profile), created, sources, joint)


# -- SageMaker-compatible statistics -------------------------------------------------------------


def statistics_json(profile: DatasetProfile) -> dict[str, Any]:
    import numpy as np

    features: list[dict[str, Any]] = []
    for name, col in profile.columns.items():
        common = {"num_present": col.present, "num_missing": col.missing + col.invalid}
        entry: dict[str, Any] = {"name": name, "inferred_type": col.inferred_type}
        if col.kind is ColumnKind.NUMERIC:
            m = col.moments
            stats: dict[str, Any] = {"common": common}
            if m.count:
                edges = np.linspace(m.minimum, m.maximum, 11)
                cdf = col.sketch.cdf(edges)
                cdf[0] = 0.0
                buckets = [
                    {
                        "lower_bound": float(lo),
                        "upper_bound": float(hi),
                        "count": float((c1 - c0) * col.sketch.n),
                    }
                    for lo, hi, c0, c1 in zip(edges[:-1], edges[1:], cdf[:-1], cdf[1:], strict=True)
                ]
                quantiles = col.sketch.quantile(np.array([0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]))
                stats.update(
                    mean=m.mean,
                    sum=m.total,
                    std_dev=m.std,
                    min=m.minimum,
                    max=m.maximum,
                    distribution={
                        "kll": {
                            "buckets": buckets,
                            "sketch": {
                                "parameters": {"c": col.sketch.c, "k": float(col.sketch.k)},
                                "data": [items.tolist() for items in col.sketch.levels],
                            },
                        }
                    },
                    bastion_quantiles={
                        f"p{int(q * 100):02d}": float(v)
                        for q, v in zip([0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99], quantiles, strict=True)
                    },
                )
            entry["numerical_statistics"] = stats
        elif col.kind is ColumnKind.STRING:
            top = col.categories.top(TOP_K)
            rest = col.categories.total - sum(c for _, c in top)
            buckets_s = [{"value": value, "count": count} for value, count in top]
            if rest:
                buckets_s.append({"value": "__other__", "count": rest})
            entry["string_statistics"] = {
                "common": common,
                "distinct_count": float(len(col.categories.counts)),
                "distribution": {"categorical": {"buckets": buckets_s}},
            }
        features.append(entry)
    return {"version": 0.0, "dataset": {"item_count": profile.rows}, "features": features}


# -- constraints.json (read and write) ----------------------------------------------------------


def constraints_json(constraints: Constraints) -> dict[str, Any]:
    cfg = constraints.config
    features = []
    for f in constraints.features:
        entry: dict[str, Any] = {
            "name": f.name,
            "inferred_type": f.inferred_type,
            "completeness": f.completeness,
        }
        if f.is_non_negative is not None:
            entry["num_constraints"] = {"is_non_negative": f.is_non_negative}
        if f.domains is not None:
            entry["string_constraints"] = {"domains": list(f.domains)}
        entry["bastion"] = {"drift": f.drift, "range": list(f.range) if f.range else None}
        features.append(entry)
    t = cfg.thresholds
    return {
        "version": 0.0,
        "features": features,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": cfg.datatype_check_threshold,
            "domain_content_threshold": cfg.domain_content_threshold,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": t.psi,
                "comparison_method": "Robust",
            },
        },
        "bastion": {
            "alpha": cfg.alpha,
            "correction": cfg.correction,
            "min_rows": cfg.min_rows,
            "completeness_tolerance": cfg.completeness_tolerance,
            "range_tolerance": cfg.range_tolerance,
            "outlier_margin": cfg.outlier_margin,
            "thresholds": {
                "wasserstein": t.wasserstein,
                "psi": t.psi,
                "tail_excess": t.tail_excess,
                "jensen_shannon": t.jensen_shannon,
            },
            "multivariate": {
                "enabled": cfg.multivariate.enabled,
                "explained_variance": cfg.multivariate.explained_variance,
                "threshold": cfg.multivariate.threshold,
            },
        },
    }


def _fields(where: str, data: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a JSON object")
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {sorted(unknown)}", hint=f"known fields: {sorted(allowed)}"
        )
    return data


def _number(where: str, value: Any, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= float(value) <= hi:
        raise ConfigError(f"{where} must be a number in [{lo}, {hi}], not {value!r}")
    return float(value)


def parse_constraints(data: Any, where: str = CONSTRAINTS_FILE) -> Constraints:
    top = _fields(where, data, {"version", "features", "monitoring_config", "bastion"})
    mc = _fields(
        f"{where}: monitoring_config",
        top.get("monitoring_config", {}),
        {"evaluate_constraints", "emit_metrics", "datatype_check_threshold", "domain_content_threshold",
         "distribution_constraints"},
    )  # fmt: skip
    bc = _fields(
        f"{where}: bastion",
        top.get("bastion", {}),
        {
            "alpha",
            "correction",
            "min_rows",
            "completeness_tolerance",
            "range_tolerance",
            "outlier_margin",
            "thresholds",
            "multivariate",
        },
    )
    th = _fields(
        f"{where}: bastion.thresholds", bc.get("thresholds", {}), set(Thresholds.__dataclass_fields__)
    )
    mv = _fields(
        f"{where}: bastion.multivariate",
        bc.get("multivariate", {}),
        set(MultivariateConfig.__dataclass_fields__),
    )
    defaults = MonitoringConfig()
    enabled = mv.get("enabled", defaults.multivariate.enabled)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: bastion.multivariate.enabled must be true or false")
    multivariate = MultivariateConfig(
        enabled=enabled,
        explained_variance=_number(
            f"{where}: bastion.multivariate.explained_variance",
            mv.get("explained_variance", defaults.multivariate.explained_variance),
            0.01,
            0.9999,
        ),
        threshold=_number(
            f"{where}: bastion.multivariate.threshold",
            mv.get("threshold", defaults.multivariate.threshold),
            0.0,
        ),
    )
    correction = bc.get("correction", defaults.correction)
    if correction not in {"benjamini-hochberg", "bonferroni", "none"}:
        raise ConfigError(f"{where}: bastion.correction must be benjamini-hochberg, bonferroni or none")
    thresholds = Thresholds(**{k: _number(f"{where}: bastion.thresholds.{k}", v, 0.0) for k, v in th.items()})
    config = MonitoringConfig(
        alpha=_number(f"{where}: bastion.alpha", bc.get("alpha", defaults.alpha), 0.0, 1.0),
        correction=str(correction),
        min_rows=int(_number(f"{where}: bastion.min_rows", bc.get("min_rows", defaults.min_rows), 1)),
        completeness_tolerance=_number(
            f"{where}: bastion.completeness_tolerance",
            bc.get("completeness_tolerance", defaults.completeness_tolerance),
            0.0,
            1.0,
        ),
        datatype_check_threshold=_number(
            f"{where}: datatype_check_threshold",
            mc.get("datatype_check_threshold", defaults.datatype_check_threshold),
            0.0,
            1.0,
        ),
        domain_content_threshold=_number(
            f"{where}: domain_content_threshold",
            mc.get("domain_content_threshold", defaults.domain_content_threshold),
            0.0,
            1.0,
        ),
        range_tolerance=_number(
            f"{where}: bastion.range_tolerance", bc.get("range_tolerance", defaults.range_tolerance), 0.0, 1.0
        ),
        outlier_margin=_number(
            f"{where}: bastion.outlier_margin", bc.get("outlier_margin", defaults.outlier_margin), 0.0
        ),
        thresholds=thresholds,
        multivariate=multivariate,
    )
    features_raw = top.get("features", [])
    if not isinstance(features_raw, list):
        raise ConfigError(f"{where}: features must be a list")
    features = []
    for i, raw in enumerate(features_raw):
        fw = f"{where}: features[{i}]"
        f = _fields(
            fw,
            raw,
            {"name", "inferred_type", "completeness", "num_constraints", "string_constraints", "bastion",
             "monitoring_config_overrides"},
        )  # fmt: skip
        if not isinstance(f.get("name"), str):
            raise ConfigError(f"{fw}: name must be a string")
        if f.get("inferred_type") not in {"Integral", "Fractional", "String", "Unknown"}:
            raise ConfigError(f"{fw}: inferred_type must be Integral, Fractional, String or Unknown")
        num = _fields(f"{fw}.num_constraints", f.get("num_constraints", {}), {"is_non_negative"})
        strc = _fields(f"{fw}.string_constraints", f.get("string_constraints", {}), {"domains"})
        bf = _fields(f"{fw}.bastion", f.get("bastion", {}), {"drift", "range"})
        domains = strc.get("domains")
        if domains is not None and (
            not isinstance(domains, list) or not all(isinstance(d, str) for d in domains)
        ):
            raise ConfigError(f"{fw}.string_constraints.domains must be a list of strings")
        rng = bf.get("range")
        if rng is not None and (
            not isinstance(rng, list) or len(rng) != 2 or _number(f"{fw}.bastion.range", rng[0]) > _number(
                f"{fw}.bastion.range", rng[1])
        ):  # fmt: skip
            raise ConfigError(f"{fw}.bastion.range must be [min, max] with min <= max")
        non_negative = num.get("is_non_negative")
        if non_negative is not None and not isinstance(non_negative, bool):
            raise ConfigError(f"{fw}.num_constraints.is_non_negative must be true or false")
        drift = bf.get("drift", True)
        if not isinstance(drift, bool):
            raise ConfigError(f"{fw}.bastion.drift must be true or false")
        features.append(
            FeatureConstraint(
                name=f["name"],
                inferred_type=f["inferred_type"],
                completeness=_number(f"{fw}.completeness", f.get("completeness", 0.0), 0.0, 1.0),
                is_non_negative=non_negative,
                range=(float(rng[0]), float(rng[1])) if rng is not None else None,
                domains=tuple(domains) if domains is not None else None,
                drift=drift,
            )
        )
    return Constraints(tuple(features), config)


# -- files ---------------------------------------------------------------------------------------


def write_baseline(baseline: Baseline, out: Path) -> list[Path]:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {out}: {exc.strerror or exc}") from None
    documents = {
        STATISTICS_FILE: statistics_json(baseline.profile),
        CONSTRAINTS_FILE: constraints_json(baseline.constraints),
        BASELINE_FILE: {
            "schema_version": BASELINE_SCHEMA,
            "created": baseline.created,
            "sources": list(baseline.sources),
            "profile": baseline.profile.to_json(),
            **({"joint": baseline.joint.to_json()} if baseline.joint is not None else {}),
        },
    }
    written = []
    for name, doc in documents.items():
        path = out / name
        path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{path} is missing",
            hint="create a baseline with `bastion monitor baseline --data ... --out DIR`",
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not readable JSON: {exc}") from None


def load_baseline(folder: Path) -> Baseline:
    if not folder.is_dir():
        raise InputError(f"baseline folder {folder} does not exist")
    raw = _read_json(folder / BASELINE_FILE)
    if not isinstance(raw, dict) or raw.get("schema_version") != BASELINE_SCHEMA:
        version = raw.get("schema_version") if isinstance(raw, dict) else None
        raise ConfigError(f"{folder / BASELINE_FILE}: unsupported schema_version {version!r}")
    try:
        profile = DatasetProfile.from_json(raw["profile"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{folder / BASELINE_FILE}: malformed profile: {exc!r}") from None
    joint = None
    if raw.get("joint") is not None:
        try:
            joint = JointMoments.from_json(raw["joint"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{folder / BASELINE_FILE}: malformed joint moments: {exc!r}") from None
    constraints = parse_constraints(_read_json(folder / CONSTRAINTS_FILE), str(folder / CONSTRAINTS_FILE))
    for feature in constraints.features:
        col = profile.columns.get(feature.name)
        if col is None:
            raise ConfigError(
                f"{folder / CONSTRAINTS_FILE}: feature {feature.name!r} is not in the baseline profile"
            )
        expected = {
            "Integral": ColumnKind.NUMERIC,
            "Fractional": ColumnKind.NUMERIC,
            "String": ColumnKind.STRING,
        }
        if expected.get(feature.inferred_type) is not col.kind:
            raise ConfigError(
                f"{folder / CONSTRAINTS_FILE}: feature {feature.name!r} is {feature.inferred_type} "
                f"but the profile holds a {col.kind.value if col.kind else 'untyped'} column"
            )
    return Baseline(
        profile, constraints, str(raw.get("created", "")), tuple(map(str, raw.get("sources", []))), joint
    )


def merge_profiles(profiles: list[DatasetProfile]) -> DatasetProfile:
    merged = DatasetProfile()
    for profile in profiles:
        merged.merge(profile)
    return merged


def merge_joints(joints: list[JointMoments | None]) -> JointMoments | None:
    """The joint moments of all parts; None when a part has none or the parts' dimensions differ."""
    merged: JointMoments | None = JointMoments()
    for joint in joints:
        if joint is None or merged is None:
            return None
        merged = merged.merge(joint)
    return merged


def merge_baselines(parts: list[Baseline]) -> Baseline:
    """One baseline from baselines profiled separately (per file, partition, process or machine): the
    same profile as one pass over all the data, constraints suggested afresh from it."""
    joint = merge_joints([b.joint for b in parts])
    return make_baseline(
        merge_profiles([b.profile for b in parts]), tuple(s for b in parts for s in b.sources), joint
    )


def column_for(baseline: Baseline, name: str) -> ColumnProfile:
    return baseline.profile.columns[name]

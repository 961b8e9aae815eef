"""Drift statistics between a reference column and a current column, both given as profiles.

Numeric columns (from KLL sketches): Kolmogorov-Smirnov (statistic and p-value, the sketch's rank
error subtracted first), Wasserstein-1 normalised by the reference standard deviation, PSI,
Jensen-Shannon distance and Hellinger distance on reference deciles, and ``tail_excess``: the extra
share of current rows beyond the reference's 0.1 % and 99.9 % quantiles widened by ``margin``
reference standard deviations (one-sided binomial test), which is what catches a small injected
cluster that moves no decile, while a negligible shift of a bounded feature does not count.
Categorical columns: chi-squared test of homogeneity on the categories (plus "other" and
"unseen"), PSI, Jensen-Shannon and Hellinger. Multiple testing across features is corrected in :func:`adjust`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bastion.monitor.profile import ColumnProfile

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]

EPS = 1e-4  # floor on bin shares in PSI (so an empty bin is a large, finite contribution)
TAIL = 0.001
UNSEEN = "__unseen__"
OTHER = "__other__"


@dataclass(frozen=True)
class Test:
    """One method's result on one column: the statistic, its p-value (None: effect size only)."""

    method: str
    statistic: float
    p_value: float | None


@dataclass(frozen=True)
class Histogram:
    """Reference and current shares on common bins, for reports and plots."""

    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]


def _binned(ref: FloatArray, cur: FloatArray) -> dict[str, float]:
    import numpy as np

    r = np.maximum(ref, EPS)
    c = np.maximum(cur, EPS)
    r, c = r / r.sum(), c / c.sum()
    psi = float(((c - r) * np.log(c / r)).sum())
    m = 0.5 * (ref + cur)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_r = np.where(ref > 0, ref * np.log2(ref / m), 0.0).sum()
        kl_c = np.where(cur > 0, cur * np.log2(cur / m), 0.0).sum()
    js = math.sqrt(max(0.0, 0.5 * float(kl_r + kl_c)))
    hellinger = math.sqrt(max(0.0, 1.0 - float(np.sqrt(ref * cur).sum())))
    return {"psi": psi, "jensen_shannon": js, "hellinger": hellinger}


def kolmogorov_sf(x: float) -> float:
    """P(sqrt(n) D > x) for the limiting Kolmogorov distribution."""
    from scipy.special import kolmogorov

    return float(kolmogorov(x))


def numeric_tests(
    ref: ColumnProfile, cur: ColumnProfile, margin: float = 0.25
) -> tuple[list[Test], Histogram]:
    import numpy as np
    from scipy.special import bdtrc

    rs, cs = ref.sketch, cur.sketch
    n, m = rs.n, cs.n
    points = np.union1d(rs.items(), cs.items())
    d = float(np.abs(rs.cdf(points) - cs.cdf(points)).max())
    d_eff = max(0.0, d - rs.rank_error - cs.rank_error)
    p_ks = kolmogorov_sf(math.sqrt(n * m / (n + m)) * d_eff) if d_eff > 0 else 1.0

    grid = (np.arange(2000) + 0.5) / 2000
    scale = ref.moments.std if ref.moments.std > 0 else max(abs(ref.moments.mean), 1.0)
    wasserstein = float(np.abs(rs.quantile(grid) - cs.quantile(grid)).mean()) / scale

    edges = np.unique(rs.quantile(np.linspace(0.1, 0.9, 9)))
    ref_cdf = np.concatenate([[0.0], rs.cdf(edges), [1.0]])
    cur_cdf = np.concatenate([[0.0], cs.cdf(edges), [1.0]])
    ref_bins, cur_bins = np.diff(ref_cdf), np.diff(cur_cdf)
    binned = _binned(ref_bins, cur_bins)

    lo, hi = rs.quantile(np.array([TAIL, 1 - TAIL]))
    lo, hi = lo - margin * scale, hi + margin * scale
    ref_tail = float(rs.cdf(np.array([lo]), strict=True)[0] + 1 - rs.cdf(np.array([hi]))[0])
    cur_tail = float(cs.cdf(np.array([lo]), strict=True)[0] + 1 - cs.cdf(np.array([hi]))[0])
    excess = cur_tail - ref_tail
    expected = min(max(ref_tail + rs.rank_error, 1.0 / (n + 1)), 1.0)
    hits = round(cur_tail * m)
    p_tail = float(bdtrc(hits - 1, m, expected)) if hits > 0 else 1.0

    tests = [
        Test("kolmogorov_smirnov", d, p_ks),
        Test("wasserstein", wasserstein, None),
        Test("psi", binned["psi"], None),
        Test("jensen_shannon", binned["jensen_shannon"], None),
        Test("hellinger", binned["hellinger"], None),
        Test("tail_excess", excess, p_tail),
    ]
    labels = tuple(
        f"{a:.4g}..{b:.4g}"
        for a, b in zip(
            [float(ref.moments.minimum), *edges.tolist()],
            [*edges.tolist(), float(ref.moments.maximum)],
            strict=True,
        )
    )
    hist = Histogram(labels, tuple(ref_bins.tolist()), tuple(cur_bins.tolist()))
    return tests, hist


def categorical_tests(ref: ColumnProfile, cur: ColumnProfile) -> tuple[list[Test], Histogram, float]:
    """Tests on category shares; also returns the share of current values never seen in the reference."""
    import numpy as np
    from scipy.special import chdtrc

    known = ref.categories.counts
    labels = sorted(known, key=lambda v: (-known[v], v))
    cur_counts = cur.categories.counts
    ref_row = [known[v] for v in labels] + [ref.categories.other, 0]
    unseen = sum(c for v, c in cur_counts.items() if v not in known) + cur.categories.other
    cur_row = [cur_counts.get(v, 0) for v in labels] + [0, 0]
    if ref.categories.other:  # values outside the kept top may be among "other": not "unseen"
        cur_row[-2] = unseen
    else:
        cur_row[-1] = unseen
    table = np.array([ref_row, cur_row], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]
    totals = table.sum(axis=1, keepdims=True)
    p_chi = 1.0
    stat = 0.0
    if table.shape[1] > 1 and totals.min() > 0:
        expected = totals * table.sum(axis=0, keepdims=True) / table.sum()
        stat = float(((table - expected) ** 2 / expected).sum())
        p_chi = float(chdtrc(table.shape[1] - 1, stat))
    shares = table / np.maximum(totals, 1)
    binned = _binned(shares[0], shares[1])
    tests = [
        Test("chi_squared", stat, p_chi),
        Test("psi", binned["psi"], None),
        Test("jensen_shannon", binned["jensen_shannon"], None),
        Test("hellinger", binned["hellinger"], None),
    ]
    hist_labels = [*labels, OTHER, UNSEEN]
    keep = np.array([r + c > 0 for r, c in zip(ref_row, cur_row, strict=True)])
    hist = Histogram(
        tuple(label for label, k in zip(hist_labels, keep, strict=True) if k),
        tuple(shares[0].tolist()),
        tuple(shares[1].tolist()),
    )
    total_cur = cur.categories.total
    return tests, hist, (unseen / total_cur if total_cur else 0.0)


def proportion_increase_p(ref_hits: int, ref_n: int, cur_hits: int, cur_n: int) -> float:
    """One-sided p-value that the current proportion exceeds the reference one (pooled z-test)."""
    from scipy.special import ndtr

    if ref_n == 0 or cur_n == 0:
        return 1.0
    p1, p2 = ref_hits / ref_n, cur_hits / cur_n
    pooled = (ref_hits + cur_hits) / (ref_n + cur_n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / ref_n + 1 / cur_n))
    if se == 0:
        return 1.0 if p2 <= p1 else 0.0
    return float(1.0 - ndtr((p2 - p1) / se))


def adjust(p_values: Sequence[float], method: str) -> list[float]:
    """Adjusted p-values: Benjamini-Hochberg (FDR), Bonferroni (FWER) or none."""
    k = len(p_values)
    if method == "none" or k == 0:
        return list(p_values)
    if method == "bonferroni":
        return [min(1.0, p * k) for p in p_values]
    order = sorted(range(k), key=lambda i: p_values[i])
    adjusted = [1.0] * k
    running = 1.0
    for rank in range(k, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * k / rank)
        adjusted[i] = min(1.0, running)
    return adjusted

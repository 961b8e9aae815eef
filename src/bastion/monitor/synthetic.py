"""Synthetic tabular data with known drift, for the demo, the tests and the benchmark.

``make_table`` draws mixed columns (normal, log-normal, uniform, Poisson counts, categorical with
skewed frequencies; ``num_04`` is correlated with ``num_00``, r = 0.8); ``apply_scenario`` changes a
copy in a known way and returns the columns whose distribution truly changed, so precision and
recall of a detector can be measured. ``correlation_flip`` changes no column's distribution, only the
joint one (the correlation of ``num_00`` and ``num_04`` becomes -0.8): no column should be flagged,
but the window should alarm (``Scenario.joint_drift``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

SCENARIOS = (
    "none",
    "negligible",
    "mean_shift",
    "variance_change",
    "category_frequency",
    "new_category",
    "missing_spike",
    "one_feature",
    "cluster",
    "correlation_flip",
)
CORRELATION = 0.8  # between num_00 and num_04
CATEGORIES = ("alpha", "bravo", "charlie", "delta", "echo")
CATEGORY_P = (0.4, 0.25, 0.15, 0.12, 0.08)


@dataclass(frozen=True)
class Scenario:
    name: str
    table: pa.Table
    drifted: frozenset[str]
    joint_drift: bool = False  # the joint distribution changed (True whenever a column did, too)


def column_names(n_numeric: int, n_categorical: int) -> tuple[list[str], list[str]]:
    return [f"num_{i:02d}" for i in range(n_numeric)], [f"cat_{i:02d}" for i in range(n_categorical)]


def _numeric(rng: np.random.Generator, i: int, n: int) -> npt.NDArray[np.float64]:
    import numpy as np

    family = i % 4
    if family == 0:
        return rng.normal(10.0 * i, 1.0 + i % 3, n)
    if family == 1:
        return rng.lognormal(1.0, 0.5, n)
    if family == 2:
        return rng.uniform(-5.0, 5.0 + i, n)
    return rng.poisson(3.0 + i % 5, n).astype(np.float64)


def make_table(rows: int, n_numeric: int = 24, n_categorical: int = 6, seed: int = 0) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    nums, cats = column_names(n_numeric, n_categorical)
    data: dict[str, pa.Array] = {}
    for i, name in enumerate(nums):
        values = _numeric(rng, i, rows)
        if i == 4:  # N(40, 2) like the other normal columns, but correlated with num_00 (N(0, 1))
            noise = (values - 40.0) / 2.0
            values = 40.0 + 2.0 * (
                CORRELATION * data[nums[0]].to_numpy() + (1 - CORRELATION**2) ** 0.5 * noise
            )
        data[name] = pa.array(values)
    for name in cats:
        codes = rng.choice(len(CATEGORIES), size=rows, p=CATEGORY_P)
        data[name] = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(CATEGORIES)).cast(
            pa.string()
        )
    return pa.table(data)


def apply_scenario(table: pa.Table, scenario: str, seed: int = 1) -> Scenario:
    """A copy of ``table`` (a fresh draw from the same generator) changed as ``scenario`` says."""
    import numpy as np
    import pyarrow as pa

    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    rng = np.random.default_rng(seed + 1000)
    nums = [n for n in table.column_names if n.startswith("num_")]
    cats = [n for n in table.column_names if n.startswith("cat_")]
    rows = table.num_rows
    cols = {name: table.column(name).combine_chunks() for name in table.column_names}
    drifted: set[str] = set()

    def num(name: str) -> npt.NDArray[np.float64]:
        return np.asarray(cols[name].to_numpy(zero_copy_only=False), dtype=np.float64)

    def std(name: str) -> float:
        return float(np.nanstd(num(name)))

    if scenario == "negligible":  # practically irrelevant: 0.02 sd shifts, 1 % scale, 0.5 pt frequency moves
        for name in nums[::2]:
            cols[name] = pa.array(num(name) + 0.02 * std(name))
        for name in nums[1::4]:
            x = num(name)
            cols[name] = pa.array(x.mean() + (x - x.mean()) * 1.01)
        for name in cats[:2]:
            cols[name] = _reassign(rng, cols[name], "alpha", "echo", 0.01)
    elif scenario == "mean_shift":
        for name in nums[:3]:
            cols[name] = pa.array(num(name) + 0.5 * std(name))
            drifted.add(name)
    elif scenario == "variance_change":
        for name in nums[4:6]:
            x = num(name)
            cols[name] = pa.array(x.mean() + (x - x.mean()) * 1.5)
            drifted.add(name)
    elif scenario == "category_frequency":
        cols[cats[0]] = _reassign(rng, cols[cats[0]], "alpha", "echo", 0.5)
        drifted.add(cats[0])
    elif scenario == "new_category":
        cols[cats[1]] = _reassign(rng, cols[cats[1]], "bravo", "zulu", 0.4)
        drifted.add(cats[1])
    elif scenario == "missing_spike":
        name = nums[1]
        mask = rng.random(rows) < 0.3
        cols[name] = pa.array(np.where(mask, np.nan, num(name)), mask=mask)
        drifted.add(name)
    elif scenario == "one_feature":
        name = nums[min(7, len(nums) - 1)]
        cols[name] = pa.array(num(name) + 0.3 * std(name))
        drifted.add(name)
    elif scenario == "cluster":  # 3 % of rows replaced by a tight cluster far out in two features
        idx = rng.random(rows) < 0.03
        for name in (nums[2], nums[6 % len(nums)]):
            x = num(name)
            target = np.quantile(x, 0.5) + 6 * std(name)
            cols[name] = pa.array(np.where(idx, target + rng.normal(0, 0.05 * std(name), rows), x))
            drifted.add(name)
    elif scenario == "correlation_flip":  # same marginals, num_04's correlation with num_00 negated
        if len(nums) < 5:
            raise ValueError("correlation_flip needs at least 5 numeric columns")
        z0 = (num(nums[0]) - 0.0) / 1.0
        w = (num(nums[4]) - 40.0) / 2.0
        cols[nums[4]] = pa.array(40.0 + 2.0 * (w - 2 * CORRELATION * z0))
        return Scenario(scenario, pa.table(cols), frozenset(), joint_drift=True)
    return Scenario(scenario, pa.table(cols), frozenset(drifted), joint_drift=bool(drifted))


def _reassign(rng: np.random.Generator, array: pa.Array, source: str, target: str, share: float) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    move = pc.and_(pc.fill_null(pc.equal(array, source), False), pa.array(rng.random(len(array)) < share))
    return pc.if_else(move, pa.scalar(target, pa.string()), array)

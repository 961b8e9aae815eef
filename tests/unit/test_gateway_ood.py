"""The out-of-distribution rate against the training reference: uniform or synthetic in-range queries are
caught within a bounded number of rows, natural traffic never raises it, malformed references are refused."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification

from bastion.gateway.app import build_app
from bastion.gateway.config import Detection, parse_config
from bastion.gateway.detection import (
    ExtractionDetector,
    Level,
    Reference,
    build_reference,
    critical_count,
    load_reference,
)
from bastion.gateway.errors import ModelRefused
from tests.gateway_helpers import FEATURES, base_config, bearer, client, make_data, make_setup

pytestmark = pytest.mark.anyio


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """2,000 training rows and 48,000 fresh rows from the same distribution (one draw, split)."""
    x, _ = make_classification(n_samples=50_000, n_features=FEATURES, n_informative=4, random_state=1)
    return x[:2000], x[2000:]


def _detector(train: np.ndarray, **settings: Any) -> ExtractionDetector:
    reference = Reference.from_document(build_reference(train), train.shape[1])
    return ExtractionDetector(Detection(**settings), reference=reference)


def _feed(det: ExtractionDetector, caller: str, rows: np.ndarray, batch: int = 10) -> list[Any]:
    events = []
    for i in range(0, len(rows), batch):
        events += det.observe(caller, "m", rows[i : i + batch])
    return events


def _first_ood(events: list[Any]) -> int | None:
    return min((e.queries for e in events if "ood-queries" in e.signals), default=None)


def test_the_reference_is_calibrated_on_held_out_natural_rows(data: tuple[np.ndarray, np.ndarray]) -> None:
    train, fresh = data
    doc = build_reference(train)
    reference = Reference.from_document(json.loads(json.dumps(doc)), FEATURES)
    assert doc["exceedance"] == pytest.approx(0.01, abs=0.001)
    assert 0.005 < np.mean(reference.beyond(fresh)) < 0.015  # natural rows: about the training rate
    lo, hi = train.min(0), train.max(0)
    uniform = np.random.default_rng(0).uniform(lo, hi, (5000, FEATURES))
    assert np.mean(reference.beyond(uniform)) > 0.9  # uniform in the training box: almost all far out


def test_the_distance_is_mahalanobis_and_does_not_depend_on_feature_scales(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    x, _ = make_classification(n_samples=3000, n_features=5, n_informative=5, n_redundant=0, random_state=2)
    reference = Reference.from_document(build_reference(x), 5)
    u = x[:50] - x.mean(0)
    exact = np.einsum("ij,jk,ik->i", u, np.linalg.inv(np.cov(x, rowvar=False)), u)
    assert np.allclose(np.einsum("ij,ij->i", u @ reference.whitening, u @ reference.whitening), exact)
    train, fresh = data
    scales = np.array([1e6, 1.0, 1e-3, 1.0, 5.0, 1e-6])  # units a million apart: the same verdicts
    scaled = Reference.from_document(build_reference(train * scales), FEATURES)
    plain = Reference.from_document(build_reference(train), FEATURES)
    differ = np.not_equal(scaled.beyond(fresh[:5000] * scales), plain.beyond(fresh[:5000]))
    assert differ.sum() <= 1  # at most a row on the threshold, by rounding


def test_uniform_in_range_queries_are_detected_and_blocked_within_bounded_rows(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    train, _ = data
    det = _detector(train)
    rng = np.random.default_rng(3)
    for n in range(5):
        caller = f"uniform{n}"
        events = _feed(det, caller, rng.uniform(train.min(0), train.max(0), (400, FEATURES)))
        assert _first_ood(events) == 100  # the first check (min_queries)
        assert det.level(caller, "m") is Level.BLOCK
        assert [e.level for e in events] == [Level.ALERT, Level.LABELS_ONLY, Level.THROTTLE, Level.BLOCK]
        assert events[-1].queries <= 250


def test_natural_rows_over_a_long_run_never_raise_the_ood_signal(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    """48,000 fresh natural rows over 16 identities, every check of every stream: no ood-queries."""
    train, fresh = data
    det = _detector(train)
    events = []
    for n, stream in enumerate(np.array_split(fresh, 16)):
        events += _feed(det, f"user{n}", stream)
    assert not [e for e in events if "ood-queries" in e.signals]
    assert max(det.level(f"user{n}", "m") for n in range(16)) <= Level.ALERT  # PRADA may alert, rarely


def test_a_mix_of_natural_and_uniform_rows_is_detected(data: tuple[np.ndarray, np.ndarray]) -> None:
    """One uniform row in five, hidden among natural ones: caught by the test over the window."""
    train, fresh = data
    rng = np.random.default_rng(5)
    rows = fresh[:1000].copy()
    mixed = rng.random(1000) < 0.2
    rows[mixed] = rng.uniform(train.min(0), train.max(0), (int(mixed.sum()), FEATURES))
    first = _first_ood(_feed(_detector(train), "mixer", rows))
    assert first is not None and first <= 300


def test_a_synthetic_stream_inside_the_box_is_flagged_even_when_distances_look_natural(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    """Gaussian queries with the training mean and std, but independent features (the usual query synthesis
    without the data's correlations): in range, near-normal distances, still off the training distribution."""
    train, _ = data
    rng = np.random.default_rng(6)
    synthetic = rng.normal(train.mean(0), train.std(0), (400, FEATURES))
    assert _first_ood(_feed(_detector(train), "synth", synthetic)) == 100


def test_critical_count_is_the_exact_binomial_tail() -> None:
    def tail(n: int, p: float, k: int) -> float:
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))

    for n, p, alpha in [(50, 0.02, 1e-6), (200, 0.01, 1e-3), (500, 0.05, 1e-6), (30, 0.3, 1e-6)]:
        k = critical_count(n, p, alpha)
        assert tail(n, p, k) <= alpha < tail(n, p, k - 1)


def _document(train: np.ndarray) -> dict[str, Any]:
    return json.loads(json.dumps(build_reference(train)))


_ASYMMETRIC = (np.eye(FEATURES) + np.eye(FEATURES, k=1)).tolist()
MALFORMED: dict[str, Any] = {
    "wrong format": lambda d: d | {"format": "bastion-reference/v0"},
    "unknown field": lambda d: d | {"pickle": "gASVAAAA"},
    "missing field": lambda d: {k: v for k, v in d.items() if k != "covariance"},
    "boolean feature count": lambda d: d | {"features": True},
    "too few rows": lambda d: d | {"rows": 3},
    "short mean": lambda d: d | {"mean": d["mean"][:-1]},
    "string in std": lambda d: d | {"std": ["1.0"] * len(d["std"])},
    "negative std": lambda d: d | {"std": [-1.0] * len(d["std"])},
    "ragged covariance": lambda d: d | {"covariance": [*d["covariance"][:-1], [1.0]]},
    "asymmetric covariance": lambda d: d | {"covariance": _ASYMMETRIC},
    "indefinite covariance": lambda d: d | {"covariance": (-np.eye(FEATURES)).tolist()},
    "zero threshold": lambda d: d | {"threshold": 0},
    "exceedance above one half": lambda d: d | {"exceedance": 0.9},
    "quantile of one": lambda d: d | {"quantile": 1.0},
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_reference_document_is_refused(case: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(ValueError):
        Reference.from_document(MALFORMED[case](_document(data[0])), FEATURES)


@pytest.mark.parametrize(
    "text",
    [
        b"not json",
        b'{"format": "bastion-reference/v1", "format": "bastion-reference/v1"}',  # duplicate key
        b'{"format": "bastion-reference/v1", "threshold": NaN}',
        b"\xff\xfe",
        b"[" * 100 + b"]" * 100,
    ],
)
def test_a_reference_file_that_is_not_strict_json_is_refused(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "m.reference.json"
    path.write_bytes(text)
    with pytest.raises(ModelRefused, match="detection reference"):
        load_reference(path)


def test_a_missing_or_wrong_width_reference_file_is_refused(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray]
) -> None:
    with pytest.raises(ModelRefused, match="cannot read"):
        load_reference(tmp_path / "absent.json")
    path = tmp_path / "m.reference.json"
    path.write_text(json.dumps(build_reference(data[0])))
    assert load_reference(path, FEATURES).width == FEATURES
    with pytest.raises(ModelRefused, match="model takes 4"):
        load_reference(path, 4)


def test_the_reference_setting_is_relative_to_the_config_and_bounded(tmp_path: Path) -> None:
    X, _ = make_data()
    doc = base_config(tmp_path, X)
    doc["models"][0]["detection"] = {"reference": "clf.reference.json", "ood_window": 300}
    config = parse_config(json.loads(json.dumps(doc)), base=tmp_path)
    assert config.models[0].detection.reference == tmp_path / "clf.reference.json"
    with pytest.raises(ValueError):
        Detection(ood_alpha=0.5)
    with pytest.raises(ValueError):
        Detection(ood_tolerance=0.5)


def _setup_with_reference(root: Path, document: Any) -> Any:
    X, _ = make_data()  # the rows tests.gateway_helpers trains "clf" on
    (root / "clf.reference.json").write_text(json.dumps(document))
    doc = base_config(root, X)
    models = doc["models"]
    models[0]["detection"] = {"reference": "clf.reference.json"}  # mean and std come from the reference
    roomy = {"capacity": 100_000, "per_second": 1}  # throttled rows cost 10×: let the block be what stops
    limits = doc["limits"] | {"identity": roomy, "identity_model": roomy}
    return make_setup(root, models=models, limits=limits)


async def test_through_the_gateway_uniform_queries_raise_ood_events_then_a_block(tmp_path: Path) -> None:
    X, _ = make_data()
    setup = _setup_with_reference(tmp_path, build_reference(X))
    app = build_app(setup.config)
    rng = np.random.default_rng(8)
    statuses = []
    async with client(app) as c:
        for _ in range(10):
            rows = rng.uniform(X.min(0), X.max(0), (50, FEATURES)).tolist()
            r = await c.post(
                "/v1/models/clf:predict", json={"instances": rows}, headers=bearer(setup.keys["mallory"])
            )
            statuses.append(r.status_code)
        natural = await c.post(
            "/v1/models/clf:predict", json={"instances": X[:50].tolist()}, headers=bearer(setup.keys["alice"])
        )
    await app.gw.close()
    assert statuses[:4] == [200] * 4 and statuses[-1] == 403
    assert natural.status_code == 200
    events = setup.events("suspected-extraction")
    assert events and all("ood-queries" in e["signals"] and e["caller"] == "mallory" for e in events)
    assert [e["level"] for e in events] == ["alert", "labels_only", "throttle", "block"]


async def test_a_model_with_a_malformed_reference_is_refused_not_served(tmp_path: Path) -> None:
    X, _ = make_data()
    bad = build_reference(X) | {"covariance": [[1.0]]}
    setup = _setup_with_reference(tmp_path, bad)
    app = build_app(setup.config)
    async with client(app) as c:
        r = await c.post(
            "/v1/models/clf:predict", json={"instances": X[:1].tolist()}, headers=bearer(setup.keys["alice"])
        )
    await app.gw.close()
    assert r.status_code == 503 and r.json()["error"] == "model-refused"
    (event,) = setup.events("model-refused")
    assert "detection reference" in event["reason"] and "covariance" in event["reason"]
    assert "clf" not in app.gw.models and "lin" in app.gw.models


def test_every_detection_setting_is_documented() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "gateway.md").read_text(encoding="utf-8")
    missing = [name for name in Detection.model_fields if f"      {name}: " not in docs]  # the YAML blocks
    assert not missing, f"docs/gateway.md does not mention {missing}"
    assert "bastion-reference/v1" in docs and "ood-queries" in docs


async def test_an_upstream_model_with_a_reference_of_the_wrong_width_is_refused(tmp_path: Path) -> None:
    X, _ = make_data()
    (tmp_path / "fraud.reference.json").write_text(json.dumps(build_reference(X[:, :4])))
    upstream = {
        "name": "fraud",
        "environment": "prod",
        "features": FEATURES,
        "upstream": {"url": "http://127.0.0.1:9"},  # never contacted: the model is refused first
        "detection": {"reference": "fraud.reference.json"},
    }
    setup = make_setup(tmp_path, models=[upstream])
    app = build_app(setup.config)
    await app.close()
    assert "fraud" not in app.gw.models
    (event,) = setup.events("model-refused")
    assert "describes 4 features but the model takes 6" in event["reason"]

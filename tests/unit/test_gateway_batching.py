"""Micro-batching: concurrent requests share one model call, and each still gets exactly its own answer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.gateway.app import build_app
from bastion.gateway.batching import Batcher
from bastion.gateway.config import parse_config
from bastion.gateway.predictors import Prediction
from tests.gateway_helpers import base_config, bearer, client, make_data, make_setup, write_models

pytestmark = pytest.mark.anyio


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


class Model:
    """Row by row: label = the row's sum, probabilities = the row's first two values. Refuses 666."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, x: np.ndarray) -> Prediction:
        self.calls.append(int(x.shape[0]))
        if (x == 666).any():
            raise ValueError("the model cannot take 666")
        return Prediction([float(v) for v in x.sum(axis=1)], x[:, :2].copy(), ("a", "b"))


def rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3))


async def test_requests_of_one_turn_share_one_call_and_each_gets_its_own_rows() -> None:
    model = Model()
    batcher = Batcher(model.predict, max_rows=64)
    inputs = [rows(1 + i % 3, i) for i in range(12)]
    answers = await asyncio.gather(*(batcher(x) for x in inputs))
    assert model.calls == [sum(len(x) for x in inputs)]
    for x, answer in zip(inputs, answers, strict=True):
        alone = Model().predict(x)
        assert answer.outputs == alone.outputs and answer.classes == alone.classes
        assert answer.probabilities is not None and np.array_equal(answer.probabilities, alone.probabilities)


async def test_a_request_alone_is_answered_at_once_and_batches_never_pass_max_rows() -> None:
    model = Model()
    batcher = Batcher(model.predict, max_rows=4)
    await batcher(rows(1, 0))
    assert model.calls == [1]
    model.calls.clear()
    await asyncio.gather(*(batcher(rows(3, i)) for i in range(3)))
    assert model.calls == [3, 3, 3]  # 3 + 3 would pass 4: each runs in its own call
    model.calls.clear()
    await asyncio.gather(batcher(rows(1, 1)), batcher(rows(9, 2)), batcher(rows(2, 3)))
    assert sorted(model.calls) == [3, 9]  # the big one alone, the two small ones together
    assert max(model.calls) <= 9


async def test_a_failing_request_fails_alone() -> None:
    model = Model()
    batcher = Batcher(model.predict, max_rows=64)
    bad = rows(2, 5)
    bad[1, 0] = 666
    good = [rows(2, i) for i in range(4)]
    results = await asyncio.gather(*(batcher(x) for x in [*good[:2], bad, *good[2:]]), return_exceptions=True)
    assert isinstance(results[2], ValueError)
    for x, answer in zip(good, [*results[:2], *results[3:]], strict=True):
        assert isinstance(answer, Prediction) and answer.outputs == Model().predict(x).outputs


async def test_a_batched_answer_of_the_wrong_length_is_never_sliced_between_requests() -> None:
    """A model (or wrapper) that loses or adds a row in a batch must not shift one caller's rows into
    another's answer: the requests are then answered alone."""

    class Lossy(Model):
        def predict(self, x: np.ndarray) -> Prediction:
            answer = super().predict(x)
            if len(x) > 1:  # drops the first row of any call with several
                probabilities = None if answer.probabilities is None else answer.probabilities[1:]
                return Prediction(answer.outputs[1:], probabilities, answer.classes)
            return answer

    model = Lossy()
    batcher = Batcher(model.predict, max_rows=64)
    inputs = [rows(1, i) for i in range(5)]
    answers = await asyncio.gather(*(batcher(x) for x in inputs))
    assert model.calls == [5, 1, 1, 1, 1, 1]
    for x, answer in zip(inputs, answers, strict=True):
        assert answer.outputs == Model().predict(x).outputs


async def test_a_cancelled_request_is_left_out_of_the_batch() -> None:
    model = Model()
    batcher = Batcher(model.predict, max_rows=64)
    doomed = asyncio.ensure_future(batcher(rows(5, 0)))
    kept = asyncio.ensure_future(batcher(rows(2, 1)))
    await asyncio.sleep(0)  # both queued, the call not made yet
    doomed.cancel()
    answer = await kept
    assert model.calls == [2] and len(answer.outputs) == 2
    assert doomed.cancelled()


async def _predict(c: Any, token: str, row: list[float]) -> Any:
    r = await c.post("/v1/models/clf:predict", json={"instances": [row]}, headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0]


async def test_concurrent_http_requests_are_batched_with_the_answers_they_get_alone(tmp_path: Path) -> None:
    limits = base_config(tmp_path, make_data()[0])["limits"]
    setup = make_setup(tmp_path, limits={**limits, "concurrent": 64})
    app = build_app(setup.config)
    batcher = app.gw.models["clf"].batcher
    assert batcher is not None
    token = setup.keys["alice"]
    sample = [r.tolist() for r in setup.X[:24]]
    try:
        async with client(app) as c:
            alone = [await _predict(c, token, row) for row in sample]
            assert batcher.calls == len(sample)  # one at a time: one call each
            together = await asyncio.gather(*(_predict(c, token, row) for row in sample))
            concurrent_calls = batcher.calls - len(sample)
            assert concurrent_calls < len(sample)  # some of the concurrent ones shared a call
            metrics = (await c.get("/metrics", headers=bearer(setup.keys["carol"]))).text
            assert f'bastion_gateway_model_calls_total{{model="clf"}} {batcher.calls}' in metrics.splitlines()
    finally:
        await app.gw.close()
    assert together == alone
    predictions = [r for r in setup.access() if r["resourcePath"] == "/v1/models/clf:predict"]
    assert len({r["requestId"] for r in predictions}) == 2 * len(sample)  # each has its own audit record


async def test_batching_is_off_with_batch_rows_zero(tmp_path: Path) -> None:
    doc = base_config(tmp_path, write_models(tmp_path))
    for model in doc["models"]:
        model["batch_rows"] = 0
    app = build_app(parse_config(doc, base=tmp_path))
    try:
        assert len(app.gw.models) == 2
        assert all(model.batcher is None for model in app.gw.models.values())
    finally:
        await app.gw.close()

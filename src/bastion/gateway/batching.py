"""Micro-batching for models served in-process: the requests that reach a model in the same turn of the event
loop are answered by one call to it.

Under concurrent load, a fixed cost per call (scikit-learn re-validates its input, ONNX Runtime binds its
feeds) dominates a one-row prediction; several requests' rows in one call pay it once. Nothing waits for a
batch to fill: the first request schedules the call for the end of the current turn (``call_soon``), so it
takes whatever the other requests of that turn added, and a request alone runs at once. Rows are answered
in order and each request gets its own slice, exactly what it would have got alone (predictions are row by
row). If the batched call fails, or answers a different number of rows than it was given, each request is
run alone, so one request's failure is never another's and no caller is ever handed another's rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from bastion.gateway.predictors import Prediction

Predict = Callable[[np.ndarray], Prediction]


class Batcher:
    """Batches calls to ``predict`` of at most ``max_rows`` rows (a bigger request runs alone)."""

    def __init__(self, predict: Predict, max_rows: int) -> None:
        self.predict = predict
        self.max_rows = max_rows
        self._queue: list[tuple[np.ndarray, asyncio.Future[Prediction]]] = []
        self._rows = 0
        self.calls = 0  # model calls made, for tests and metrics

    async def __call__(self, x: np.ndarray) -> Prediction:
        if x.shape[0] >= self.max_rows:
            self.calls += 1
            return self.predict(x)
        loop = asyncio.get_running_loop()
        if self._rows + x.shape[0] > self.max_rows:
            self._run()  # this request would overflow the batch: answer the queued ones first
        future: asyncio.Future[Prediction] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._run)
        self._queue.append((x, future))
        self._rows += x.shape[0]
        return await future

    def _run(self) -> None:
        queue, self._queue, self._rows = self._queue, [], 0
        waiting = [(x, future) for x, future in queue if not future.cancelled()]
        if not waiting:
            return
        if len(waiting) == 1:
            self._answer(*waiting[0])
            return
        self.calls += 1
        n = sum(x.shape[0] for x, _ in waiting)
        try:
            batch = self.predict(np.concatenate([x for x, _ in waiting]))
        except Exception:  # noqa: BLE001 - each request is retried alone and gets its own outcome
            batch = None
        if batch is None or not _one_answer_per_row(batch, n):
            # a failure, or rows lost or added: slicing would hand one caller another's rows
            for x, future in waiting:
                self._answer(x, future)
            return
        start = 0
        for x, future in waiting:
            end = start + x.shape[0]
            probabilities = None if batch.probabilities is None else batch.probabilities[start:end]
            future.set_result(Prediction(batch.outputs[start:end], probabilities, batch.classes))
            start = end

    def _answer(self, x: np.ndarray, future: asyncio.Future[Prediction]) -> None:
        self.calls += 1
        try:
            future.set_result(self.predict(x))
        except Exception as exc:  # noqa: BLE001 - handed to the request that caused it
            future.set_exception(exc)


def _one_answer_per_row(prediction: Prediction, n: int) -> bool:
    p = prediction.probabilities
    return len(prediction.outputs) == n and (p is None or len(p) == n)

"""Models proxied to an upstream KServe V1 / Open Inference Protocol V2 server.

The gateway forwards only what it has already validated: the rows as a fresh JSON body, with
``Content-Type`` and the request id. The caller's headers, and so its credentials, never travel upstream;
the client ignores proxy settings and netrc from the environment and follows no redirects. Upstream answers
are parsed strictly (finite numbers, one prediction per row, bounded size) and go through the same output
hardening as in-process models. Failures become JSON errors, each with its audit record:

    upstream timed out                        504 upstream-timeout
    upstream unreachable (connect, TLS, ...)  502 upstream-unreachable
    upstream answered non-200                 502 upstream-error (its status in the message, not its body)
    answer not JSON, wrong shape, too large   502 bad-upstream-response

``ready`` asks the upstream server whether the model is ready (V1 ``GET /v1/models/{model}`` answering
``"ready": true``, V2 ``GET /v2/models/{model}/ready`` answering 200) for the gateway's ``/readyz``. Its
answer is kept for ``READY_TTL_S`` and concurrent asks share one probe, so ``/readyz``, which anyone may
call, cannot turn into a flood of requests upstream.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.gateway.config import ModelSpec, Upstream, UpstreamProtocol
from bastion.gateway.errors import HttpError
from bastion.gateway.models import Prediction
from bastion.gateway.wire import dumps, loads_strict

if TYPE_CHECKING:
    import httpx

READY_TTL_S = 2.0
READY_MAX_BYTES = 65_536


def _bad(detail: str) -> HttpError:
    return HttpError(502, "bad-upstream-response", f"the upstream model server answered badly: {detail}")


def _finite(values: list[Any]) -> bool:
    return all(
        type(v) in (int, float) and math.isfinite(v) for v in values
    )  # exact types: a bool is not a number


def parse_rows(rows: Any, n: int, classes: tuple[str | int, ...]) -> Prediction:
    """Per-row predictions from an upstream answer: probability rows (lists) or labels / values (scalars)."""
    if not isinstance(rows, list) or len(rows) != n:
        raise _bad(f"expected {n} predictions")
    if all(isinstance(r, list) for r in rows):
        width = len(rows[0]) if rows else 0
        if width == 0 or any(len(r) != width for r in rows) or not all(_finite(r) for r in rows):
            raise _bad("probability rows must be equally long lists of finite numbers")
        if classes and width != len(classes):
            raise _bad(f"{width} probabilities per row, but {len(classes)} classes are configured")
        proba = np.asarray(rows, dtype=np.float64)
        names: tuple[Any, ...] = classes or tuple(range(width))
        return Prediction([names[i] for i in proba.argmax(axis=1)], proba, names)
    if any(isinstance(r, list | dict) for r in rows):
        raise _bad("mixed predictions")
    if not all(isinstance(r, str) or (type(r) in (int, float) and math.isfinite(r)) for r in rows):
        raise _bad("predictions must be finite numbers or labels")
    return Prediction(list(rows), None, classes)


def _v2_rows(body: Any, n: int) -> Any:
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if not isinstance(outputs, list) or not outputs or not isinstance(outputs[0], dict):
        raise _bad("no output tensor")
    shape, data = outputs[0].get("shape"), outputs[0].get("data")
    if not isinstance(shape, list) or not isinstance(data, list) or not shape or shape[0] != n:
        raise _bad("output tensor shape")
    if len(shape) == 1:
        return data
    if len(shape) != 2 or not isinstance(shape[1], int) or shape[1] < 1 or len(data) != n * shape[1]:
        raise _bad("output tensor shape")
    return [data[i * shape[1] : (i + 1) * shape[1]] for i in range(n)]


class UpstreamModel:
    """Forwards validated rows to ``spec.upstream``; one HTTP client (connection pool) per gateway."""

    def __init__(self, spec: ModelSpec) -> None:
        assert spec.upstream is not None and spec.features is not None  # the config guarantees both
        self.config: Upstream = spec.upstream
        self.n_features = spec.features
        self.classes: tuple[str | int, ...] = spec.classes
        name = self.config.model or spec.name
        if self.config.protocol is UpstreamProtocol.V1:
            self.url = f"{self.config.url}/v1/models/{name}:predict"
            self.ready_url = f"{self.config.url}/v1/models/{name}"
        else:
            self.url = f"{self.config.url}/v2/models/{name}/infer"
            self.ready_url = f"{self.config.url}/v2/models/{name}/ready"
        self._client: httpx.AsyncClient | None = None
        self._ready = (False, -math.inf)  # the last probe's answer and when it was had (monotonic)
        self._probe: asyncio.Lock | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            verify: ssl.SSLContext | bool = True
            if self.config.ca_file is not None:
                verify = ssl.create_default_context(cafile=str(self.config.ca_file))
                verify.minimum_version = ssl.TLSVersion.TLSv1_2
            self._client = httpx.AsyncClient(
                timeout=self.config.timeout_s, verify=verify, trust_env=False, follow_redirects=False
            )
        return self._client

    def _request(self, x: np.ndarray) -> bytes:
        if self.config.protocol is UpstreamProtocol.V1:
            return dumps({"instances": x.tolist()})
        shape = [int(x.shape[0]), int(x.shape[1])]
        tensor = {"name": "input-0", "shape": shape, "datatype": "FP64", "data": x.ravel().tolist()}
        return dumps({"inputs": [tensor]})

    async def predict(self, x: np.ndarray, request_id: str) -> Prediction:
        import httpx

        headers = {"Content-Type": "application/json", "X-Request-ID": request_id}
        limit = self.config.max_response_bytes
        try:
            async with self._http().stream("POST", self.url, content=self._request(x), headers=headers) as r:
                if r.status_code != 200:
                    raise HttpError(
                        502, "upstream-error", f"the upstream model server answered {r.status_code}"
                    )
                body = b""
                async for chunk in r.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise _bad(f"answer larger than {limit} bytes")
        except httpx.TimeoutException:
            raise HttpError(
                504, "upstream-timeout", "the upstream model server did not answer in time"
            ) from None
        except httpx.HTTPError as exc:
            raise HttpError(
                502,
                "upstream-unreachable",
                f"the upstream model server is unreachable ({type(exc).__name__})",
            ) from None
        try:
            answer = loads_strict(body)
        except HttpError:
            raise _bad("not strict JSON") from None
        n = int(x.shape[0])
        if self.config.protocol is UpstreamProtocol.V1:
            rows = answer.get("predictions") if isinstance(answer, dict) else None
        else:
            rows = _v2_rows(answer, n)
        return parse_rows(rows, n, self.classes)

    async def ready(self) -> bool:
        """Whether the upstream server says the model is ready (answers younger than READY_TTL_S reused)."""
        if self._probe is None:
            self._probe = asyncio.Lock()
        async with self._probe:  # concurrent callers wait for one probe and read its answer
            answer, at = self._ready
            if time.monotonic() - at < READY_TTL_S:
                return answer
            answer = await self._ask_ready()
            self._ready = (answer, time.monotonic())
            return answer

    async def _ask_ready(self) -> bool:
        import httpx

        timeout = min(self.config.timeout_s, READY_TTL_S)
        body = b""
        try:
            async with self._http().stream("GET", self.ready_url, timeout=timeout) as r:
                if r.status_code != 200:
                    return False
                async for chunk in r.aiter_bytes():
                    body += chunk
                    if len(body) > READY_MAX_BYTES:
                        return False
        except httpx.HTTPError:
            return False
        if self.config.protocol is UpstreamProtocol.V2:
            return True  # the Open Inference Protocol's answer is the status alone
        try:
            answer = loads_strict(body)
        except HttpError:
            return False
        return isinstance(answer, dict) and answer.get("ready") is True

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
